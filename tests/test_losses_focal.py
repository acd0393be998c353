"""Focal loss: γ = 0 is torch's (weighted) cross-entropy; γ > 0 matches the formula by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sermm.systems.losses import focal_loss


@pytest.fixture
def batch():
    torch.manual_seed(0)
    target = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 3])
    return torch.randn(9, 4) * 3, target, torch.tensor([0.5, 2.0, 1.0, 1.5])


def test_gamma_zero_is_cross_entropy(batch):
    logits, target, weight = batch
    assert torch.allclose(focal_loss(logits, target, gamma=0.0), F.cross_entropy(logits, target), atol=1e-6)
    expected = F.cross_entropy(logits, target, weight=weight)
    assert torch.allclose(focal_loss(logits, target, weight, gamma=0.0), expected, atol=1e-6)


def test_focal_by_hand(batch):
    logits, target, weight = batch
    p = torch.softmax(logits, 1)[torch.arange(9), target]
    terms = -((1 - p) ** 2) * torch.log(p)
    assert torch.allclose(focal_loss(logits, target), terms.mean(), atol=1e-6)
    w = weight[target]
    assert torch.allclose(focal_loss(logits, target, weight), (w * terms).sum() / w.sum(), atol=1e-6)
    # easy examples are turned down: focal ≤ cross-entropy, term by term
    assert focal_loss(logits, target) < F.cross_entropy(logits, target)


def test_focal_gradient_flows_and_bad_gamma(batch):
    logits, target, _ = batch
    logits = logits.clone().requires_grad_(True)
    focal_loss(logits, target, gamma=2.0).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="gamma"):
        focal_loss(logits, target, gamma=-1.0)
