"""Poolings, heads, losses and length batching of the systems layer."""

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss

from sermm.metrics import ccc as numpy_ccc
from sermm.systems.batching import length_batches, padded_fraction
from sermm.systems.heads import EmbeddingHead, OutputHead
from sermm.systems.losses import ccc, class_weights, neg_mean_ccc, weighted_cross_entropy
from sermm.systems.pooling import AttentivePooling, MeanPooling, first_token, last_token, masked_mean


def padded_batch(seed=0, dim=8):
    """States (3, 6, dim) with lengths 6, 4, 2 (right padding) and the mask."""
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(3, 6, dim, generator=gen)
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4])
    return h, mask


@pytest.mark.parametrize("pool", [masked_mean, first_token, last_token, MeanPooling(), AttentivePooling(8)])
def test_pooling_ignores_padded_positions(pool):
    h, mask = padded_batch()
    noisy = h.clone()
    noisy[mask == 0] = 1e3 * torch.randn(int((mask == 0).sum()), 8)
    torch.testing.assert_close(pool(h, mask), pool(noisy, mask), rtol=0, atol=0)


def test_masked_mean_is_the_mean_of_real_frames():
    h, mask = padded_batch()
    torch.testing.assert_close(masked_mean(h, mask)[1], h[1, :4].mean(0))


def test_attentive_weights_are_a_softmax_over_real_frames():
    pool = AttentivePooling(8)
    h, mask = padded_batch()
    w = pool.weights(h, mask)
    torch.testing.assert_close(w.sum(1), torch.ones(3))
    assert (w[mask == 0] == 0).all()
    expected = torch.softmax(h[2, :2] @ pool.query / np.sqrt(8), dim=0)
    torch.testing.assert_close(w[2, :2], expected)
    torch.testing.assert_close(pool(h, mask)[2], (expected[:, None] * h[2, :2]).sum(0))


def test_last_and_first_token_under_right_and_left_padding():
    h, right = padded_batch()
    left = right.flip(1)  # the same lengths, padded on the left
    torch.testing.assert_close(last_token(h, right), torch.stack([h[0, 5], h[1, 3], h[2, 1]]))
    torch.testing.assert_close(last_token(h, left), h[:, 5])
    torch.testing.assert_close(first_token(h, right), h[:, 0])
    torch.testing.assert_close(first_token(h, left), torch.stack([h[0, 0], h[1, 2], h[2, 4]]))


def test_heads_shapes_and_attribute_tanh():
    x = torch.randn(5, 16)
    emb = EmbeddingHead(16, 12)
    assert emb(x).shape == (5, 12)
    assert isinstance(emb.norm, torch.nn.BatchNorm1d)
    head = OutputHead(12, 3, task="attributes")
    z = torch.randn(5, 12)
    torch.testing.assert_close(head(z), head.linear(torch.tanh(z)))
    with pytest.raises(ValueError, match="task"):
        OutputHead(12, 3, task="regression")


def test_class_weights_average_one_over_the_examples():
    counts = np.array([50, 30, 15, 5, 0])
    w = class_weights(counts)
    assert w[-1] == 0
    assert np.isclose((w * counts).sum() / counts.sum(), 1.0)
    assert np.allclose(w[:4] * counts[:4], counts.sum() / 4)


def test_weighted_cross_entropy_matches_sklearn_log_loss():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(40, 4, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 4, (40,), generator=gen)
    weight = torch.tensor([0.5, 1.0, 2.0, 3.0])
    P = torch.softmax(logits, 1).numpy()
    expected = log_loss(y.numpy(), P, sample_weight=weight[y].numpy(), labels=range(4))
    assert np.isclose(float(weighted_cross_entropy(logits, y, weight)), expected, rtol=1e-5)
    plain = log_loss(y.numpy(), P, labels=range(4))
    assert np.isclose(float(weighted_cross_entropy(logits, y)), plain, rtol=1e-5)


def test_ccc_matches_the_numpy_metric_and_perfect_prediction_is_minus_one():
    gen = torch.Generator().manual_seed(2)
    target = torch.randn(30, 3, generator=gen)
    pred = 0.5 * target + 0.3 * torch.randn(30, 3, generator=gen) + 0.2
    np.testing.assert_allclose(ccc(pred, target).numpy(), numpy_ccc(target.numpy(), pred.numpy()), rtol=1e-5)
    assert float(neg_mean_ccc(target, target)) == pytest.approx(-1.0, abs=1e-6)


def test_length_batches_cover_every_item_once_within_limits():
    lengths = np.random.default_rng(0).lognormal(1.6, 0.5, 500)
    for shuffle in (False, True):
        batches = length_batches(lengths, max_items=16, max_total=120.0, shuffle=shuffle, seed=3)
        assert sorted(np.concatenate(batches).tolist()) == list(range(500))
        assert max(len(b) for b in batches) <= 16
        assert all(len(b) == 1 or len(b) * lengths[b].max() <= 120.0 for b in batches)


def test_length_batches_are_deterministic_and_sorted_without_shuffle():
    lengths = np.array([5.0, 1.0, 3.0, 2.0, 4.0])
    batches = length_batches(lengths, max_items=2)
    assert [b.tolist() for b in batches] == [[1, 3], [2, 4], [0]]
    assert padded_fraction(lengths, batches) == pytest.approx(1 - 15 / (2 * 2 + 2 * 4 + 5))


def test_length_batches_pad_less_than_random_batches():
    lengths = np.random.default_rng(1).lognormal(1.6, 0.5, 2000)
    random = np.split(np.random.default_rng(2).permutation(2000), range(16, 2000, 16))
    assert padded_fraction(lengths, length_batches(lengths, max_items=16, shuffle=True)) < (
        padded_fraction(lengths, random) / 3
    )
