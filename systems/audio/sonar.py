"""The SONAR speech encoder (Duquenne et al., 2023) in plain PyTorch: a w2v-BERT 2.0 conformer on
stacked log-mel features, a final LayerNorm, and SONAR's attention pooler, a small transformer decoder
(3 layers in the English encoder) whose single BOS query cross-attends to the encoder's frames.

The released fairseq2 checkpoints are converted once, in an environment with fairseq2 and sonar
installed, by :mod:`sermm.systems.audio.convert_sonar` into a directory that
:meth:`SonarSpeechEncoder.from_pretrained` reads: ``config.json`` (``model_type`` =
:data:`SONAR_MODEL_TYPE`), ``model.safetensors`` and the feature extractor's
``preprocessor_config.json``. The encoder is transformers' ``Wav2Vec2BertModel``; SONAR's
conformer uses BatchNorm and a centred ("same") depthwise convolution where w2v-bert-2.0 uses
LayerNorm and a causal one, so :class:`ConformerConvolution` replaces that block when the config
says ``conv_norm: batch_norm``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import Wav2Vec2BertConfig, Wav2Vec2BertModel
from transformers.activations import ACT2FN

from sermm.errors import SermmError, first_line

#: The ``model_type`` in the ``config.json`` of a converted SONAR speech encoder.
SONAR_MODEL_TYPE = "sonar-speech-encoder"
WEIGHTS_NAME = "model.safetensors"


@dataclass
class SonarSpeechConfig:
    """The architecture of a SONAR speech encoder; ``encoder`` holds ``Wav2Vec2BertConfig`` keywords.

    The defaults are those of the released English encoder (``sonar_speech_encoder_eng``).
    """

    encoder: dict[str, Any] = field(default_factory=dict)
    #: ``batch_norm`` with a centred depthwise convolution (SONAR), or ``layer_norm`` with a causal
    #: one (w2v-bert-2.0, transformers' own block).
    conv_norm: str = "batch_norm"
    num_decoder_layers: int = 3
    num_decoder_heads: int = 16
    decoder_ffn_dim: int = 4096
    dropout: float = 0.1
    final_dropout: float = 0.1
    layer_norm_eps: float = 1e-5
    model_type: str = SONAR_MODEL_TYPE

    def encoder_config(self) -> Wav2Vec2BertConfig:
        """The conformer's transformers config."""
        return Wav2Vec2BertConfig(**self.encoder)

    @classmethod
    def from_dict(cls, doc: dict[str, Any], source: str = "config.json") -> SonarSpeechConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(doc) - known)
        if doc.get("model_type") != SONAR_MODEL_TYPE:
            raise SermmError(
                f"{source}: not a converted SONAR speech encoder (model_type {doc.get('model_type')!r}, "
                f"expected {SONAR_MODEL_TYPE!r})"
            )
        if unknown:
            raise SermmError(f"{source}: unknown SONAR config keys {', '.join(unknown)}")
        return cls(**doc)


class ConformerConvolution(nn.Module):
    """Conformer convolution block with BatchNorm and a centred depthwise convolution (fairseq2's
    ``ConformerConvolution`` with ``norm_type="batch_norm"``), padded frames set to zero first."""

    def __init__(self, config: Wav2Vec2BertConfig) -> None:
        super().__init__()
        dim, kernel = config.hidden_size, config.conv_depthwise_kernel_size
        self.layer_norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.pointwise_conv1 = nn.Conv1d(dim, 2 * dim, kernel_size=1, bias=False)
        self.depthwise_conv = nn.Conv1d(dim, dim, kernel, padding=(kernel - 1) // 2, groups=dim, bias=False)
        self.batch_norm = nn.BatchNorm1d(dim)
        self.activation = ACT2FN[config.hidden_act]
        self.pointwise_conv2 = nn.Conv1d(dim, dim, kernel_size=1, bias=False)
        self.dropout = nn.Dropout(config.conformer_conv_dropout)

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = self.layer_norm(hidden_states)
        if attention_mask is not None:
            x = x.masked_fill(~attention_mask.bool().unsqueeze(-1), 0.0)
        # pointwise_conv1 has no bias and GLU(0, 0) = 0: padded frames stay zero for the centred kernel
        x = F.glu(self.pointwise_conv1(x.transpose(1, 2)), dim=1)
        x = self.activation(self.batch_norm(self.depthwise_conv(x)))
        return self.dropout(self.pointwise_conv2(x)).transpose(1, 2)


class PoolerAttention(nn.Module):
    """Multi-head attention with separate q/k/v/output projections (fairseq2's naming, so that LoRA
    can target ``q_proj`` and ``v_proj``); ``key_mask`` (B, S) is 1 on real keys."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"model dimension {dim} is not divisible by {heads} heads")
        self.heads, self.dropout = heads, dropout
        self.q_proj, self.k_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.v_proj, self.output_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        return x.view(b, t, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, key_mask: torch.Tensor | None = None):
        q, k, v = (
            self._split(self.q_proj(x)),
            self._split(self.k_proj(memory)),
            self._split(self.v_proj(memory)),
        )
        mask = None if key_mask is None else key_mask.bool()[:, None, None, :]
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.output_proj(out.transpose(1, 2).reshape(x.shape))


class PoolerDecoderLayer(nn.Module):
    """A post-norm transformer decoder layer: self-attention, cross-attention to the encoder, ReLU FFN."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float, eps: float) -> None:
        super().__init__()
        self.self_attn = PoolerAttention(dim, heads, dropout)
        self.self_attn_layer_norm = nn.LayerNorm(dim, eps=eps)
        self.encoder_decoder_attn = PoolerAttention(dim, heads, dropout)
        self.encoder_decoder_attn_layer_norm = nn.LayerNorm(dim, eps=eps)
        self.ffn = nn.ModuleDict(
            {"inner_proj": nn.Linear(dim, ffn_dim), "output_proj": nn.Linear(ffn_dim, dim)}
        )
        self.ffn_layer_norm = nn.LayerNorm(dim, eps=eps)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        x = self.self_attn_layer_norm(x + self.drop(self.self_attn(x, x)))
        x = self.encoder_decoder_attn_layer_norm(
            x + self.drop(self.encoder_decoder_attn(x, memory, key_mask))
        )
        hidden = self.ffn["output_proj"](torch.relu(self.ffn["inner_proj"](x)))
        return self.ffn_layer_norm(x + self.drop(hidden))


class SonarAttentionPooler(nn.Module):
    """SONAR's pooler: one query (the decoder front-end's output for the BOS token: its scaled
    embedding plus the position-0 encoding, a constant) through the decoder layers, then a linear
    projection without bias: (B, T, E) frames and (B, T) mask → (B, E)."""

    def __init__(self, dim: int, config: SonarSpeechConfig) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.randn(dim) / math.sqrt(dim))
        self.query_dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(
            PoolerDecoderLayer(
                dim, config.num_decoder_heads, config.decoder_ffn_dim, config.dropout, config.layer_norm_eps
            )
            for _ in range(config.num_decoder_layers)
        )
        self.projection_out = nn.Linear(dim, dim, bias=False)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.query_dropout(self.query.to(frames.dtype).expand(frames.shape[0], 1, -1))
        for layer in self.layers:
            x = layer(x, frames, mask)
        return self.projection_out(x).squeeze(1)


