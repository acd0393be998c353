"""Label-adaptive mixup with centre loss (Kang, Zhang & Jiang, "Learning robust self-attention features
for speech emotion recognition with label-adaptive mixup", ICASSP 2023): ``sermm-system mixup``.

The model: a HuBERT (any wav2vec2-family) backbone with its bottom ``keep_layers`` transformer
layers kept, the *first* output frame as the utterance feature, and two dense layers; the first
one's output (after ReLU) is the feature the centre loss pulls to its class centre and the
embedding the run writes, the second gives the class logits.

Training mixes pairs of waveforms inside each batch (each utterance i with a random partner j of
the batch): x = λ x_i + (1 − λ) x_j with λ = 0.5, the shorter one zero-padded, and the labels
weighted by how much of the mix each utterance fills:

    y = w y_i + (1 − w) y_j,   w = λ l_i / (λ l_i + (1 − λ) l_j)

(l: lengths in samples; a long utterance mixed with a short one keeps most of its label). The loss
is KL(y ‖ p) (:func:`~sermm.systems.losses.soft_kl_divergence`) plus ``centre_weight`` times the
centre loss on the first dense layer's feature against the same mix of the two class centres
(:func:`~sermm.systems.losses.centre_loss`, ``centre_mode``). Dev scoring and prediction see
unmixed utterances.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sermm.errors import SermmError
from sermm.systems.audio.model import merge_windows
from sermm.systems.audio.utterance import UtteranceConfig, UtteranceRecipe, load_waveform_backbone
from sermm.systems.losses import CENTRE_MODES, CentreLoss, soft_kl_divergence
from sermm.systems.manifest import Inventory


@dataclass
class MixupConfig(UtteranceConfig):
    """A label-adaptive mixup run. λ = 0.5, the KL + centre loss objective, the first frame and the two
    dense layers are the paper's; the sizes and rates are sermm's defaults for HuBERT-large."""

    backbone: str = "facebook/hubert-large-ll60k"
    lr: float = 1e-5
    optimizer: str = "adamw"
    epochs: int = 20
    batch_size: int = 8
    effective_batch: int = 32
    #: Units of the first dense layer (the centre-loss feature and the written embedding).
    hidden_dim: int = 256
    #: The mixing weight λ of the first waveform of each pair.
    mixup_lambda: float = 0.5
    #: The share of training batches that are mixed (the rest train on their one-hot labels).
    mixup_prob: float = 1.0
    #: Weight of the centre loss beside the KL loss.
    centre_weight: float = 0.01
    centre_mode: str = "mix"

    def check(self) -> None:
        super().check()
        if self.task != "categorical":
            raise SermmError("config: mixup trains on (mixed) class labels: task must be categorical")
        if not 0 < self.mixup_lambda < 1:
            raise SermmError(f"config: mixup_lambda must lie in (0, 1), got {self.mixup_lambda}")
        if not 0 <= self.mixup_prob <= 1:
            raise SermmError(f"config: mixup_prob must lie in [0, 1], got {self.mixup_prob}")
        if self.centre_weight < 0:
            raise SermmError(f"config: centre_weight must not be negative, got {self.centre_weight}")
        if self.centre_mode not in CENTRE_MODES:
            raise SermmError(
                f"config: centre_mode must be one of {', '.join(CENTRE_MODES)}, got {self.centre_mode!r}"
            )
        if self.hidden_dim < 1:
            raise SermmError(f"config: hidden_dim must be at least 1, got {self.hidden_dim}")


def mixup_weights(lengths: torch.Tensor, partner: torch.Tensor, lam: float) -> torch.Tensor:
    """The label weight w_i = λ l_i / (λ l_i + (1 − λ) l_j) of each utterance i mixed with ``partner[i]``;
    its partner's label gets 1 − w_i.

    >>> mixup_weights(torch.tensor([3.0, 1.0]), torch.tensor([1, 0]), 0.5).tolist()
    [0.75, 0.25]
    """
    li = lengths.float()
    lj = li[partner]
    return lam * li / (lam * li + (1 - lam) * lj).clamp(min=1e-12)


def mix_batch(
    inputs: torch.Tensor,
    mask: torch.Tensor,
    target: torch.Tensor,
    n_classes: int,
    lam: float,
    partner: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mix each padded waveform with its partner's: (λ x_i + (1 − λ) x_j, the union of their sample
    masks, the length-weighted soft labels (B, n_classes)). Padding is zero (the waveform feature
    extractor pads normalised audio with 0), so the shorter waveform adds nothing past its end."""
    keep = mask.to(inputs.dtype)
    mixed = lam * inputs * keep + (1 - lam) * (inputs * keep)[partner]
    union = (mask.bool() | mask.bool()[partner]).to(mask.dtype)
    w = mixup_weights(mask.long().sum(1), partner, lam)
    one_hot = F.one_hot(target, n_classes).float()
    soft = w[:, None] * one_hot + (1 - w[:, None]) * one_hot[partner]
    return mixed, union, soft


