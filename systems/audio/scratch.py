"""Randomly initialised backbones saved as checkpoint directories, for training from scratch where no
pretrained weights exist (the EmoDB benchmark on a CPU, quick experiments); they load through the
same :func:`~sermm.systems.audio.backbones.load_backbone` path as a real checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sermm.errors import SermmError


def save_random_backbone(kind: str, directory: str | os.PathLike, *, seed: int = 0, **config: Any) -> Path:
    """Write a random ``kind`` backbone whose config takes ``config`` (transformers keywords; for
    ``sonar`` the conformer's, plus ``num_decoder_layers`` etc.), with its feature extractor."""
    import torch
    from transformers import (
        HubertConfig,
        HubertModel,
        SeamlessM4TFeatureExtractor,
        Wav2Vec2BertConfig,
        Wav2Vec2BertModel,
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2Model,
        WavLMConfig,
        WavLMModel,
    )

    from sermm.systems.audio.sonar import SonarSpeechConfig, SonarSpeechEncoder

    torch.manual_seed(seed)
    out = Path(directory)
    if kind == "sonar":
        pooler = {
            k: config.pop(k)
            for k in ("num_decoder_layers", "num_decoder_heads", "decoder_ffn_dim")
            if k in config
        }
        model = SonarSpeechEncoder(SonarSpeechConfig(encoder=config, **pooler))
    elif kind == "w2v-bert":
        model = Wav2Vec2BertModel(Wav2Vec2BertConfig(**config))
    elif kind in ("wav2vec2", "xls-r", "hubert", "wavlm"):
        cls, model_cls = {"hubert": (HubertConfig, HubertModel), "wavlm": (WavLMConfig, WavLMModel)}.get(
            kind, (Wav2Vec2Config, Wav2Vec2Model)
        )
        model = model_cls(cls(**config))
    else:
        raise SermmError(f"unknown backbone kind {kind!r}")
    model.save_pretrained(out)
    if kind in ("w2v-bert", "sonar"):
        SeamlessM4TFeatureExtractor(padding_value=1.0).save_pretrained(out)
    else:
        Wav2Vec2FeatureExtractor(
            feature_size=1,
            sampling_rate=16000,
            padding_value=0.0,
            do_normalize=True,
            return_attention_mask=True,
        ).save_pretrained(out)
    return out
