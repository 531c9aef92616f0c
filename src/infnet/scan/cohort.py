"""Many scans: a list file in, one output folder per scan, a resumable manifest, split across torchrun ranks.

Each scan gets ``OUTDIR/<id>/`` (ids from the input names, made unique). ``OUTDIR/manifest.jsonl`` gets one
JSON line per finished or failed scan (one ``write`` of a short line in append mode, so ranks can share it).
A scan counts as done when the manifest says so *and* its report.json exists; done scans are skipped on a
rerun. Under ``torchrun`` (RANK / WORLD_SIZE set) rank r takes the items i with i % world == r.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path

from infnet.errors import InfnetError
from infnet.predictor import SlicePredictor
from infnet.scan.outputs import check_output_dir, write_outputs
from infnet.scan.pipeline import segment_file

MANIFEST = "manifest.jsonl"


def read_list(path: str | os.PathLike) -> list[Path]:
    """Scan paths from a text file: one per line, blank lines and '#' comments skipped.

    Relative paths are taken from the current folder when they exist there, else from the list's folder.
    """
    path = Path(path)
    if not path.is_file():
        raise InfnetError(f"{path}: list file not found")
    items = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        p = Path(line).expanduser()
        if not p.is_absolute() and not p.exists() and (path.parent / p).exists():
            p = path.parent / p
        items.append(p)
    if not items:
        raise InfnetError(f"{path}: no scans listed")
    return items


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr", ".dcm"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    else:
        name = path.stem if path.is_file() else name
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "scan"


def scan_ids(items: list[Path]) -> list[str]:
    """Folder-safe, unique ids (a short hash of the full path is added to names that repeat)."""
    stems = [_stem(p) for p in items]
    out = []
    for p, s in zip(items, stems, strict=True):
        if stems.count(s) > 1:
            s = f"{s}-{hashlib.sha1(str(p.resolve()).encode()).hexdigest()[:8]}"
        out.append(s)
    return out


def dist_rank() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment; (0, 1) outside it."""
    try:
        rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    except ValueError:
        raise InfnetError("RANK / WORLD_SIZE must be integers") from None
    if world < 1 or not 0 <= rank < world:
        raise InfnetError(f"bad RANK={rank} / WORLD_SIZE={world}")
    return rank, world


def done_ids(outdir: Path) -> set[str]:
    """Ids the manifest marks done whose report.json is present."""
    manifest = outdir / MANIFEST
    done = set()
    if manifest.is_file():
        for line in manifest.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a crash
                continue
            if entry.get("status") == "done" and (outdir / entry["id"] / "report.json").is_file():
                done.add(entry["id"])
    return done


def _append(manifest: Path, entry: dict) -> None:
    line = (json.dumps(entry) + "\n").encode()
    fd = os.open(manifest, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def segment_cohort(
    predictor: SlicePredictor, items: list[str | os.PathLike], outdir: str | os.PathLike, *,
    rank: int | None = None, world: int | None = None, progress: bool = False, quiet: bool = False, **options,
) -> dict:  # fmt: skip
    """Segment this rank's share of ``items`` into ``outdir/<id>/``; returns counts and failures.

    ``options`` go to :func:`infnet.scan.pipeline.segment_file`. A scan that fails with a user error
    (unreadable, not CT, ...) is recorded as failed and the next one is processed.
    """
    overlays = options.pop("overlays", True)
    paths = [Path(p) for p in items]
    outdir = Path(outdir)
    for p in paths:
        check_output_dir(p, outdir)
    if rank is None or world is None:
        rank, world = dist_rank()
    outdir.mkdir(parents=True, exist_ok=True)
    ids = scan_ids(paths)
    done = done_ids(outdir)
    summary: dict = {"rank": rank, "world_size": world, "done": 0, "skipped": 0, "failed": []}
    mine = [(p, sid) for i, (p, sid) in enumerate(zip(paths, ids, strict=True)) if i % world == rank]
    for n, (path, sid) in enumerate(mine, start=1):
        if sid in done:
            summary["skipped"] += 1
            continue
        t = time.perf_counter()
        try:
            result = segment_file(predictor, path, progress=progress, **options)
            write_outputs(result, outdir / sid, overlays=overlays)
        except InfnetError as exc:
            summary["failed"].append({"id": sid, "input": str(path), "error": str(exc)})
            _append(outdir / MANIFEST, {"id": sid, "input": str(path), "status": "failed", "error": str(exc),
                                        "rank": rank})  # fmt: skip
            print(f"infnet: [{n}/{len(mine)}] {path}: failed: {exc}", file=sys.stderr)
            continue
        m = result.measurements
        qty = "volume_ml" if "volume" in m["units"] else f"area_{m['units']['area']}"
        entry = {"id": sid, "input": str(path), "status": "done", "rank": rank,
                 "seconds": round(time.perf_counter() - t, 2), "model": result.model,
                 "lung": (m.get("lung") or {}).get(qty), "infection": m["infection"][qty],
                 "percent_of_lung": m["infection"]["percent_of_lung"], "unit": qty}  # fmt: skip
        _append(outdir / MANIFEST, entry)
        summary["done"] += 1
        if not quiet:
            print(f"[{n}/{len(mine)}] {path} -> {outdir / sid}", file=sys.stderr)
    return summary