class MixupModel(nn.Module):
    """Backbone → first output frame → dense + ReLU (feature, embedding) → dense (logits), with the class
    centres of the centre loss; mixes its training batches (see the module docstring)."""

    def __init__(self, backbone: nn.Module, n_classes: int, config: MixupConfig) -> None:
        super().__init__()
        self.backbone = backbone
        self.n_classes = n_classes
        self.lam, self.mix_prob = config.mixup_lambda, config.mixup_prob
        self.frozen_backbone = config.finetune == "frozen"
        self.dropout = nn.Dropout(config.dropout)
        self.dense1 = nn.Linear(backbone.hidden_size, config.hidden_dim)
        self.dense2 = nn.Linear(config.hidden_dim, n_classes)
        self.centres = CentreLoss(n_classes, config.hidden_dim, config.centre_mode)

    def train(self, mode: bool = True) -> MixupModel:
        super().train(mode)
        if self.frozen_backbone:
            self.backbone.model.eval()
        return self

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        inputs, mask = batch["input_values"], batch["attention_mask"]
        soft = None
        if self.training and "target" in batch:
            target = batch["target"]
            if self.mix_prob > 0 and float(torch.rand(())) < self.mix_prob:
                partner = torch.randperm(len(target)).to(target.device)
                inputs, mask, soft = mix_batch(inputs, mask, target, self.n_classes, self.lam, partner)
            else:
                soft = F.one_hot(target, self.n_classes).float()
        hidden, _ = self.backbone({"input_values": inputs, "attention_mask": mask})
        feature = torch.relu(self.dense1(self.dropout(hidden[:, 0])))
        scores = self.dense2(self.dropout(feature))
        out = merge_windows(scores, feature, batch, "categorical")
        if soft is not None:
            out["soft_target"] = soft
            out["centre_loss"] = self.centres(feature, soft)
        return out


class MixupRecipe(UtteranceRecipe):
    """Label-adaptive mixup + centre loss on whole utterances (``sermm-system mixup``)."""

    system = "mixup"
    need = "path"
    config_class = MixupConfig

    def build_model(self, config: MixupConfig, inventory: Inventory) -> nn.Module:
        return MixupModel(load_waveform_backbone(config), inventory.n_outputs, config)

    def loss(
        self,
        out: dict[str, torch.Tensor],
        batch: dict[str, torch.Tensor],
        config: MixupConfig,
        weight: torch.Tensor | None,
    ) -> torch.Tensor:
        """KL(y ‖ p) on the (mixed) soft labels + ``centre_weight`` · centre loss."""
        soft = out.get("soft_target")
        if soft is None:
            soft = F.one_hot(batch["target"], out["scores"].shape[1]).float()
        loss = soft_kl_divergence(out["scores"], soft, weight)
        if "centre_loss" in out and config.centre_weight:
            loss = loss + config.centre_weight * out["centre_loss"]
        return loss
