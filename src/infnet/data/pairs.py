"""Pairing images with masks by file stem (the generic 'folder of images + folder of masks' layout)."""

from __future__ import annotations

from pathlib import Path

from infnet.errors import InfnetError
from infnet.io.images import list_images


def index_by_stem(folder: str | Path) -> dict[str, Path]:
    """Map file stem -> path for the images in ``folder``; a stem present twice is an error."""
    out: dict[str, Path] = {}
    for path in list_images(folder):
        if path.stem in out:
            raise InfnetError(f"{path}: stem '{path.stem}' appears twice in {folder} ({out[path.stem].name})")
        out[path.stem] = path
    return out


def pair_by_stem(
    image_dir: str | Path, mask_dir: str | Path, stems: list[str] | None = None
) -> list[tuple[str, Path, Path]]:
    """(stem, image, mask) for every image; an image without a mask is an error naming it.

    ``stems`` restricts (and orders) the result, e.g. to a split list.
    """
    images = index_by_stem(image_dir)
    masks = index_by_stem(mask_dir)
    if not images:
        raise InfnetError(f"{image_dir}: no images found")
    wanted = stems if stems is not None else sorted(images, key=_natural_key)
    pairs = []
    for stem in wanted:
        if stem not in images:
            raise InfnetError(f"{image_dir}: no image for '{stem}'")
        if stem not in masks:
            raise InfnetError(f"{images[stem]}: no mask with stem '{stem}' in {mask_dir}")
        pairs.append((stem, images[stem], masks[stem]))
    return pairs


def _natural_key(stem: str):
    """Sort '2' before '10'."""
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", stem)]


natural_key = _natural_key
