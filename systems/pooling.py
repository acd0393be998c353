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
