"""Multi-class data: a CT slice + an infection prior in, a label map out (0 background, 1 GGO, 2 consolidation).

The network input has 4 channels: the grey slice repeated to 3 normalised channels (as for the binary models) and
the infection prior binarised at > 127 (or, for models trained with soft priors, its grey level / 255), scaled to
[-1, 1]. Training uses the ground-truth infection mask as the prior (paper section III-E); at inference the prior
comes from a binary infection model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from infnet.data.dataset import to_tensor_image
from infnet.data.pairs import index_by_stem, pair_by_stem
from infnet.data.presentation import PresentationAugment, View, uint8_to_hu
from infnet.errors import InfnetError
from infnet.io.images import read_gray, read_label

CLASSES = ("background", "ggo", "consolidation")
NUM_CLASSES = len(CLASSES)
IN_CHANS = 4


def read_class_label(path: str | Path) -> np.ndarray:
    """Read a class-index mask (palette PNG or grey) as uint8 (H,W) in {0,1,2}; other values raise naming the file."""
    label = read_label(path)
    bad = sorted(set(np.unique(label).tolist()) - set(range(NUM_CLASSES)))
    if bad:
        shown = ", ".join(str(v) for v in bad[:5]) + (", ..." if len(bad) > 5 else "")
        raise InfnetError(
            f"{path}: unknown class values {shown} (expected 0 background, 1 ground-glass opacity, 2 consolidation)"
        )
    return label


def read_prior(path: str | Path, shape: tuple[int, int], soft: bool = False) -> np.ndarray:
    """Read an infection prior as uint8 {0,255} (``soft``: its grey levels) and check it has the slice's
    ``shape`` (H,W)."""
    prior = read_gray(path)
    if prior.shape != tuple(shape):
        raise InfnetError(
            f"{path}: prior size {prior.shape[1]}x{prior.shape[0]} differs from its image {shape[1]}x{shape[0]}"
        )
    return prior if soft else np.where(prior > 127, 255, 0).astype(np.uint8)


def to_input(
    gray: np.ndarray,
    prior: np.ndarray,
    size: int | None,
    mean: Sequence[float],
    std: Sequence[float],
    soft: bool = False,
) -> torch.Tensor:
    """uint8 slice (H,W) + uint8 prior (H,W) -> float (4,S,S): 3 normalised grey channels + prior in [-1, 1]
    (binarised at > 127, or ``soft``: grey level / 255)."""
    image = to_tensor_image(gray, size, mean, std)
    prior = np.asarray(prior)
    p = prior.astype(np.float32) / 255.0 if soft else (prior > 127).astype(np.float32)
    p = torch.from_numpy(p)[None, None]
    if size is not None:
        p = F.interpolate(p, size=(size, size), mode="bilinear", align_corners=False)
    return torch.cat([image, p[0] * 2.0 - 1.0], dim=0)


def resize_label(label: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """Nearest-neighbour resize of a label map (H,W) -> int64 (S,S)."""
    t = torch.from_numpy(np.array(label, dtype=np.float32))[None, None]
    return F.interpolate(t, size=(size, size), mode="nearest")[0, 0].long()


class MultiClassDataset(Dataset):
    """(input 4xSxS, label SxS int64) pairs held in memory.

    ``prior_dir`` None derives the prior from the label (label > 0 = the infection ground truth).
    ``gt_prior_rate``: with a ``prior_dir``, the chance per sample of using the ground-truth prior instead, so
    that a model trained on a binary model's maps also sees exact boundaries. ``soft_prior`` keeps the given
    priors' grey levels (probabilities) instead of binarising them. ``rotate``: with ``augment``, a random
    rotation within +-``rotate`` degrees after the flips. ``presentation`` draws a random presentation of the
    slice, label and prior per item (training); ``view`` shows every item in one fixed presentation (validation).
    """

    def __init__(
        self,
        image_dir: str | Path,
        label_dir: str | Path,
        prior_dir: str | Path | None = None,
        stems: list[str] | None = None,
        size: int = 352,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.5, 0.5, 0.5),
        augment: bool = False,
        prior_noise: bool = False,
        gt_prior_rate: float = 0.0,
        soft_prior: bool = False,
        rotate: float = 0.0,
        presentation: PresentationAugment | None = None,
        view: View | None = None,
    ):
        if not 0.0 <= gt_prior_rate <= 1.0:
            raise InfnetError(f"gt_prior_rate must be in [0, 1], got {gt_prior_rate}")
        if rotate < 0:
            raise InfnetError(f"rotate must be >= 0 degrees, got {rotate}")
        pairs = pair_by_stem(image_dir, label_dir, stems)
        priors = index_by_stem(prior_dir) if prior_dir else None
        self.stems, self.images, self.labels, self.priors = [], [], [], []
        for stem, img_path, label_path in pairs:
            img, label = read_gray(img_path), read_class_label(label_path)
            if img.shape != label.shape:
                raise InfnetError(
                    f"{label_path}: label size {label.shape[1]}x{label.shape[0]} differs from its image "
                    f"{img.shape[1]}x{img.shape[0]}"
                )
            if priors is None:
                prior = np.where(label > 0, 255, 0).astype(np.uint8)
            elif stem not in priors:
                raise InfnetError(f"{img_path}: no prior with stem '{stem}' in {prior_dir}")
            else:
                prior = read_prior(priors[stem], img.shape, soft=soft_prior)
            self.stems.append(stem)
            self.images.append(img)
            self.labels.append(label)
            self.priors.append(prior)
        self.size, self.mean, self.std, self.augment = size, tuple(mean), tuple(std), augment
        self.prior_noise, self.soft_prior, self.rotate = prior_noise, soft_prior, rotate
        self.gt_prior_rate = gt_prior_rate if priors is not None else 0.0
        self.presentation, self.view = presentation, view

    def __len__(self) -> int:
        return len(self.stems)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        prior = self.priors[i]
        # Drawn only when mixing, so runs without it keep their random stream (exact resume, old runs).
        if self.gt_prior_rate > 0 and torch.rand(()) < self.gt_prior_rate:
            prior = np.where(self.labels[i] > 0, 255, 0).astype(np.uint8)
        image, label = self.images[i], self.labels[i]
        if self.view is not None:
            image, label, prior = self.view.apply(image, [label, prior], seed=i)
        elif self.presentation is not None:
            # seeded from torch's RNG, so resumed runs replay it
            rng = np.random.default_rng(int(torch.randint(2**31 - 1, ())))
            image, (label, prior) = self.presentation(uint8_to_hu(image), [label, prior], rng)
        x = to_input(image, prior, self.size, self.mean, self.std, soft=self.soft_prior)
        y = resize_label(label, self.size)
        if self.prior_noise:
            x[3] = perturb_prior(x[3])
        if self.augment:  # random flips (torch's global RNG, so resumed runs replay it)
            if torch.rand(()) < 0.5:
                x, y = x.flip(-1), y.flip(-1)
            if torch.rand(()) < 0.5:
                x, y = x.flip(-2), y.flip(-2)
            if self.rotate > 0:
                x, y = rotate_pair(x, y, float(torch.empty(()).uniform_(-self.rotate, self.rotate)))
        return x, y


def rotate_pair(x: torch.Tensor, y: torch.Tensor, degrees: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate an input (C,S,S) bilinearly and its label map (S,S) by nearest neighbour, about the centre."""
    a = math.radians(degrees)
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]])[None]
    grid = F.affine_grid(theta, [1, 1, *x.shape[-2:]], align_corners=False)
    x = F.grid_sample(x[None], grid, mode="bilinear", padding_mode="border", align_corners=False)[0]
    y = F.grid_sample(y[None, None].float(), grid, mode="nearest", padding_mode="border", align_corners=False)
    return x, y[0, 0].long()


