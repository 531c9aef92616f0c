"""Building blocks of Semi-Inf-Net: the pseudo-label manifest, linked training folders, trainer steps."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from infnet.errors import InfnetError
from infnet.io.images import read_gray, write_png
from infnet.training.config import TrainConfig


@dataclass(frozen=True)
class Sample:
    """One training pair; ``key`` is its unique stem in linked folders (a prefix keeps sources apart)."""

    key: str
    image: Path
    mask: Path


class Manifest:
    """JSON lines, one per pseudo-label: round, image, label, checkpoint, seed (append-only, crash tolerant)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.entries: dict[str, dict] = {}
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by a kill
                    continue
                self.entries[entry["image"]] = entry

    def done(self, image: Path) -> dict | None:
        """The entry for ``image`` when its label file exists."""
        entry = self.entries.get(str(image))
        return entry if entry is not None and Path(entry["label"]).is_file() else None

    def add(self, entry: dict) -> None:
        self.entries[entry["image"]] = entry
        with open(self.path, "a") as fh:
            fh.write(json.dumps(entry) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def link_samples(samples: list[Sample], folder: Path) -> tuple[Path, Path]:
    """(Re)build ``folder/images`` and ``folder/masks`` as symlinks to the samples; the sources are untouched."""
    folder = Path(folder)
    for sub in ("images", "masks"):
        target = folder / sub
        if target.exists():
            for p in target.iterdir():  # only our own links live here
                if not p.is_symlink():
                    raise InfnetError(f"{p}: unexpected file in a linked training folder; remove it")
            shutil.rmtree(target)
        target.mkdir(parents=True)
    for s in samples:
        for path, sub in ((s.image, "images"), (s.mask, "masks")):
            if not path.is_file():
                raise InfnetError(f"{path}: training file not found")
            os.symlink(path.resolve(), folder / sub / f"{s.key}{path.suffix.lower()}")
    return folder / "images", folder / "masks"


def write_pseudo_labels(
    checkpoint: Path,
    images: list[Path],
    out_dir: Path,
    manifest: Manifest,
    round_no: int,
    seed: int,
    threshold: float = 0.5,
    input_size: int = 352,
    device: str = "auto",
    batch_size: int = 8,
) -> None:
    """Predict {0,255} PNG masks for ``images`` (skipping those already in the manifest) with ``checkpoint``."""
    todo = [p for p in images if manifest.done(p) is None]
    if not todo:
        return
    from infnet.inference import Segmenter
    from infnet.models.registry import load_checkpoint

    seg = Segmenter(
        load_checkpoint(checkpoint),
        name=Path(checkpoint).stem,
        input_size=input_size,
        device=None if device == "auto" else device,
        batch_size=batch_size,
    )
    for i in range(0, len(todo), batch_size):
        chunk = todo[i : i + batch_size]
        probs = seg.predict_proba([read_gray(p) for p in chunk])
        for path, prob in zip(chunk, probs, strict=True):
            label = Path(out_dir) / f"{path.stem}.png"
            write_png(label, np.where(prob[0] >= threshold, 255, 0).astype(np.uint8))
            manifest.add(dict(round=round_no, image=str(path), label=str(label), checkpoint=str(checkpoint), seed=seed))


def train_step(cfg: TrainConfig, run_dir: Path, init: Path | None = None, progress: bool = True) -> Path:
    """One trainer run, resumable: continue ``run_dir`` if it has state, else start (from ``init``'s weights).

    Returns the run's ``last.safetensors`` (each step hands its final weights to the next).
    """
    from dataclasses import replace

    from infnet.training.trainer import train

    run_dir = Path(run_dir)
    resume = (run_dir / "state.pt").is_file()
    if init is not None and not resume:
        cfg = replace(cfg, init_checkpoint=str(init))
    train(cfg, run_dir, resume=resume, progress=progress)
    return run_dir / "last.safetensors"