class SonarSpeechEncoder(nn.Module):
    """Conformer → LayerNorm → dropout → attention pooler: a SONAR speech sentence embedding (B, E)."""

    def __init__(self, config: SonarSpeechConfig) -> None:
        super().__init__()
        if config.conv_norm not in ("batch_norm", "layer_norm"):
            raise SermmError(f"conv_norm must be batch_norm or layer_norm, got {config.conv_norm!r}")
        self.config = config
        encoder_config = config.encoder_config()
        self.encoder = Wav2Vec2BertModel(encoder_config)
        if config.conv_norm == "batch_norm":
            for layer in self.encoder.encoder.layers:
                layer.conv_module = ConformerConvolution(encoder_config)
        dim = encoder_config.hidden_size
        self.layer_norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.final_dropout = nn.Dropout(config.final_dropout)
        self.pooler = SonarAttentionPooler(dim, config)

    def frames(
        self,
        input_features: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        all_layers: bool = False,
    ) -> tuple[torch.Tensor, ...]:
        """The conformer's output (B, T, E), or with ``all_layers`` its input and every layer's output."""
        out = self.encoder(input_features, attention_mask=attention_mask, output_hidden_states=all_layers)
        return tuple(out.hidden_states) if all_layers else (out.last_hidden_state,)

    def pool(self, frames: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The sentence embedding of conformer frames: LayerNorm, dropout, attention pooler."""
        return self.pooler(self.final_dropout(self.layer_norm(frames)), attention_mask)

    def forward(
        self, input_features: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.pool(self.frames(input_features, attention_mask)[0], attention_mask)

    def gradient_checkpointing_enable(self, **kwargs: Any) -> None:
        """Recompute the conformer's activations in the backward pass (saves memory on long audio)."""
        self.encoder.gradient_checkpointing_enable(**kwargs)

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write ``config.json`` and ``model.safetensors`` into ``directory``."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        doc = asdict(self.config)
        doc["encoder"] = self.encoder.config.to_diff_dict()
        doc["encoder"].pop("transformers_version", None)
        (out / "config.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(out / WEIGHTS_NAME))

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **encoder_overrides: Any) -> SonarSpeechEncoder:
        """Load a converted encoder from a local directory or a Hugging Face Hub repository id.

        ``encoder_overrides`` replace keys of the conformer's config (e.g. ``layerdrop=0.0``).
        """
        root = resolve_dir(name_or_path)
        config_path = root / "config.json"
        try:
            doc = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SermmError(f"{config_path}: cannot read the SONAR config ({first_line(exc)})") from None
        config = SonarSpeechConfig.from_dict(doc, source=str(config_path))
        config.encoder = {**config.encoder, **encoder_overrides}
        model = cls(config)
        weights = root / WEIGHTS_NAME
        if not weights.is_file():
            raise SermmError(f"{weights}: SONAR weights not found")
        state = load_file(str(weights))
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise SermmError(
                f"{weights}: weights do not fit the config (missing {sorted(missing)[:3]}, "
                f"unexpected {sorted(unexpected)[:3]})"
            )
        return model


def resolve_dir(name_or_path: str | os.PathLike) -> Path:
    """A local model directory as is; a Hub repository id downloaded (cached) by huggingface_hub."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    if path.exists() or str(name_or_path).count("/") != 1:
        raise SermmError(f"{name_or_path}: not a model directory or a Hugging Face Hub id")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(name_or_path)))
    except Exception as exc:  # noqa: BLE001 - hub errors come in many types; one line for the user
        raise SermmError(
            f"{name_or_path}: cannot fetch from the Hugging Face Hub ({first_line(exc)})"
        ) from None
