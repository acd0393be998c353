"""Pretrained speech backbones by Hugging Face id or local directory, with their feature extractors,
frame masks, a learned layer mix, and the three fine-tuning modes (LoRA, full, frozen).

The kind is read from the checkpoint's own ``config.json`` (``model_type``); ``kind=`` overrides:

- ``w2v-bert``: ``Wav2Vec2BertModel`` on stacked log-mel features (``SeamlessM4TFeatureExtractor``);
- ``wav2vec2`` / ``xls-r`` (the same architecture), ``hubert``, ``wavlm``: raw waveforms
  (``Wav2Vec2FeatureExtractor``);
- ``sonar``: :class:`~sermm.systems.audio.sonar.SonarSpeechEncoder`, whose attention pooler gives one
  vector per utterance (returned as a sequence of length 1).
"""

from __future__ import annotations

import functools
import os
import sys
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sermm.errors import SermmError, first_line
from sermm.systems.audio.features import LogMelFeatures
from sermm.systems.audio.io import SAMPLE_RATE
from sermm.systems.audio.kinds import FINETUNE_MODES, KINDS, LAYER_MODES
from sermm.systems.audio.sonar import SONAR_MODEL_TYPE, SonarSpeechEncoder, resolve_dir

#: ``model_type`` of a checkpoint's config → backbone kind.
MODEL_TYPE_KINDS = {
    "wav2vec2-bert": "w2v-bert",
    SONAR_MODEL_TYPE: "sonar",
    "wav2vec2": "wav2vec2",
    "hubert": "hubert",
    "wavlm": "wavlm",
}
#: The attention query and value projections of each architecture: LoRA's default targets. In SONAR's
#: pooler the self-attention over its single query has a constant softmax, so its query projection
#: gets no gradient and is left out.
LORA_TARGETS = {
    "w2v-bert": ("linear_q", "linear_v"),
    "sonar": (
        "linear_q",
        "linear_v",
        "encoder_decoder_attn.q_proj",
        "encoder_decoder_attn.v_proj",
        "self_attn.v_proj",
    ),
    "wav2vec2": ("q_proj", "v_proj"),
    "xls-r": ("q_proj", "v_proj"),
    "hubert": ("q_proj", "v_proj"),
    "wavlm": ("q_proj", "v_proj"),
}


@dataclass
class LoraSettings:
    """LoRA on the attention projections (peft): rank, alpha, dropout, target module names (None: the
    query and value projections of the backbone's architecture, :data:`LORA_TARGETS`)."""

    rank: int = 32
    alpha: int = 32
    dropout: float = 0.05
    targets: tuple[str, ...] | None = None


def lora_settings(config: Any) -> LoraSettings:
    """The LoRA settings of a system config's ``lora_*`` fields (targets: the kind's query and value
    projections unless given)."""
    return LoraSettings(
        rank=config.lora_r,
        alpha=config.lora_alpha,
        dropout=config.lora_dropout,
        targets=tuple(config.lora_targets) or None,
    )


def read_model_type(name_or_path: str | os.PathLike) -> str | None:
    """The ``model_type`` in a checkpoint's ``config.json`` (local directory or Hub id)."""
    from transformers import PretrainedConfig

    try:
        doc, _ = PretrainedConfig.get_config_dict(str(name_or_path))
    except (OSError, ValueError) as exc:
        raise SermmError(
            f"{name_or_path}: cannot read the backbone's config.json ({first_line(exc)})"
        ) from None
    return doc.get("model_type")


def detect_kind(name_or_path: str | os.PathLike, kind: str | None = None) -> str:
    """The backbone kind: ``kind`` when given, else the one of the checkpoint's ``model_type``."""
    if kind is not None:
        if kind not in KINDS:
            raise SermmError(f"unknown backbone kind {kind!r} (known: {', '.join(KINDS)})")
        return kind
    model_type = read_model_type(name_or_path)
    if model_type not in MODEL_TYPE_KINDS:
        raise SermmError(
            f"{name_or_path}: model_type {model_type!r} is not a known speech backbone "
            f"(known: {', '.join(MODEL_TYPE_KINDS)}); pass the kind ({', '.join(KINDS)}) to force one"
        )
    return MODEL_TYPE_KINDS[model_type]


