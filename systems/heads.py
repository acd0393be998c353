"""Heads on a pooled utterance vector: the embedding layer and the task's output layer."""

from __future__ import annotations

import torch
from torch import nn

TASKS = ("categorical", "attributes")
#: The attribute task's outputs, in this order.
ATTRIBUTES = ("arousal", "valence", "dominance")


class EmbeddingHead(nn.Module):
    """Dense → ReLU → BatchNorm: the utterance embedding (written by ``--embeddings``, fused by LDA/PLDA)."""

    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__()
        self.dense = nn.Linear(in_dim, dim)
        self.norm = nn.BatchNorm1d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(torch.relu(self.dense(x)))


class OutputHead(nn.Module):
    """Categorical: a linear layer to class logits. Attributes: tanh, then a linear layer to 3 outputs."""

    def __init__(self, dim: int, n_out: int, task: str = "categorical") -> None:
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
        self.task = task
        self.linear = nn.Linear(dim, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.tanh(x) if self.task == "attributes" else x)