def perturb_prior(prior: torch.Tensor, p: float = 0.8) -> torch.Tensor:
    """Randomly degrade a prior channel (S,S) in [-1, 1] like a model's infection map would be wrong.

    With probability ``p``: dilate or erode by 1..S/44 pixels (8 at 352), then with probability 0.5 blank a
    random box of S/16..S/4 a side (a missed lesion). Uses torch's global RNG, so resumed runs replay it.
    """
    if torch.rand(()) >= p:
        return prior
    s = prior.shape[-1]
    q = prior[None, None]
    r = int(torch.randint(1, max(2, s // 44) + 1, ()))
    if torch.rand(()) < 0.5:
        q = F.max_pool2d(q, 2 * r + 1, stride=1, padding=r)
    else:
        q = -F.max_pool2d(-q, 2 * r + 1, stride=1, padding=r)
    q = q[0, 0].clone()
    if torch.rand(()) < 0.5:
        h, w = (int(v) for v in torch.randint(s // 16, s // 4 + 1, (2,)))
        y0, x0 = int(torch.randint(0, s - h + 1, ())), int(torch.randint(0, s - w + 1, ()))
        q[y0 : y0 + h, x0 : x0 + w] = -1.0
    return q


def class_dice(pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Per-image Dice of classes 1..C-1 for int label maps (B,H,W); (B, C-1). Empty GT and prediction count as 1."""
    out = []
    for c in range(1, NUM_CLASSES):
        p, g = pred == c, label == c
        inter = (p & g).sum(dim=(1, 2)).float()
        total = (p.sum(dim=(1, 2)) + g.sum(dim=(1, 2))).float()
        out.append(torch.where(total > 0, 2 * inter / total.clamp(min=1), torch.ones_like(total)))
    return torch.stack(out, dim=1)
