"""The vectorised log-mel features equal transformers' SeamlessM4TFeatureExtractor."""

import numpy as np
import pytest
import torch
from transformers import SeamlessM4TFeatureExtractor

from sermm.systems.audio.features import LogMelFeatures


@pytest.mark.parametrize("padding_value", [0.0, 1.0])
def test_log_mel_features_match_seamless_m4t_extractor(padding_value):
    extractor = SeamlessM4TFeatureExtractor(padding_value=padding_value)
    rng = np.random.default_rng(0)
    # odd and even frame counts, a clip shorter than one stacked frame, a tone with silence
    t = np.arange(20000) / 16000
    waves = [0.1 * rng.standard_normal(n) for n in (16000, 12345, 8160, 8320, 700)]
    waves.append(np.where(t < 0.6, 0.3 * np.sin(2 * np.pi * 300 * t), 0.001 * rng.standard_normal(len(t))))
    waves = [w.astype(np.float32) for w in waves]
    ref = extractor(waves, sampling_rate=16000, padding=True, return_attention_mask=True, return_tensors="pt")
    out = LogMelFeatures(extractor)(waves)
    torch.testing.assert_close(out["attention_mask"], ref["attention_mask"].long(), rtol=0, atol=0)
    torch.testing.assert_close(out["input_features"], ref["input_features"].float(), rtol=1e-4, atol=1e-4)
