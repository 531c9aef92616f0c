"""Density split: ground-glass opacity vs consolidation by attenuation inside an infection map.

Consolidation is denser than ground-glass opacity (it hides the vessels; GGO leaves them visible), so inside the
infected area a pixel's grey level and that of its neighbourhood say most of which it is. This model is a
logistic regression on that: features are the slice's grey level and Gaussian blurs of it at ``sigmas`` pixels,
standardised; ``z = w . f + b`` is the consolidation-vs-GGO logit. Inside the prior (>= 0.5) pixels with
``z > 0`` are consolidation, after a morphological opening of ``opening`` 3x3 steps (thin bright structures in GGO,
i.e. vessels, are not consolidation); the rest of the prior is GGO.

It follows the multi-class contract: input (N,4,H,W) = 3 normalised grey channels + the prior in [-1, 1]
(:func:`infnet.multiclass.data.to_input`), output logits (N,3,H,W) whose softmax is background = 1 - prior,
GGO = prior x (not consolidation), consolidation = prior x consolidation. Its parameters are fitted by
:func:`infnet.multiclass.density.fit_density_split`, not by gradient descent.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from infnet.models.registry import register_model

DENSITY = "density-split"  # the registered architecture name
FIT_DENSITY = "infnet multiclass fit-density"  # how one is made
EPS = 1e-4  # floor of each class probability, so the logits stay finite


@dataclass
class DensitySplitConfig:
    """Architecture of a density split (what a checkpoint needs to be rebuilt)."""

    sigmas: list[float] = field(default_factory=lambda: [1.0, 2.0, 4.0, 8.0])  # blur scales in input pixels
    opening: int = 2  # 3x3 opening steps applied to the consolidation mask
    in_chans: int = 4
    num_classes: int = 3

    def to_dict(self) -> dict:
        return asdict(self)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N,1,H,W), reflect padding (clamped where the image is smaller than the kernel)."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    for dim in (-1, -2):
        pad = min(radius, x.shape[dim] - 1)
        kk = k[radius - pad : radius + pad + 1]
        if dim == -1:
            x = F.conv2d(F.pad(x, (pad, pad, 0, 0), mode="reflect" if pad else "replicate"), kk.view(1, 1, 1, -1))
        else:
            x = F.conv2d(F.pad(x, (0, 0, pad, pad), mode="reflect" if pad else "replicate"), kk.view(1, 1, -1, 1))
    return x


def binary_opening(mask: torch.Tensor, steps: int) -> torch.Tensor:
    """Opening of a float {0,1} mask (N,1,H,W) by ``steps`` 3x3 erosions then as many dilations."""
    for _ in range(steps):
        mask = -F.max_pool2d(-mask, 3, stride=1, padding=1)
    for _ in range(steps):
        mask = F.max_pool2d(mask, 3, stride=1, padding=1)
    return mask


class DensitySplit(nn.Module):
    """GGO / consolidation split of an infection prior by local density (module docstring)."""

    input_size = 0  # each slice at its own size: the blur scales are in the slice's pixels

    def __init__(self, config: DensitySplitConfig):
        super().__init__()
        self.config = config
        self.mean, self.std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
        n = 1 + len(config.sigmas)
        self.weight = nn.Parameter(torch.zeros(n))
        self.bias = nn.Parameter(torch.zeros(1))
        self.register_buffer("feature_mean", torch.zeros(n))
        self.register_buffer("feature_std", torch.ones(n))

    def features(self, grey: torch.Tensor) -> torch.Tensor:
        """Grey level in [0, 1] (N,1,H,W) -> raw features (N,F,H,W): the grey level and its blurs."""
        return torch.cat([grey] + [gaussian_blur(grey, s) for s in self.config.sigmas], dim=1)

    def grey(self, x: torch.Tensor) -> torch.Tensor:
        """The grey level in [0, 1] (N,1,H,W) from the normalised input's first channel."""
        return (x[:, :1] * self.std[0] + self.mean[0]).clamp(0.0, 1.0)

    def split_logit(self, x: torch.Tensor) -> torch.Tensor:
        """Consolidation-vs-GGO logit z (N,1,H,W) of an input (N,4,H,W)."""
        f = (self.features(self.grey(x)) - self.feature_mean.view(1, -1, 1, 1)) / self.feature_std.view(1, -1, 1, 1)
        return (f * self.weight.view(1, -1, 1, 1)).sum(dim=1, keepdim=True) + self.bias

    def forward(self, x: torch.Tensor) -> dict:
        prior = ((x[:, 3:4] + 1.0) / 2.0).clamp(0.0, 1.0)
        cons = ((self.split_logit(x) > 0) & (prior >= 0.5)).to(x.dtype)
        cons = binary_opening(cons, self.config.opening)
        probs = torch.cat([1.0 - prior, prior * (1.0 - cons), prior * cons], dim=1).clamp(min=EPS)
        out = probs.log()
        return {"maps": [out], "edge": None, "out": out}


DESCRIPTION = "GGO / consolidation split of an infection map by local density (a fitted logistic regression)"


@register_model(DENSITY, DESCRIPTION)
def density_split(encoder_weights: str | None = None, **kw) -> DensitySplit:
    """Build a density split; ``encoder_weights`` is accepted for the registry's signature and ignored."""
    return DensitySplit(DensitySplitConfig(**kw))
