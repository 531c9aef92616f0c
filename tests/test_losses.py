"""Losses: hand-computed values, the weights really weight, edge term, gradients."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from infnet.training.losses import boundary_weights, infnet_loss, structure_loss, weighted_bce, weighted_iou


def test_boundary_weights_are_one_in_flat_regions_and_larger_near_edges():
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 16:48, 16:48] = 1
    w = boundary_weights(mask)
    assert w.shape == mask.shape
    assert torch.allclose(w[..., 32, 32], torch.tensor(1.0), atol=1e-6)  # deep inside: local mean = 1
    assert float(w[..., 16, 32]) > 2.0  # on the boundary
    assert torch.allclose(boundary_weights(torch.zeros(1, 1, 8, 8)), torch.ones(1, 1, 8, 8))


def test_weighted_bce_uniform_weights_equals_plain_bce():
    torch.manual_seed(0)
    logits, mask = torch.randn(2, 1, 8, 8), (torch.rand(2, 1, 8, 8) > 0.5).float()
    ours = weighted_bce(logits, mask, torch.ones_like(mask))
    ref = F.binary_cross_entropy_with_logits(logits, mask, reduction="none").mean(dim=(1, 2, 3))
    assert torch.allclose(ours, ref, atol=1e-6)


def test_weighted_bce_weights_actually_weight():
    logits = torch.tensor([[[[0.0, 5.0]]]])  # bce: log 2 and 5 + log(1 + e^-5) for target 0
    mask = torch.zeros(1, 1, 1, 2)
    w = torch.tensor([[[[1.0, 3.0]]]])
    b0, b1 = math.log(2), 5 + math.log1p(math.exp(-5))
    assert abs(float(weighted_bce(logits, mask, w)) - (b0 + 3 * b1) / 4) < 1e-5


def test_weighted_iou_hand_case_and_empty():
    big = torch.full((1, 1, 2, 2), 50.0)  # sigmoid ~ 1
    mask = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    w = torch.ones_like(mask)
    # I = 2, U = 4 + 2 = 6 -> 1 - 3 / 5
    assert abs(float(weighted_iou(big, mask, w)) - 0.4) < 1e-5
    empty = torch.zeros(1, 1, 2, 2)
    assert abs(float(weighted_iou(-big, empty, w))) < 1e-5  # empty mask, empty prediction: no loss


def test_structure_loss_resizes_logits_and_rewards_correct_prediction():
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    good = (mask * 2 - 1) * 10
    assert structure_loss(F.avg_pool2d(good, 2), mask) < structure_loss(-good, mask)
    assert float(structure_loss(good, mask)) < 0.01


def test_infnet_loss_sums_side_outputs_and_edge():
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1
    edge = torch.zeros_like(mask)
    maps = [torch.zeros(1, 1, 16, 16, requires_grad=True) for _ in range(4)]
    out = {"maps": maps, "edge": torch.zeros(1, 1, 16, 16)}
    total = infnet_loss(out, mask, edge)
    expected = 4 * structure_loss(maps[0], mask) + math.log(2)
    assert torch.allclose(total, expected, atol=1e-5)
    total.backward()
    assert all(m.grad is not None and m.grad.abs().sum() > 0 for m in maps)