def lengths_to_mask(lengths: torch.Tensor, n: int) -> torch.Tensor:
    """(B,) lengths → (B, n) bool mask, True on the first ``length`` positions."""
    return torch.arange(n, device=lengths.device)[None, :] < lengths[:, None]


def conv_output_lengths(lengths: torch.Tensor, config, *, adapter: bool) -> torch.Tensor:
    """Frames out of the wav2vec2-style convolutional feature encoder (no padding) for sample counts
    ``lengths``, then through the optional adapter's strided layers."""
    for kernel, stride in zip(config.conv_kernel, config.conv_stride, strict=True):
        lengths = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
    if adapter and getattr(config, "add_adapter", False):
        for _ in range(config.num_adapter_layers):
            lengths = torch.div(lengths - 1, config.adapter_stride, rounding_mode="floor") + 1
    return lengths.clamp(min=0)


def w2vbert_output_lengths(lengths: torch.Tensor, config, *, adapter: bool) -> torch.Tensor:
    """Frames out of Wav2Vec2-BERT for ``lengths`` stacked feature frames: the conformer keeps the
    length; the optional adapter's padded strided convolutions shorten it."""
    if adapter and getattr(config, "add_adapter", False):
        pad = config.adapter_kernel_size // 2
        for _ in range(config.num_adapter_layers):
            lengths = (
                torch.div(
                    lengths + 2 * pad - config.adapter_kernel_size,
                    config.adapter_stride,
                    rounding_mode="floor",
                )
                + 1
            )
    return lengths


