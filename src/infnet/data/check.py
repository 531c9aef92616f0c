"""Validate a dataset folder without modifying it: pairing by stem, readability, sizes and mask values.

Two layouts are recognised:

* a COVID-SemiSeg root (the folder holding ``Dataset/``): every split of
  :data:`infnet.data.semiseg.SPLITS` whose image folder exists is checked, with its Edge folder if it has one,
  and the train/val lists of MultiClassInfection-Train must name existing images;
* a generic folder with ``images/`` (or ``Imgs/``) and ``masks/`` (or ``GT/``) subfolders, optionally
  ``edges/`` (or ``Edge/``). Palette ('P') masks are checked as multi-class, others as binary.

Errors (the dataset is not usable as is): an image without a mask or a mask without an image, a stem
present twice in a folder, an unreadable file, a mask or edge map whose size differs from its image, a
binary mask with more than :data:`BINARY_TOLERANCE` of its pixels outside {0, 255} (or a 0/1-coded mask), a
multi-class mask with values outside {0, 1, 2}. The Semi-Inf-Net pseudo labels legitimately hold
intermediate grey values (they are thresholded at 128): for that split they are a warning. Files without an
image suffix are warnings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from infnet.data.pairs import natural_key
from infnet.data.semiseg import SPLIT_LISTS, SPLITS
from infnet.errors import InfnetError
from infnet.io.images import is_image_file, read_gray, read_label

BINARY_TOLERANCE = 0.001  # share of pixels allowed outside {0, 255} in a binary mask
MULTICLASS_VALUES = (0, 1, 2)
SOFT_BINARY_SPLITS = ("pseudo-label",)
IMAGE_DIR_NAMES = ("images", "Imgs")
MASK_DIR_NAMES = ("masks", "GT")
EDGE_DIR_NAMES = ("edges", "Edge")


@dataclass
class SplitReport:
    """Counts and issues of one image/mask folder pair."""

    name: str
    image_dir: Path
    mask_dir: Path
    mask_kind: str  # binary | multiclass | bool | auto
    edge_dir: Path | None = None
    n_images: int = 0
    n_masks: int = 0
    n_pairs: int = 0
    n_edges: int = 0
    n_empty_masks: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class DatasetReport:
    """The result of :func:`check_dataset`: one :class:`SplitReport` per checked split."""

    path: Path
    layout: str  # covid-semiseg | generic
    splits: list[SplitReport]

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.splits)

    @property
    def n_errors(self) -> int:
        return sum(len(s.errors) for s in self.splits)

    @property
    def n_warnings(self) -> int:
        return sum(len(s.warnings) for s in self.splits)


def _index(folder: Path, report: SplitReport) -> dict[str, Path]:
    """stem -> image file of ``folder``; duplicate stems are errors, non-image files warnings."""
    out: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.is_dir():
            continue
        if not is_image_file(path):
            report.warnings.append(f"{path}: not an image file (ignored)")
            continue
        if path.stem in out:
            report.errors.append(f"{path}: stem '{path.stem}' appears twice in {folder} (also {out[path.stem].name})")
            continue
        out[path.stem] = path
    return out


def _binary_issue(mask: np.ndarray) -> tuple[str, str] | None:
    """Why ``mask`` (uint8) is not a 0/255 binary mask, as (kind, message) with kind 'zero-one' or 'grey'."""
    if mask.size and mask.max() == 1:
        return "zero-one", "values 0/1 (expected 0/255; a 0/1 mask reads as empty when thresholded at 128)"
    other = float(np.count_nonzero((mask != 0) & (mask != 255))) / max(mask.size, 1)
    if other > BINARY_TOLERANCE:
        return "grey", f"not a binary 0/255 mask ({other:.1%} of pixels at other values)"
    return None


def _size(arr: np.ndarray) -> str:
    return f"{arr.shape[1]}x{arr.shape[0]}"


def _read(path: Path, reader, report: SplitReport) -> np.ndarray | None:
    try:
        return reader(path)
    except InfnetError as exc:
        report.errors.append(str(exc))
        return None


def _mask_kind_of(path: Path, declared: str) -> str:
    if declared != "auto":
        return declared
    try:
        with Image.open(path) as im:
            return "multiclass" if im.mode == "P" else "binary"
    except Exception:  # unreadable: the read below reports it
        return "binary"


def check_split(
    name: str,
    image_dir: str | Path,
    mask_dir: str | Path,
    mask_kind: str = "binary",
    edge_dir: str | Path | None = None,
    soft_binary: bool = False,
) -> SplitReport:
    """Check one image folder against its mask folder (and edge folder); see the module docstring."""
    image_dir, mask_dir = Path(image_dir), Path(mask_dir)
    edge_dir = Path(edge_dir) if edge_dir is not None and Path(edge_dir).is_dir() else None
    report = SplitReport(name, image_dir, mask_dir, mask_kind, edge_dir)
    for folder in (image_dir, mask_dir):
        if not folder.is_dir():
            report.errors.append(f"{folder}: folder not found")
    if report.errors:
        return report
    images = _index(image_dir, report)
    masks = _index(mask_dir, report)
    edges = _index(edge_dir, report) if edge_dir else {}
    report.n_images, report.n_masks, report.n_edges = len(images), len(masks), len(edges)
    if not images:
        report.errors.append(f"{image_dir}: no images found")
    for stem in sorted(set(images) - set(masks), key=natural_key):
        report.errors.append(f"{images[stem]}: no mask with stem '{stem}' in {mask_dir}")
    for stem in sorted(set(masks) - set(images), key=natural_key):
        report.errors.append(f"{masks[stem]}: no image with stem '{stem}' in {image_dir}")
    if edge_dir:
        for stem in sorted(set(images) - set(edges), key=natural_key):
            report.errors.append(f"{images[stem]}: no edge map with stem '{stem}' in {edge_dir}")
        for stem in sorted(set(edges) - set(images), key=natural_key):
            report.errors.append(f"{edges[stem]}: no image with stem '{stem}' in {image_dir}")

    soft: list[str] = []
    for stem in sorted(set(images) & set(masks), key=natural_key):
        report.n_pairs += 1
        image = _read(images[stem], read_gray, report)
        kind = _mask_kind_of(masks[stem], mask_kind)
        mask = _read(masks[stem], read_label if kind == "multiclass" else read_gray, report)
        if image is not None and mask is not None and image.shape != mask.shape:
            report.errors.append(
                f"{masks[stem]}: size {_size(mask)} differs from image {images[stem].name} ({_size(image)})"
            )
        if mask is not None:
            if kind == "multiclass":
                bad = sorted(set(np.unique(mask).tolist()) - set(MULTICLASS_VALUES))
                if bad:
                    shown = ", ".join(str(v) for v in bad[:8]) + (", ..." if len(bad) > 8 else "")
                    report.errors.append(f"{masks[stem]}: values {shown} outside {{0, 1, 2}} in a multi-class mask")
            else:
                issue = _binary_issue(mask)
                if issue and soft_binary and issue[0] == "grey":
                    soft.append(masks[stem].name)
                elif issue:
                    report.errors.append(f"{masks[stem]}: {issue[1]}")
            if not mask.any():
                report.n_empty_masks += 1
        if stem in edges:
            edge = _read(edges[stem], read_gray, report)
            if edge is not None and image is not None and edge.shape != image.shape:
                report.errors.append(
                    f"{edges[stem]}: size {_size(edge)} differs from {images[stem].name} ({_size(image)})"
                )
            if edge is not None and (edge_issue := _binary_issue(edge)):
                report.errors.append(f"{edges[stem]}: {edge_issue[1]}")
    if soft:
        shown = ", ".join(soft[:5]) + (", ..." if len(soft) > 5 else "")
        report.warnings.append(
            f"{mask_dir}: {len(soft)} of {report.n_pairs} masks hold intermediate grey values "
            f"(expected for pseudo labels, thresholded at 128): {shown}"
        )
    return report


def _first_dir(root: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        if (root / name).is_dir():
            return root / name
    return None


def _check_split_lists(root: Path, report: SplitReport) -> None:
    images = {p.stem for p in report.image_dir.iterdir()} if report.image_dir.is_dir() else set()
    for list_name, rel in SPLIT_LISTS.items():
        path = root / rel
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            stem = line.strip()
            if stem and stem not in images:
                report.errors.append(f"{path}: '{stem}' (in the {list_name} list) has no image in {report.image_dir}")


def check_dataset(path: str | Path) -> DatasetReport:
    """Check a COVID-SemiSeg root or a generic images/masks folder; nothing is modified.

    Raises :class:`InfnetError` when ``path`` is missing or has neither layout.
    """
    root = Path(path)
    if not root.exists():
        raise InfnetError(f"{root}: folder not found")
    if not root.is_dir():
        raise InfnetError(f"{root}: not a folder")
    if (root / "Dataset").is_dir():
        splits = []
        for split in SPLITS.values():
            if not (root / split.image_dir).is_dir():
                continue
            assert split.mask_dir is not None
            rep = check_split(
                split.name,
                root / split.image_dir,
                root / split.mask_dir,
                split.mask_kind,
                root / split.edge_dir if split.edge_dir else None,
                soft_binary=split.name in SOFT_BINARY_SPLITS,
            )
            if split.name == "multiclass-train":
                _check_split_lists(root, rep)
            splits.append(rep)
        if not splits:
            raise InfnetError(f"{root}: has Dataset/ but none of the COVID-SemiSeg split folders")
        return DatasetReport(root, "covid-semiseg", splits)
    image_dir = _first_dir(root, IMAGE_DIR_NAMES)
    mask_dir = _first_dir(root, MASK_DIR_NAMES)
    if image_dir is None or mask_dir is None:
        raise InfnetError(
            f"{root}: not a dataset folder (expected a COVID-SemiSeg root with Dataset/, or "
            "images/ (or Imgs/) and masks/ (or GT/) subfolders)"
        )
    edge_dir = _first_dir(root, EDGE_DIR_NAMES)
    return DatasetReport(root, "generic", [check_split(root.name, image_dir, mask_dir, "auto", edge_dir)])


def _issue_lines(issues: list[str], max_issues: int) -> list[str]:
    shown = issues if max_issues <= 0 else issues[:max_issues]
    lines = [f"    {msg}" for msg in shown]
    if len(shown) < len(issues):
        lines.append(f"    ... and {len(issues) - len(shown)} more (--max-issues 0 lists all)")
    return lines


def format_report(report: DatasetReport, max_issues: int = 20) -> str:
    """Counts per split, then the errors and warnings (at most ``max_issues`` per split; 0 = all)."""
    title = "COVID-SemiSeg dataset" if report.layout == "covid-semiseg" else "dataset"
    lines = [f"{title} at {report.path}"]
    width = max(len(s.name) for s in report.splits)
    for s in report.splits:
        edges = f", {s.n_edges} edges" if s.edge_dir else ""
        status = "ok" if s.ok else f"{len(s.errors)} error(s)"
        if s.warnings:
            status += f", {len(s.warnings)} warning(s)"
        lines.append(
            f"  {s.name.ljust(width)}  {s.n_images} images, {s.n_masks} masks{edges}, {s.n_pairs} pairs "
            f"({s.n_empty_masks} empty masks; {s.mask_kind}): {status}"
        )
    for s in report.splits:
        if s.errors:
            lines.append(f"errors in {s.name}:")
            lines += _issue_lines(s.errors, max_issues)
        if s.warnings:
            lines.append(f"warnings in {s.name}:")
            lines += _issue_lines(s.warnings, max_issues)
    verdict = "OK" if report.ok else "FAILED"
    counts = f"{report.n_errors} error(s), {report.n_warnings} warning(s)"
    lines.append(f"{verdict}: {len(report.splits)} split(s), {counts}")
    return "\n".join(lines)
