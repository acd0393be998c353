"""The audio utterance model: backbone → masked pooling → embedding layer → task output.

It follows the systems contract: ``forward(batch)`` returns ``"scores"`` (class logits, or arousal,
valence and dominance) and ``"embedding"`` (the embedding layer's output, for LDA/PLDA fusion).
A prediction batch may hold several windows of one long utterance: ``batch["window_owner"]`` (one
entry per window, the utterance's row in the batch) makes the model average the windows' posteriors
(returned as log-posteriors, which are valid logits), attribute predictions and embeddings.
"""

from __future__ import annotations

import torch
from torch import nn

from sermm.errors import SermmError
from sermm.systems.audio.backbones import AudioBackbone
from sermm.systems.audio.kinds import POOLINGS
from sermm.systems.heads import TASKS, EmbeddingHead, OutputHead
from sermm.systems.pooling import make_pooling


def average_windows(values: torch.Tensor, owner: torch.Tensor, n: int) -> torch.Tensor:
    """Mean of the rows of ``values`` (W, D) that share an ``owner`` index → (n, D)."""
    sums = torch.zeros(n, values.shape[1], dtype=values.dtype, device=values.device)
    sums.index_add_(0, owner, values)
    counts = torch.bincount(owner, minlength=n).clamp(min=1).to(values.dtype)
    return sums / counts[:, None]


def merge_windows(
    scores: torch.Tensor, embedding: torch.Tensor, batch: dict[str, torch.Tensor], task: str
) -> dict[str, torch.Tensor]:
    """One row per utterance of a batch that may hold several windows of one (``window_owner``):
    posteriors averaged (returned as their logs) for categorical scores, attributes and embeddings
    averaged as they are."""
    owner = batch.get("window_owner")
    if owner is None:
        return {"scores": scores, "embedding": embedding}
    n = int(batch["index"].shape[0])
    if task == "categorical":
        posteriors = average_windows(torch.softmax(scores.float(), dim=1), owner, n)
        scores = torch.log(posteriors.clamp(min=torch.finfo(posteriors.dtype).tiny))
    else:
        scores = average_windows(scores, owner, n)
    return {"scores": scores, "embedding": average_windows(embedding, owner, n)}


class AudioModel(nn.Module):
    """A speech emotion model: ``backbone`` frames, pooled over real frames, through the embedding
    layer (dense → ReLU → BatchNorm) into ``n_out`` logits (categorical) or 3 attributes."""

    def __init__(
        self,
        backbone: AudioBackbone,
        n_out: int,
        *,
        task: str = "categorical",
        embedding_dim: int = 256,
        pooling: str = "attentive",
        frozen_backbone: bool = False,
    ) -> None:
        super().__init__()
        if task not in TASKS:
            raise SermmError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
        if pooling not in POOLINGS:
            raise SermmError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        self.task = task
        self.backbone = backbone
        self.frozen_backbone = frozen_backbone
        dim = backbone.hidden_size
        self.pooling, pooled = make_pooling(pooling, dim)
        self.embedding = EmbeddingHead(pooled, embedding_dim)
        self.output = OutputHead(embedding_dim, n_out, task)

    def train(self, mode: bool = True) -> AudioModel:
        """Train mode, except that a frozen backbone stays in eval mode (no dropout, fixed features)."""
        super().train(mode)
        if self.frozen_backbone:
            self.backbone.model.eval()
        return self

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        hidden, mask = self.backbone(batch)
        embedding = self.embedding(self.pooling(hidden, mask))
        return merge_windows(self.output(embedding), embedding, batch, self.task)
