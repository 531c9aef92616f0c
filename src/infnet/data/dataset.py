"""The training Dataset: (image 3xSxS normalised, mask 1xSxS, edge 1xSxS) from paired slice files."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from infnet.data.edges import mask_to_edge
from infnet.data.pairs import index_by_stem, pair_by_stem
from infnet.data.presentation import PresentationAugment, View, uint8_to_hu
from infnet.errors import InfnetError
from infnet.io.images import read_gray

PAPER_RATES = (0.75, 1.0, 1.25)


def scaled_size(size: int, rate: float, multiple: int = 32) -> int:
    """Multi-scale training size: ``size * rate`` rounded to a multiple of 32 (352 -> 256 / 352 / 448)."""
    return max(multiple, int(math.floor(size * rate / multiple + 0.5)) * multiple)


def to_tensor_image(gray: np.ndarray, size: int | None, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 (H,W) -> float (3,S,S): grey repeated to 3 channels, [0,1], normalised, bilinear-resized."""
    t = torch.from_numpy(np.array(gray, dtype=np.uint8, copy=True)).float().div_(255.0)[None, None]
    if size is not None:
        t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    t = t[0].expand(3, -1, -1)
    m = torch.tensor(mean, dtype=t.dtype).view(3, 1, 1)
    s = torch.tensor(std, dtype=t.dtype).view(3, 1, 1)
    return (t - m) / s


def _mask_tensor(mask: np.ndarray, size: int) -> torch.Tensor:
    t = torch.from_numpy((mask > 127).astype(np.float32))[None, None]
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)[0]


class SliceDataset(Dataset):
    """Paired slices, held in memory (the datasets here are small: 50-1600 slices of ~300x300 bytes).

    ``mask_threshold``: masks are binarised at > 127 (pseudo-labels carry interpolated grey values).
    Edges come from ``edge_dir`` when given, else from the mask (:func:`mask_to_edge`).
    ``presentation`` draws a random presentation per item (training); ``view`` shows every item in one fixed
    presentation (validation under it). Both start from the 8-bit slice read as HU in the training window.
    """

    def __init__(
        self,
        image_dir: str | Path,
        mask_dir: str | Path,
        edge_dir: str | Path | None = None,
        stems: list[str] | None = None,
        size: int = 352,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.5, 0.5, 0.5),
        augment: bool = False,
        presentation: PresentationAugment | None = None,
        view: View | None = None,
    ):
        pairs = pair_by_stem(image_dir, mask_dir, stems)
        edges = index_by_stem(edge_dir) if edge_dir else {}
        self.stems, self.images, self.masks, self.edges = [], [], [], []
        for stem, img_path, mask_path in pairs:
            img, mask = read_gray(img_path), read_gray(mask_path)
            if img.shape != mask.shape:
                raise InfnetError(f"{mask_path}: mask size {mask.shape[::-1]} differs from image {img.shape[::-1]}")
            edge = read_gray(edges[stem]) if stem in edges else mask_to_edge(mask)
            if edge.shape != mask.shape:
                raise InfnetError(f"{edges[stem]}: edge size differs from its mask")
            self.stems.append(stem)
            self.images.append(img)
            self.masks.append(mask)
            self.edges.append(edge)
        self.size, self.mean, self.std, self.augment = size, tuple(mean), tuple(std), augment
        self.presentation, self.view = presentation, view

    def __len__(self) -> int:
        return len(self.stems)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        img, mask, edge = self.images[i], self.masks[i], self.edges[i]
        if self.view is not None:
            img, mask, edge = self.view.apply(img, [mask, edge], seed=i)
        elif self.presentation is not None:
            # Seeded from torch's global RNG, so runs are reproducible and resumable like the other augmentation.
            rng = np.random.default_rng(int(torch.randint(2**31 - 1, ())))
            img, (mask, edge) = self.presentation(uint8_to_hu(img), [mask, edge], rng)
        return to_training_triplet(img, mask, edge, self.size, self.mean, self.std, self.augment)


def to_training_triplet(
    img: np.ndarray, mask: np.ndarray, edge: np.ndarray, size: int, mean: Sequence[float], std: Sequence[float],
    augment: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """uint8 slice, mask and edge (H,W) -> resized, normalised tensors, optionally with :func:`augment_triplet`."""
    image = to_tensor_image(img, size, mean, std)
    m, e = _mask_tensor(mask, size), _mask_tensor(edge, size)
    if augment:
        return augment_triplet(image, m, e)
    return image, m, e


def augment_triplet(image: torch.Tensor, mask: torch.Tensor, edge: torch.Tensor):
    """Random flips, a rotation within +-15 degrees and intensity jitter (uses torch's global RNG)."""
    stack = torch.cat([image, mask, edge], dim=0)
    if torch.rand(()) < 0.5:
        stack = stack.flip(-1)
    if torch.rand(()) < 0.5:
        stack = stack.flip(-2)
    angle = float(torch.empty(()).uniform_(-15, 15))
    theta = torch.tensor(
        [
            [math.cos(math.radians(angle)), -math.sin(math.radians(angle)), 0.0],
            [math.sin(math.radians(angle)), math.cos(math.radians(angle)), 0.0],
        ]
    )[None]
    grid = F.affine_grid(theta, [1, *stack.shape], align_corners=False)
    stack = F.grid_sample(stack[None], grid, mode="bilinear", padding_mode="border", align_corners=False)[0]
    image, mask, edge = stack[:3], stack[3:4], stack[4:5]
    gain = float(torch.empty(()).uniform_(0.9, 1.1))
    bias = float(torch.empty(()).uniform_(-0.1, 0.1))
    return image * gain + bias, mask, edge


def multiscale_batch(images: torch.Tensor, masks: torch.Tensor, edges: torch.Tensor, size: int):
    """Resize a batch to ``size`` (bilinear) for one scale of multi-scale training."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images, masks, edges

    def r(t):
        return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)

    return r(images), r(masks), r(edges)


def iter_batches(dataset: Dataset, batch_size: int):
    """Consecutive items of ``dataset`` stacked into batches (for validation; no shuffling)."""
    for start in range(0, len(dataset), batch_size):
        items = [dataset[j] for j in range(start, min(start + batch_size, len(dataset)))]
        yield tuple(torch.stack(parts) for parts in zip(*items, strict=True))
