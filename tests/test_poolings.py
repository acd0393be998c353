"""Every pooling: output shapes, weights that sum to one over real frames, and padding that changes nothing
(garbage frames appended behind the mask leave every output as it was)."""

from __future__ import annotations

import math

import pytest
import torch

from sermm.systems.pooling import (
    POOLINGS,
    AttentivePooling,
    AttentiveStatisticsPooling,
    DoubleMultiHeadAttentionPooling,
    KeyValueAttentionPooling,
    MultiHeadSelfAttention,
    SubVectorMultiHeadAttention,
    make_pooling,
)

B, T, E, H = 3, 7, 16, 4


@pytest.fixture
def states():
    torch.manual_seed(0)
    h = torch.randn(B, T, E)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 5:] = False
    mask[2, 2:] = False
    return h, mask


def padded(h: torch.Tensor, mask: torch.Tensor, extra: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """The same batch with ``extra`` garbage frames appended and the real frames' padding overwritten."""
    big = torch.full((B, T + extra, E), 1e3) * torch.randn(B, T + extra, E)
    keep = torch.zeros(B, T + extra, dtype=torch.bool)
    keep[:, :T] = mask
    big[keep] = h[mask]
    return big, keep


@pytest.mark.parametrize("name", POOLINGS)
def test_utterance_poolings_shape_and_padding(states, name):
    h, mask = states
    torch.manual_seed(1)
    pooling, dim = make_pooling(name, E, H)
    pooling.eval()
    out = pooling(h, mask)
    assert out.shape == (B, dim)
    assert torch.isfinite(out).all()
    assert torch.allclose(pooling(*padded(h, mask)), out, atol=1e-5)


def test_attentive_pooling_is_scaled_dot_attention_with_one_query(states):
    h, mask = states
    pool = AttentivePooling(E)
    u = pool.query.detach()
    logits = h[0] @ u / math.sqrt(E)
    w = torch.softmax(logits, 0)
    assert torch.allclose(pool(h, mask)[0], (w[:, None] * h[0]).sum(0), atol=1e-6)
    row = h[2, :2]  # two real frames
    w = torch.softmax(row @ u / math.sqrt(E), 0)
    assert torch.allclose(pool(h, mask)[2], (w[:, None] * row).sum(0), atol=1e-6)


def test_key_value_attention_by_hand(states):
    h, mask = states
    pool = KeyValueAttentionPooling(E, key_dim=8)
    k, v = pool.key(h[1, :5]), pool.value(h[1, :5])
    w = torch.softmax(k @ pool.query / math.sqrt(8), 0)
    assert torch.allclose(pool(h, mask)[1], (w[:, None] * v).sum(0), atol=1e-5)
    weights = pool.weights(h, mask)
    assert torch.allclose(weights.sum(1), torch.ones(B), atol=1e-6)
    assert (weights[~mask] == 0).all()


def test_attentive_statistics_are_weighted_mean_and_sd(states):
    h, mask = states
    pool = AttentiveStatisticsPooling(E, hidden=8)
    alpha = pool.weights(h, mask)[0]
    mean = (alpha[:, None] * h[0]).sum(0)
    sd = ((alpha[:, None] * (h[0] - mean) ** 2).sum(0)).sqrt()
    out = pool(h, mask)[0]
    assert torch.allclose(out[:E], mean, atol=1e-5)
    assert torch.allclose(out[E:], sd, atol=1e-4)


def test_subvector_mha_outputs_h_vectors_by_hand(states):
    h, mask = states
    mha = SubVectorMultiHeadAttention(E, H)
    out = mha(h, mask)
    assert out.shape == (B, H, E // H)
    d = E // H
    for j in range(H):
        sub = h[1, :5, j * d : (j + 1) * d]
        w = torch.softmax(sub @ mha.query[j] / math.sqrt(d), 0)
        assert torch.allclose(out[1, j], (w[:, None] * sub).sum(0), atol=1e-6)
    weights = mha.weights(h, mask)
    assert weights.shape == (B, H, T)
    assert torch.allclose(weights.sum(2), torch.ones(B, H), atol=1e-6)
    assert torch.allclose(mha(*padded(h, mask)), out, atol=1e-5)
    with pytest.raises(ValueError, match="do not divide"):
        SubVectorMultiHeadAttention(10, 4)


def test_standard_mha_outputs_t_vectors_and_ignores_padding(states):
    h, mask = states
    mha = MultiHeadSelfAttention(E, H).eval()
    out = mha(h, mask)
    assert out.shape == (B, T, E)
    assert (out[~mask] == 0).all()
    big = mha(*padded(h, mask))
    assert torch.allclose(big[:, :T], out, atol=1e-5)
    assert (big[:, T:] == 0).all()
    # a row alone (no padding at all) gives what it gives inside the padded batch
    alone = mha(h[2:3, :2], None)
    assert torch.allclose(alone[0], out[2, :2], atol=1e-5)
    w = mha.weights(h, mask)
    assert w.shape == (B, H, T, T)
    assert torch.allclose(w[1, :, :5].sum(-1), torch.ones(H, 5), atol=1e-5)
    assert (w[1, :, :, 5:] == 0).all()


def test_double_mha_pools_the_heads(states):
    h, mask = states
    pool = DoubleMultiHeadAttentionPooling(E, H)
    heads = pool.first(h, mask)
    w = torch.softmax(heads[0] @ pool.second.query / math.sqrt(E // H), 0)
    assert torch.allclose(pool(h, mask)[0], (w[:, None] * heads[0]).sum(0), atol=1e-6)
    assert pool(h, mask).shape == (B, E // H)


def test_bad_mask_shape(states):
    h, _ = states
    with pytest.raises(ValueError, match="mask of shape"):
        AttentivePooling(E)(h, torch.ones(B, T + 1))
