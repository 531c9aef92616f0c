"""Inf-Net losses (paper eq. 4-5): weighted IoU + weighted BCE per side output, plus BCE on edges.

The weighting follows F3Net/BASNet: w = 1 + 5 |avgpool31(G) - G|, which is large near object boundaries.
Unlike the official repository (whose ``reduce='none'`` keyword is ignored so the weights never apply), the
per-pixel BCE here really is weighted.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def boundary_weights(mask: torch.Tensor, kernel: int = 31, gain: float = 5.0) -> torch.Tensor:
    """w = 1 + gain * |avgpool_k(G) - G| for masks (B,1,H,W) in [0,1]; same shape out."""
    local_mean = F.avg_pool2d(mask, kernel_size=kernel, stride=1, padding=kernel // 2, count_include_pad=True)
    return 1.0 + gain * (local_mean - mask).abs()


def weighted_bce(logits: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Per-image weighted BCE, sum(w * bce) / sum(w); shape (B,). Inputs (B,1,H,W)."""
    bce = F.binary_cross_entropy_with_logits(logits, mask, reduction="none")
    return (weight * bce).sum(dim=(2, 3)).squeeze(1) / weight.sum(dim=(2, 3)).squeeze(1)


def weighted_iou(logits: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Per-image weighted soft IoU loss 1 - (I + 1) / (U - I + 1); shape (B,). Empty mask and prediction -> 0."""
    prob = torch.sigmoid(logits)
    inter = (prob * mask * weight).sum(dim=(2, 3))
    union = ((prob + mask) * weight).sum(dim=(2, 3))
    return (1.0 - (inter + 1.0) / (union - inter + 1.0)).squeeze(1)


def structure_loss(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Weighted IoU + weighted BCE, averaged over the batch. ``logits`` is resized to the mask when needed."""
    if logits.shape[-2:] != mask.shape[-2:]:
        logits = F.interpolate(logits, size=mask.shape[-2:], mode="bilinear", align_corners=False)
    w = boundary_weights(mask)
    return (weighted_bce(logits, mask, w) + weighted_iou(logits, mask, w)).mean()


def infnet_loss(outputs: dict, mask: torch.Tensor, edge: torch.Tensor | None = None) -> torch.Tensor:
    """Paper eq. (5): sum of structure losses over the side outputs (S_g, S_5, S_4, S_3) + BCE(edge)."""
    loss = sum(structure_loss(m, mask) for m in outputs["maps"])
    if outputs.get("edge") is not None and edge is not None:
        loss = loss + F.binary_cross_entropy_with_logits(outputs["edge"], edge)
    return loss
