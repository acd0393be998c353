"""Soft-label KL divergence and centre loss (label-adaptive mixup's objective)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import entropy

from sermm.systems.losses import CentreLoss, centre_loss, soft_kl_divergence, weighted_cross_entropy


def test_kl_of_identical_distributions_is_zero():
    p = torch.softmax(torch.randn(5, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    assert soft_kl_divergence(torch.log(p), p).item() == pytest.approx(0.0, abs=1e-6)


def test_kl_matches_scipy_on_soft_labels():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 3, generator=gen)
    y = torch.softmax(torch.randn(6, 3, generator=gen), dim=1)
    y[0] = torch.tensor([0.25, 0.75, 0.0])  # a zero entry counts 0·log 0 = 0
    p = torch.softmax(logits, dim=1).numpy()
    expected = np.mean([entropy(y[i].numpy(), p[i]) for i in range(6)])
    assert soft_kl_divergence(logits, y).item() == pytest.approx(expected, rel=1e-5)


def test_kl_on_one_hot_labels_is_cross_entropy_weighted_or_not():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(8, 4, generator=gen)
    target = torch.tensor([0, 1, 2, 3, 3, 2, 1, 1])
    one_hot = F.one_hot(target, 4).float()
    torch.testing.assert_close(soft_kl_divergence(logits, one_hot), F.cross_entropy(logits, target))
    weight = torch.tensor([0.5, 2.0, 1.0, 3.0])
    torch.testing.assert_close(
        soft_kl_divergence(logits, one_hot, weight), weighted_cross_entropy(logits, target, weight)
    )


def test_centre_loss_by_hand_and_its_two_soft_forms():
    x = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    c = torch.tensor([[0.0, 0.0], [2.0, 2.0]])
    one_hot = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # Wen et al. on one-hot labels: ½‖x_i − c_{y_i}‖², batch mean: (½·5 + ½·13) / 2
    assert centre_loss(x, c, one_hot, "mix").item() == pytest.approx(4.5)
    assert centre_loss(x, c, one_hot, "sum").item() == pytest.approx(4.5)
    soft = torch.tensor([[0.75, 0.25], [0.5, 0.5]])
    mixed_centres = soft @ c  # [[0.5, 0.5], [1, 1]]
    by_hand_mix = 0.5 * ((x - mixed_centres) ** 2).sum(1).mean()
    assert centre_loss(x, c, soft, "mix").item() == pytest.approx(by_hand_mix.item())
    spread = 0.5 * (soft * torch.cdist(mixed_centres, c).pow(2)).sum(1).mean()
    assert centre_loss(x, c, soft, "sum").item() == pytest.approx((by_hand_mix + spread).item(), rel=1e-5)
    with pytest.raises(ValueError, match="mode"):
        centre_loss(x, c, soft, "max")


@pytest.mark.parametrize("mode", ["mix", "sum"])
def test_centre_loss_falls_over_steps_and_pulls_features_and_centres_together(mode):
    torch.manual_seed(0)
    inputs = torch.randn(12, 6)
    target = torch.arange(12) % 3
    soft = F.one_hot(target, 3).float()
    soft[:4] = 0.6 * soft[:4] + 0.4 * F.one_hot((target[:4] + 1) % 3, 3).float()  # some mixed labels
    encoder = torch.nn.Linear(6, 4)
    centres = CentreLoss(3, 4, mode)
    optimizer = torch.optim.SGD([*encoder.parameters(), *centres.parameters()], lr=0.1)
    def distance():  # of the one-hot rows' features to their class centres
        with torch.no_grad():
            return (encoder(inputs[4:]) - centres.centres[target[4:]]).norm(dim=1).mean().item()

    before, losses = distance(), []
    for _ in range(30):
        loss = centres(encoder(inputs), soft)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(b <= a + 1e-7 for a, b in zip(losses, losses[1:], strict=False))
    assert losses[-1] < 0.2 * losses[0]
    assert distance() < 0.5 * before
