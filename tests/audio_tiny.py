"""Tiny random checkpoints of every audio backbone kind, saved with ``save_pretrained`` (no hub), and
synthetic 16 kHz test signals; shared by the audio tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

#: Tiny transformer sizes shared by every kind.
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
#: The real wav2vec2-style convolutional encoder's kernels and strides (320× downsampling), 8 channels.
CONV = dict(conv_dim=(8,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2))
SSL = dict(
    **TINY,
    **CONV,
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
    feat_extract_norm="layer",
    do_stable_layer_norm=True,
    mask_time_prob=0.0,
    layerdrop=0.0,
)
W2V_BERT = dict(
    **TINY,
    feature_projection_input_dim=160,
    conv_depthwise_kernel_size=3,
    position_embeddings_type="relative_key",
    left_max_position_embeddings=16,
    right_max_position_embeddings=4,
    mask_time_prob=0.0,
    layerdrop=0.0,
    add_adapter=False,
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread; on a busy shared machine more threads spin and wait."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_backbone(kind: str, root: Path, **overrides) -> Path:
    """Write a tiny random ``kind`` checkpoint (model and feature extractor) into ``root`` and return it."""
    from sermm.systems.audio.scratch import save_random_backbone

    out = root / f"{kind}{'-' + '-'.join(overrides) if overrides else ''}"
    if kind == "sonar":
        encoder = {**W2V_BERT, "position_embeddings_type": "relative", **overrides}
        return save_random_backbone(
            kind, out, **encoder, num_decoder_layers=2, num_decoder_heads=2, decoder_ffn_dim=64
        )
    if kind == "w2v-bert":
        return save_random_backbone(kind, out, **{**W2V_BERT, **overrides})
    extra = {"num_buckets": 32, "max_bucket_distance": 64} if kind == "wavlm" else {}
    return save_random_backbone(kind, out, **{**SSL, **extra, **overrides})


def tone(seconds: float, rate: int = 16000, freq: float = 220.0, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a little noise, float32 in [-0.5, 0.5]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.1 * np.sin(2 * np.pi * 3 * freq * t)
    return (x + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


def write_wav(path: Path, x: np.ndarray, rate: int = 16000, subtype: str = "PCM_16") -> Path:
    """Write ``x`` (1-D mono or 2-D frames × channels) as a WAV file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, rate, subtype=subtype)
    return path
