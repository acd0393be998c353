"""Training chunks and prediction windows: lengths, coverage, determinism, window averaging."""

import numpy as np
import pytest
import torch
from audio_tiny import make_backbone, one_thread, tone, write_wav  # noqa: F401 (one_thread: autouse fixture)

from sermm.systems.audio.augment import Augmenter, AugmentSettings
from sermm.systems.audio.backbones import load_backbone
from sermm.systems.audio.data import AudioItems, PredictionBatches, TrainingBatches, window_bounds
from sermm.systems.audio.io import probe_audio
from sermm.systems.audio.model import AudioModel

DURATIONS = [0.8, 1.5, 3.0, 4.5, 5.0, 6.0, 7.5, 9.0]


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    root = tmp_path_factory.mktemp("wavs")
    paths = [
        write_wav(root / f"u{i}.wav", tone(d, seed=i, freq=120 + 30 * i)) for i, d in enumerate(DURATIONS)
    ]
    infos, _ = probe_audio(paths, progress=False)
    return AudioItems(paths, infos, targets=np.arange(len(paths)) % 3)


def raw_features(waves):
    """Waveforms padded with zeros, and the sample mask."""
    n = max(len(w) for w in waves)
    out = torch.zeros(len(waves), n)
    mask = torch.zeros(len(waves), n, dtype=torch.long)
    for i, w in enumerate(waves):
        out[i, : len(w)] = torch.from_numpy(w)
        mask[i, : len(w)] = 1
    return {"input_values": out, "attention_mask": mask}


def test_training_batches_are_equal_random_chunks_in_the_range(items):
    data = TrainingBatches(items, raw_features, batch_size=3, chunk_min_s=2.0, chunk_max_s=4.0, seed=1)
    seen = np.concatenate([data[b]["index"].numpy() for b in range(len(data))])
    assert sorted(seen) == list(range(len(items)))
    for b in range(len(data)):
        batch = data[b]
        lengths = batch["attention_mask"].sum(1).numpy() / 16000
        full = lengths[items.durations[batch["index"].numpy()] > 4.0]
        if len(full):
            assert 2.0 <= full.max() <= 4.0 and np.ptp(full) < 1e-3  # one chunk length per batch
        short = batch["index"].numpy()[items.durations[batch["index"].numpy()] < 2.0]
        for i in short:  # shorter than any chunk: the whole utterance
            assert lengths[list(batch["index"].numpy()).index(i)] == pytest.approx(
                items.durations[i], abs=1e-3
            )
        assert batch["target"].dtype == torch.int64


def test_training_batches_repeat_for_a_seed_and_change_with_the_epoch(items):
    a = TrainingBatches(items, raw_features, batch_size=4, seed=3)
    b = TrainingBatches(items, raw_features, batch_size=4, seed=3)
    torch.testing.assert_close(a[0]["input_values"], b[0]["input_values"])
    first = [a[i]["input_values"] for i in range(len(a))]
    a.set_epoch(1)
    second = [a[i]["input_values"] for i in range(len(a))]
    assert any(x.shape != y.shape or not torch.equal(x, y) for x, y in zip(first, second, strict=True))


def test_augmented_batches_are_about_the_requested_share(items, tmp_path):
    write_wav(tmp_path / "noise.wav", 0.1 * np.random.default_rng(0).standard_normal(32000), subtype="FLOAT")
    aug = Augmenter(
        AugmentSettings(noise=str(tmp_path / "noise.wav"), noise_prob=1.0, speeds=(), batch_prob=0.5)
    )
    plain = TrainingBatches(items, raw_features, batch_size=1, seed=5)
    noisy = TrainingBatches(items, raw_features, batch_size=1, seed=5, augmenter=aug)
    changed = []
    for epoch in range(6):
        plain.set_epoch(epoch)
        noisy.set_epoch(epoch)
        for b in range(len(plain)):
            x, y = plain[b]["input_values"], noisy[b]["input_values"]
            changed.append(x.shape != y.shape or not torch.allclose(x, y))
    assert 0.25 < np.mean(changed) < 0.75


def test_window_bounds_cover_the_utterance_in_equal_windows():
    assert window_bounds(100, 40) == [(0, 33), (33, 67), (67, 100)]
    assert window_bounds(30, 40) == [(0, 30)]


def test_prediction_batches_cover_every_row_once_sorted_and_window_long_ones(items):
    data = PredictionBatches(items, raw_features, batch_seconds=12.0, max_window_s=4.0)
    rows = [data[b]["index"].tolist() for b in range(len(data))]
    assert sorted(sum(rows, [])) == list(range(len(items)))
    padded = [len(r) * max(DURATIONS[i] for i in r) for r in rows]
    assert max(p for p, r in zip(padded, rows, strict=True) if len(r) > 1) <= 12.0
    last = data[len(data) - 1]
    assert last["window_owner"].tolist().count(0) == 3  # 9 s in three windows of 3 s


def test_model_averages_window_posteriors(tmp_path, items):
    backbone = load_backbone(make_backbone("wav2vec2", tmp_path), finetune="frozen")
    model = AudioModel(backbone, 3).eval()
    data = PredictionBatches(
        items, backbone.features, batch_seconds=100.0, max_window_s=4.0, rows=np.array([6])
    )
    batch = data[0]
    assert batch["window_owner"].tolist() == [0, 0]
    wave = items.read(6)
    with torch.no_grad():
        together = model(batch)
        apart = [model(backbone.features([wave[a:b]])) for a, b in window_bounds(len(wave), 64000)]
    mean_p = torch.stack([torch.softmax(o["scores"][0], 0) for o in apart]).mean(0)
    torch.testing.assert_close(torch.softmax(together["scores"][0], 0), mean_p, rtol=1e-5, atol=1e-6)
    mean_e = torch.stack([o["embedding"][0] for o in apart]).mean(0)
    torch.testing.assert_close(together["embedding"][0], mean_e, rtol=1e-5, atol=1e-6)
