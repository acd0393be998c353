"""Augmentation: additive noise at the requested SNR, reverberation and speed perturbation."""

import numpy as np
import pytest
from audio_tiny import tone, write_wav
from scipy.signal import fftconvolve

from sermm.errors import SermmError
from sermm.systems.audio.augment import (
    Augmenter,
    AugmentSettings,
    add_noise,
    list_audio,
    power,
    reverberate,
    speed_perturb,
)


def snr_db(clean, noisy):
    return 10 * np.log10(power(clean) / power(noisy.astype(np.float64) - clean))


@pytest.mark.parametrize("snr", [-5.0, 0.0, 7.5, 20.0])
def test_add_noise_hits_the_requested_snr_and_keeps_length_and_dtype(snr):
    rng = np.random.default_rng(1)
    speech = tone(1.0)
    noise = rng.standard_normal(len(speech)).astype(np.float32) * 0.05
    out = add_noise(speech, noise, snr)
    assert out.dtype == np.float32 and len(out) == len(speech)
    assert abs(snr_db(speech, out) - snr) < 0.5


def test_augmenter_adds_noise_from_a_user_folder_at_a_random_snr_in_the_range(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(2):  # a noise file shorter than the speech is repeated
        write_wav(
            tmp_path / "noise" / f"n{i}.wav", (0.1 * rng.standard_normal(4000 + 20000 * i)), subtype="FLOAT"
        )
    aug = Augmenter(
        AugmentSettings(noise=str(tmp_path / "noise"), snr_min_db=3, snr_max_db=6, noise_prob=1.0, speeds=())
    )
    speech = tone(1.0)
    for seed in range(4):
        out = aug(speech, np.random.default_rng(seed))
        assert out.dtype == speech.dtype and len(out) == len(speech)
        assert 3 - 0.5 < snr_db(speech, out) < 6 + 0.5
    again = aug(speech, np.random.default_rng(3))
    np.testing.assert_array_equal(again, out)  # a seeded generator repeats itself


def test_reverberation_keeps_length_dtype_and_power_and_aligns_the_direct_path():
    speech = tone(0.5)
    delta = np.zeros(800, dtype=np.float32)
    delta[37] = 0.7  # a pure, delayed direct path
    np.testing.assert_allclose(reverberate(speech, delta), speech, atol=1e-6)
    rng = np.random.default_rng(0)
    rir = (rng.standard_normal(1600) * np.exp(-np.arange(1600) / 300)).astype(np.float32)
    out = reverberate(speech, rir)
    assert out.dtype == np.float32 and len(out) == len(speech)
    peak = int(np.argmax(np.abs(rir)))
    expected = fftconvolve(speech.astype(np.float64), rir)[peak : peak + len(speech)]
    np.testing.assert_allclose(out, expected * np.sqrt(power(speech) / power(expected)), rtol=1e-4, atol=1e-6)
    assert power(out) == pytest.approx(power(speech), rel=1e-4)


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturbation_changes_length_and_pitch_by_the_factor(factor):
    x = tone(2.0, freq=400)
    y = speed_perturb(x, factor)
    assert y.dtype == x.dtype
    assert abs(len(y) - len(x) / factor) <= 1
    peak = np.argmax(np.abs(np.fft.rfft(y))) * 16000 / len(y)
    assert abs(peak - 400 * factor) < 2


def test_augmenter_draws_speeds_from_the_list_and_perturbs():
    aug = Augmenter(AugmentSettings(speeds=(0.9, 1.1), speed_prob=1.0))
    rng = np.random.default_rng(0)
    speeds = {aug.draw_speed(rng) for _ in range(50)}
    assert speeds == {0.9, 1.1}
    x = tone(1.0)
    assert abs(len(aug(x, rng, speed=1.1)) - 16000 / 1.1) <= 1
    half = [aug.batch_is_augmented(rng) for _ in range(2000)]
    assert 0.45 < np.mean(half) < 0.55


def test_reverb_from_a_list_file_with_relative_paths(tmp_path):
    rir = np.zeros(400, dtype=np.float32)
    rir[0], rir[200] = 1.0, 0.5
    write_wav(tmp_path / "rirs" / "r.wav", rir, subtype="FLOAT")
    (tmp_path / "rirs.txt").write_text("rirs/r.wav\n\n")
    aug = Augmenter(AugmentSettings(rir=str(tmp_path / "rirs.txt"), reverb_prob=1.0, speeds=()))
    x = tone(0.5)
    out = aug(x, np.random.default_rng(0))
    assert not np.allclose(out, x) and len(out) == len(x)


def test_bad_corpora_are_one_clear_error(tmp_path):
    with pytest.raises(SermmError, match="noise corpus not found"):
        list_audio(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SermmError, match="no audio files"):
        list_audio(tmp_path / "empty")
    (tmp_path / "list.txt").write_text("missing.wav\n")
    with pytest.raises(SermmError, match="missing.wav not found"):
        list_audio(tmp_path / "list.txt", what="RIR")
    with pytest.raises(SermmError, match="SNR range"):
        Augmenter(AugmentSettings(snr_min_db=10, snr_max_db=0))