class LayerMix(nn.Module):
    """A learned softmax-weighted sum of the hidden states of every layer (weights start equal)."""

    def __init__(self, n_states: int) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(n_states))

    def forward(self, states: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(states) != len(self.weights):
            raise ValueError(f"{len(states)} hidden states for {len(self.weights)} layer weights")
        w = torch.softmax(self.weights, dim=0).to(states[0].dtype)
        out = w[0] * states[0]
        for i in range(1, len(states)):
            out = out + w[i] * states[i]
        return out


def _wavlm_attention(self, hidden_states, attention_mask, gated_position_bias):
    """WavLM's self-attention through its q/k/v/out projection modules (transformers' version reads
    their ``.weight`` directly, which would bypass LoRA); the same computation otherwise."""
    b, t, d = hidden_states.shape

    def split(x):
        return x.view(b, t, self.num_heads, d // self.num_heads).transpose(1, 2)

    q, k, v = (
        split(self.q_proj(hidden_states)),
        split(self.k_proj(hidden_states)),
        split(self.v_proj(hidden_states)),
    )
    bias = gated_position_bias.view(b, self.num_heads, t, t).to(q.dtype)
    if attention_mask is not None:
        bias = bias.masked_fill(attention_mask.ne(1)[:, None, None, :], torch.finfo(bias.dtype).min)
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=bias, dropout_p=self.dropout if self.training else 0.0
    )
    return self.out_proj(out.transpose(1, 2).reshape(b, t, d)), None


def route_wavlm_attention(model: nn.Module) -> None:
    """Make every WavLM attention call its projection modules, so that LoRA on them takes effect."""
    from transformers.models.wavlm.modeling_wavlm import WavLMAttention

    for module in model.modules():
        if isinstance(module, WavLMAttention):
            module.torch_multi_head_self_attention = types.MethodType(_wavlm_attention, module)


class WaveformFeatures:
    """A ``Wav2Vec2FeatureExtractor`` on a batch: waveforms normalised as the checkpoint says, padded
    with its padding value, and the sample-level ``attention_mask``."""

    def __init__(self, extractor) -> None:
        self.extractor = extractor

    def __call__(self, waves: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
        out = self.extractor(
            [np.asarray(w, dtype=np.float32) for w in waves],
            sampling_rate=SAMPLE_RATE,
            padding=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        return {"input_values": out["input_values"], "attention_mask": out["attention_mask"]}


def make_features(kind: str, extractor) -> Callable[[Sequence[np.ndarray]], dict[str, torch.Tensor]]:
    """The batch featuriser of a backbone kind: stacked log-mel (w2v-bert, SONAR) or waveforms."""
    return LogMelFeatures(extractor) if kind in ("w2v-bert", "sonar") else WaveformFeatures(extractor)


def load_features(name_or_path: str | os.PathLike, kind: str | None = None):
    """The featuriser of a checkpoint without loading its weights (what data loaders need)."""
    kind = detect_kind(name_or_path, kind)
    root = name_or_path if kind != "sonar" else resolve_dir(name_or_path)
    return make_features(kind, _feature_extractor(kind, str(root)))


class AudioBackbone(nn.Module):
    """A speech encoder, its feature extractor and the way to read its frames.

    :meth:`features` turns 16 kHz waveforms into the model's padded inputs (run it in the data
    loader); :meth:`forward` maps those inputs to (B, T, E) states and the (B, T) bool frame mask.
    """

    def __init__(self, model: nn.Module, feature_extractor, kind: str, *, layers: str = "last") -> None:
        super().__init__()
        if layers not in LAYER_MODES:
            raise SermmError(f"layers must be one of {', '.join(LAYER_MODES)}, got {layers!r}")
        self.model = model
        self.feature_extractor = feature_extractor
        self._features = make_features(kind, feature_extractor)
        self.kind = kind
        self.layers = layers
        config = self.base_model.encoder.config if kind == "sonar" else self.base_model.config
        self.hidden_size = int(config.hidden_size)
        self.layer_mix = LayerMix(config.num_hidden_layers + 1) if layers == "weighted" else None

    @property
    def base_model(self) -> nn.Module:
        """The pretrained model without its peft wrapper."""
        model = self.model
        return model.get_base_model() if hasattr(model, "get_base_model") else model

    @property
    def input_name(self) -> str:
        """The batch key of the model input: ``input_features`` (log-mel) or ``input_values`` (waveform)."""
        return "input_features" if self.kind in ("w2v-bert", "sonar") else "input_values"

    def features(self, waves: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
        """Padded model inputs and their ``attention_mask`` for 16 kHz mono waveforms."""
        return self._features(waves)

    def frame_mask(self, attention_mask: torch.Tensor, n_frames: int, *, adapter: bool) -> torch.Tensor:
        """The (B, n_frames) bool mask of the model's output frames for an input ``attention_mask``."""
        lengths = attention_mask.long().sum(1)
        config = self.base_model.config
        if self.kind == "w2v-bert":
            lengths = w2vbert_output_lengths(lengths, config, adapter=adapter)
        else:
            lengths = conv_output_lengths(lengths, config, adapter=adapter)
        return lengths_to_mask(lengths, n_frames)

    def _mix(self, states: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.layer_mix(states) if self.layer_mix is not None else states[-1]

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, attention_mask = batch[self.input_name], batch.get("attention_mask")
        weighted = self.layer_mix is not None
        if self.kind == "sonar":
            sonar = self.base_model
            frames = self._mix(sonar.frames(inputs, attention_mask, all_layers=weighted))
            pooled = sonar.pool(frames, attention_mask)
            return pooled.unsqueeze(1), torch.ones(pooled.shape[0], 1, dtype=torch.bool, device=pooled.device)
        out = self.model(
            **{self.input_name: inputs}, attention_mask=attention_mask, output_hidden_states=weighted
        )
        hidden = self._mix(out.hidden_states) if weighted else out.last_hidden_state
        if attention_mask is None:
            return hidden, torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device)
        # hidden states of every layer come before the adapter; the last hidden state after it
        return hidden, self.frame_mask(attention_mask, hidden.shape[1], adapter=not weighted)


@functools.lru_cache(maxsize=8)
def _feature_extractor(kind: str, root: str):
    """The checkpoint's own feature extractor, or the defaults its architecture ships with (said once)."""
    from transformers import SeamlessM4TFeatureExtractor, Wav2Vec2FeatureExtractor

    logmel = kind in ("w2v-bert", "sonar")
    cls = SeamlessM4TFeatureExtractor if logmel else Wav2Vec2FeatureExtractor
    try:
        return cls.from_pretrained(str(root))
    except (OSError, ValueError):
        print(f"note: {root} has no preprocessor_config.json; using {cls.__name__} defaults", file=sys.stderr)
        if logmel:  # facebook/w2v-bert-2.0 ships padding_value 1
            return cls(
                feature_size=80, num_mel_bins=80, stride=2, padding_value=1.0, sampling_rate=SAMPLE_RATE
            )
        return cls(
            feature_size=1,
            sampling_rate=SAMPLE_RATE,
            padding_value=0.0,
            do_normalize=True,
            return_attention_mask=True,
        )


def _load_model(kind: str, name_or_path: str | os.PathLike, overrides: dict) -> nn.Module:
    if kind == "sonar":
        return SonarSpeechEncoder.from_pretrained(name_or_path, **overrides)
    from transformers import HubertModel, Wav2Vec2BertModel, Wav2Vec2Model, WavLMModel

    cls = {"w2v-bert": Wav2Vec2BertModel, "hubert": HubertModel, "wavlm": WavLMModel}.get(kind, Wav2Vec2Model)
    try:
        return cls.from_pretrained(str(name_or_path), **overrides)
    except (OSError, ValueError) as exc:
        raise SermmError(f"{name_or_path}: cannot load a {kind} backbone ({first_line(exc)})") from None


def check_lora_targets(name_or_path: str | os.PathLike, kind: str, targets: Sequence[str]) -> None:
    """Every LoRA target names a module of the backbone, checked on the architecture built from its
    config.json on the meta device (no weights read), so a typo fails before a run directory exists."""
    if not targets or kind == "sonar":  # SONAR's modules are sermm's own, its defaults fixed
        return
    from transformers import HubertModel, Wav2Vec2BertModel, Wav2Vec2Model, WavLMModel

    cls = {"w2v-bert": Wav2Vec2BertModel, "hubert": HubertModel, "wavlm": WavLMModel}.get(kind, Wav2Vec2Model)
    config = cls.config_class.from_pretrained(str(name_or_path))
    with torch.device("meta"):
        model = cls(config)
    names = [name for name, _ in model.named_modules()]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)})
        raise SermmError(
            f"LoRA target(s) {', '.join(missing)} name no module of this {kind} backbone "
            f"(its linear layers: {', '.join(linear)})"
        )


def apply_finetuning(backbone: AudioBackbone, mode: str, lora: LoraSettings | None = None) -> AudioBackbone:
    """Set what trains: ``lora`` (adapters on the attention projections, base frozen), ``full``
    (everything but a wav2vec2-style convolutional feature encoder), ``frozen`` (nothing in the
    backbone). The layer mix, when there is one, always trains."""
    if mode not in FINETUNE_MODES:
        raise SermmError(f"finetune must be one of {', '.join(FINETUNE_MODES)}, got {mode!r}")
    model = backbone.model
    model.requires_grad_(mode == "full")
    conv_encoder = getattr(backbone.base_model, "feature_extractor", None)  # wav2vec2, HuBERT, WavLM
    if mode == "full" and isinstance(conv_encoder, nn.Module):
        conv_encoder.requires_grad_(False)
    if mode == "lora":
        from peft import LoraConfig, get_peft_model

        lora = lora or LoraSettings()
        targets = list(lora.targets or LORA_TARGETS[backbone.kind])
        config = LoraConfig(
            r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets, bias="none"
        )
        try:
            backbone.model = get_peft_model(model, config)
        except ValueError as exc:
            raise SermmError(
                f"LoRA targets {targets} do not fit this {backbone.kind} backbone ({exc})"
            ) from None
    if backbone.layer_mix is not None:
        backbone.layer_mix.requires_grad_(True)
    return backbone


def load_backbone(
    name_or_path: str | os.PathLike,
    *,
    kind: str | None = None,
    layers: str = "last",
    finetune: str = "lora",
    lora: LoraSettings | None = None,
    layerdrop: float | None = 0.0,
    gradient_checkpointing: bool = False,
) -> AudioBackbone:
    """Load a backbone with ``from_pretrained`` by Hub id or local directory and set its fine-tuning.

    ``layerdrop`` replaces the checkpoint's value (0 by default: under DDP every parameter must be
    used in every step); None keeps it.
    """
    kind = detect_kind(name_or_path, kind)
    root = name_or_path if kind != "sonar" else resolve_dir(name_or_path)
    overrides = {} if layerdrop is None else {"layerdrop": layerdrop}
    model = _load_model(kind, root, overrides)
    if kind == "wavlm":
        route_wavlm_attention(model)
    if gradient_checkpointing:
        # non-reentrant checkpointing lets gradients reach LoRA adapters inside a frozen base
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    backbone = AudioBackbone(model, _feature_extractor(kind, str(root)), kind, layers=layers)
    return apply_finetuning(backbone, finetune, lora)
