"""Poolings: one vector per utterance from (B, T, E) frame or token states and a (B, T) padding mask.

The mask holds 1 (or True) for real positions and 0 for padding; padded positions never
contribute, so changing them leaves every output unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _mask(mask: torch.Tensor | None, h: torch.Tensor) -> torch.Tensor:
    """The padding mask as a (B, T) bool tensor (all True when None)."""
    if mask is None:
        return torch.ones(h.shape[:2], dtype=torch.bool, device=h.device)
    if mask.shape != h.shape[:2]:
        raise ValueError(f"mask of shape {tuple(mask.shape)} for states of shape {tuple(h.shape)}")
    return mask.bool()


def masked_mean(h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of the real positions: (B, T, E) → (B, E)."""
    keep = _mask(mask, h).unsqueeze(-1).to(h.dtype)
    return (h * keep).sum(1) / keep.sum(1).clamp(min=1)


def first_token(h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The state at the first real position (the [CLS]/<s> token of right-padded encoder input)."""
    keep = _mask(mask, h)
    first = keep.int().argmax(dim=1)
    return h[torch.arange(h.shape[0], device=h.device), first]


def last_token(h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The state at the last real position, whether the batch is right- or left-padded (decoder LLMs)."""
    keep = _mask(mask, h)
    positions = torch.arange(h.shape[1], device=h.device).expand_as(keep)
    last = torch.where(keep, positions, torch.full_like(positions, -1)).max(dim=1).values.clamp(min=0)
    return h[torch.arange(h.shape[0], device=h.device), last]


class MeanPooling(nn.Module):
    """Masked mean over time (no parameters)."""

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return masked_mean(h, mask)


class AttentivePooling(nn.Module):
    """Single-query attentive pooling: w_t = softmax_t(u·h_t / √E), c = Σ_t w_t h_t.

    ``u`` is one learned query vector (BSC-UPC, EmoSPEECH 2024; TalTech's attentive pooling).
    Padded frames get weight 0.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.randn(dim) / math.sqrt(dim))
        self.scale = 1.0 / math.sqrt(dim)

    def weights(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The attention weights (B, T): zero on padding, summing to one over the real frames."""
        keep = _mask(mask, h)
        logits = (h @ self.query.to(h.dtype)) * self.scale
        logits = logits.masked_fill(~keep, torch.finfo(logits.dtype).min)
        return torch.softmax(logits, dim=1) * keep

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return torch.einsum("bt,bte->be", self.weights(h, mask), h)


def _masked_softmax(logits: torch.Tensor, keep: torch.Tensor, dim: int) -> torch.Tensor:
    """softmax over ``dim`` with the positions where ``keep`` is False at exactly zero weight."""
    logits = logits.masked_fill(~keep, torch.finfo(logits.dtype).min)
    return torch.softmax(logits, dim=dim) * keep


class KeyValueAttentionPooling(nn.Module):
    """Basic single-query attention with learned keys and values (BSC-UPC, EmoSPEECH 2024):

    k_t = W_k h_t, v_t = W_v h_t, w_t = softmax_t(u·k_t / √d), c = Σ_t w_t v_t,

    with one learned query ``u`` of the key size d (the dot-product attention of Vaswani et al.,
    NeurIPS 2017, with a single trained query). :class:`AttentivePooling` is the same without the
    two projections (keys and values are the frames themselves).
    """

    def __init__(self, dim: int, key_dim: int | None = None) -> None:
        super().__init__()
        key_dim = key_dim or dim
        self.key = nn.Linear(dim, key_dim)
        self.value = nn.Linear(dim, dim)
        self.query = nn.Parameter(torch.randn(key_dim) / math.sqrt(key_dim))
        self.scale = 1.0 / math.sqrt(key_dim)

    def weights(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The attention weights (B, T): zero on padding, summing to one over the real frames."""
        keep = _mask(mask, h)
        return _masked_softmax((self.key(h) @ self.query.to(h.dtype)) * self.scale, keep, 1)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return torch.einsum("bt,bte->be", self.weights(h, mask), self.value(h))


class AttentiveStatisticsPooling(nn.Module):
    """Attentive statistics pooling (Okabe, Koshinaka & Shinoda, Interspeech 2018): (B, T, E) → (B, 2E).

    e_t = vᵀ tanh(W h_t + b), α_t = softmax_t(e_t), μ = Σ_t α_t h_t,
    σ = sqrt(Σ_t α_t h_t ⊙ h_t − μ ⊙ μ); the output is [μ; σ]. Padded frames get α_t = 0.
    """

    def __init__(self, dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.attention = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.out_dim = 2 * dim

    def weights(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The attention weights (B, T)."""
        return _masked_softmax(self.attention(h).squeeze(-1), _mask(mask, h), 1)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        alpha = self.weights(h, mask)
        mean = torch.einsum("bt,bte->be", alpha, h)
        second = torch.einsum("bt,bte->be", alpha, h * h)
        std = (second - mean * mean).clamp(min=1e-6).sqrt()
        return torch.cat([mean, std], dim=1)


class SubVectorMultiHeadAttention(nn.Module):
    """Sub-vector multi-head attention (India, Safari & Hernando, "Self multi-head attention for
    speaker recognition", Interspeech 2019): (B, T, E) → (B, H, E/H), one vector per head.

    Each frame h_t is split into H sub-vectors h_t^(j) of E/H values; head j has one learned query
    u_j: w_t^(j) = softmax_t(u_j·h_t^(j) / √(E/H)), c_j = Σ_t w_t^(j) h_t^(j). Concatenated, the c_j
    are one E-vector (see :meth:`flat`).
    """

    def __init__(self, dim: int, heads: int = 4) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"sub-vector attention: {heads} heads do not divide the dimension {dim}")
        self.heads, self.head_dim = heads, dim // heads
        self.query = nn.Parameter(torch.randn(heads, self.head_dim) / math.sqrt(self.head_dim))
        self.scale = 1.0 / math.sqrt(self.head_dim)

    def split(self, h: torch.Tensor) -> torch.Tensor:
        """(B, T, E) → (B, T, H, E/H)."""
        return h.reshape(*h.shape[:2], self.heads, self.head_dim)

    def weights(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The attention weights (B, H, T) of every head: zero on padding, each head's summing to one."""
        keep = _mask(mask, h)
        logits = torch.einsum("bthd,hd->bht", self.split(h), self.query.to(h.dtype)) * self.scale
        return _masked_softmax(logits, keep[:, None, :], 2)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return torch.einsum("bht,bthd->bhd", self.weights(h, mask), self.split(h))

    def flat(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The head vectors concatenated: (B, E)."""
        return self(h, mask).flatten(1)


class MultiHeadSelfAttention(nn.Module):
    """Standard multi-head self-attention (Vaswani et al., NeurIPS 2017) over the real positions:
    (B, T, E) → (B, T, E), one output per input position.

    Queries attend to real keys only (``key_padding_mask``); outputs at padded positions are set to
    zero, so padding changes neither the real outputs nor what a masked pooling makes of them.
    """

    def __init__(self, dim: int, heads: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)

    def weights(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The attention weights (B, H, T, T) of every head (query × key), zero on padded keys and queries."""
        keep = _mask(mask, h)
        _, w = self.attention(h, h, h, key_padding_mask=~keep, need_weights=True, average_attn_weights=False)
        return w * keep[:, None, :, None]

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        keep = _mask(mask, h)
        out, _ = self.attention(h, h, h, key_padding_mask=~keep, need_weights=False)
        return out * keep.unsqueeze(-1).to(out.dtype)


class DoubleMultiHeadAttentionPooling(nn.Module):
    """Double multi-head attention pooling (India, Safari & Hernando, "Double multi-head attention for
    speaker verification", ICASSP 2021): (B, T, E) → (B, E/H).

    :class:`SubVectorMultiHeadAttention` gives H head vectors c_j; a second single-query attention
    over them, w'_j = softmax_j(u'·c_j / √(E/H)), pools them into Σ_j w'_j c_j.
    """

    def __init__(self, dim: int, heads: int = 4) -> None:
        super().__init__()
        self.first = SubVectorMultiHeadAttention(dim, heads)
        self.second = AttentivePooling(dim // heads)
        self.out_dim = dim // heads

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.second(self.first(h, mask))


#: Utterance poolings by name, each (B, T, E) + mask → (B, D): what a recipe's ``pooling`` option offers.
POOLINGS = ("attentive", "mean", "attentive-kv", "attentive-stats", "subvector-mha", "double-mha")


class _Flat(nn.Module):
    """Sub-vector MHA with its head vectors concatenated (one E-vector per utterance)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.inner = SubVectorMultiHeadAttention(dim, heads)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.inner.flat(h, mask)


def make_pooling(name: str, dim: int, heads: int = 4) -> tuple[nn.Module, int]:
    """The pooling ``name`` of :data:`POOLINGS` over ``dim``-dimensional states, and its output size."""
    if name == "attentive":
        return AttentivePooling(dim), dim
    if name == "mean":
        return MeanPooling(), dim
    if name == "attentive-kv":
        return KeyValueAttentionPooling(dim), dim
    if name == "attentive-stats":
        return AttentiveStatisticsPooling(dim), 2 * dim
    if name == "subvector-mha":
        return _Flat(dim, heads), dim
    if name == "double-mha":
        pooling = DoubleMultiHeadAttentionPooling(dim, heads)
        return pooling, pooling.out_dim
    raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {name!r}")
