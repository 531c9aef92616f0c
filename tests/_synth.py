"""Tiny synthetic slice datasets for fast end-to-end tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def make_slices(folder: Path, n: int = 6, size: tuple[int, int] = (64, 72), seed: int = 0, ext: str = ".png"):
    """Write n grey slices with one bright disc each (+ noise) and their {0,255} masks; returns (imgs, masks)."""
    rng = np.random.default_rng(seed)
    imgs, masks = Path(folder) / "images", Path(folder) / "masks"
    imgs.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    for i in range(n):
        cy, cx, r = rng.integers(16, h - 16), rng.integers(16, w - 16), rng.integers(6, 12)
        mask = ((yy - cy) ** 2 + (xx - cx) ** 2) <= r * r
        img = rng.normal(70, 12, size).clip(0, 255)
        img[mask] += 110
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(imgs / f"{i}{ext}")
        Image.fromarray((mask * 255).astype(np.uint8)).save(masks / f"{i}.png")
    return imgs, masks
