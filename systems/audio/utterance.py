"""What the whole-utterance waveform recipes share (label-adaptive mixup, the wav2vec 2.0 fine-tuning
strategies): their config fields, a wav2vec2-family backbone loaded with some transformer layers
kept and optional continued-pre-training weights, and training on whole utterances.

Unlike the TalTech audio recipe (random 2-4 s chunks of one length per batch), these train on the
whole utterance, cut at a random offset to ``max_train_s`` when longer, so that utterance lengths
differ inside a batch (mixup weighs the labels by them). Prediction is the audio system's: whole
utterances, longer ones as equal windows whose posteriors are averaged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sermm.errors import SermmError
from sermm.systems.audio.backbones import (
    AudioBackbone,
    apply_finetuning,
    load_backbone,
    load_features,
    lora_settings,
)
from sermm.systems.audio.data import AudioDataset, batch_lengths
from sermm.systems.audio.recipe import AudioRecipe
from sermm.systems.config import SystemConfig
from sermm.systems.manifest import Manifest

#: The wav2vec2-family kinds (raw waveforms into a convolutional encoder and a transformer).
WAVEFORM_KINDS = ("wav2vec2", "xls-r", "hubert", "wavlm")


@dataclass
class UtteranceConfig(SystemConfig):
    """Fields of the whole-utterance waveform recipes (besides :class:`SystemConfig`'s)."""

    finetune: str = "full"
    #: Transformer layers kept from the bottom (0: all); the rest are dropped before training.
    keep_layers: int = 0
    #: The backbone's layer drop (0: every layer runs, as DDP needs); -1 keeps the checkpoint's value.
    layerdrop: float = 0.0
    gradient_checkpointing: bool = False
    dropout: float = 0.1
    #: Training: utterances longer than this are cut to it at a random offset (shorter ones whole).
    max_train_s: float = 8.0
    #: Prediction: utterances longer than this are cut into equal windows whose posteriors are averaged.
    max_window_s: float = 20.0
    num_workers: int = 4

    def check(self) -> None:
        super().check()
        if self.kind and self.kind not in WAVEFORM_KINDS:
            raise SermmError(f"config: kind must be one of {', '.join(WAVEFORM_KINDS)}, got {self.kind!r}")
        if self.keep_layers < 0:
            raise SermmError(f"config: keep_layers must not be negative, got {self.keep_layers}")
        if not 0 <= self.dropout < 1:
            raise SermmError(f"config: dropout must lie in [0, 1), got {self.dropout}")
        for key in ("max_train_s", "max_window_s"):
            if getattr(self, key) <= 0:
                raise SermmError(f"config: {key} must be positive, got {getattr(self, key)}")
        if not (self.layerdrop == -1 or 0 <= self.layerdrop < 1):
            raise SermmError(f"config: layerdrop must lie in [0, 1) or be -1, got {self.layerdrop}")


def keep_bottom_layers(backbone: AudioBackbone, n: int) -> AudioBackbone:
    """Drop every transformer layer above the ``n``-th (0 keeps all); the final LayerNorm of a
    pre-LN ("stable layer norm") encoder still runs after the last kept layer."""
    base = backbone.base_model
    layers = base.encoder.layers
    if n == 0:
        return backbone
    if n > len(layers):
        raise SermmError(f"keep_layers is {n}, but the backbone has only {len(layers)} transformer layers")
    base.encoder.layers = layers[:n]
    base.config.num_hidden_layers = n
    return backbone


def load_state_into(backbone: AudioBackbone, state: dict[str, torch.Tensor], source: str) -> None:
    """Load continued-pre-training weights (keys of the bare backbone model) into ``backbone``; only
    ``masked_spec_embed`` (the pre-training mask vector) may be missing or extra."""
    own = backbone.base_model.state_dict()
    missing = sorted(set(own) - set(state) - {"masked_spec_embed"})
    unknown = sorted(set(state) - set(own) - {"masked_spec_embed"})
    if missing or unknown:
        first = (missing or unknown)[0]
        raise SermmError(
            f"{source}: weights do not fit the backbone (e.g. {first}); was it made from another one?"
        )
    backbone.base_model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)


def load_waveform_backbone(
    config: UtteranceConfig, *, state: dict[str, torch.Tensor] | None = None, source: str = ""
) -> AudioBackbone:
    """The config's wav2vec2-family backbone (last layer's frames), with ``keep_layers`` kept and,
    when given, continued-pre-training weights ``state``, then set to train as ``finetune`` says."""
    backbone = load_backbone(
        config.backbone,
        kind=config.kind or None,
        layers="last",
        finetune="frozen",
        layerdrop=None if config.layerdrop == -1 else config.layerdrop,
        gradient_checkpointing=config.gradient_checkpointing,
    )
    if backbone.kind not in WAVEFORM_KINDS:
        raise SermmError(
            f"{config.backbone}: a {backbone.kind} backbone; this recipe needs a wav2vec2-family one "
            f"({', '.join(WAVEFORM_KINDS)})"
        )
    if state is not None:
        load_state_into(backbone, state, source)
    keep_bottom_layers(backbone, config.keep_layers)
    return apply_finetuning(backbone, config.finetune, lora_settings(config))


class UtteranceRecipe(AudioRecipe):
    """The audio recipe's manifest checks and prediction windows, with whole-utterance training."""

    def check_config(self, config: UtteranceConfig) -> None:
        """Before training writes anything: the backbone's config and feature extractor can be read,
        and it is a wav2vec2-family model."""
        from sermm.systems.audio.backbones import detect_kind

        kind = detect_kind(config.backbone, config.kind or None)
        if kind not in WAVEFORM_KINDS:
            raise SermmError(
                f"{config.backbone}: a {kind} backbone; {self.system} needs a wav2vec2-family one "
                f"({', '.join(WAVEFORM_KINDS)})"
            )
        load_features(config.backbone, config.kind or None)
        if config.keep_layers:
            from transformers import PretrainedConfig

            doc, _ = PretrainedConfig.get_config_dict(str(config.backbone))
            layers = int(doc.get("num_hidden_layers", 0))
            if config.keep_layers > layers:
                raise SermmError(
                    f"keep_layers is {config.keep_layers}, but the backbone has only {layers} "
                    "transformer layers"
                )

    def dataset(self, manifest: Manifest, config: UtteranceConfig, *, train: bool) -> AudioDataset:
        return AudioDataset(
            self._items(manifest),
            load_features(config.backbone, config.kind or None),
            train=train,
            chunk_min_s=config.max_train_s,
            chunk_max_s=config.max_train_s,
            max_window_s=config.max_window_s,
            seed=config.seed,
        )

    def lengths(self, manifest: Manifest, config: UtteranceConfig, *, train: bool) -> np.ndarray:
        """Seconds of audio per row (in training at most ``max_train_s``)."""
        return batch_lengths(self._items(manifest).durations, train=train, chunk_max_s=config.max_train_s)
