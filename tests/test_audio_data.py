"""Training chunks and prediction windows: lengths, coverage, determinism, window averaging."""

import numpy as np
import pytest
import torch
from audio_tiny import make_backbone, one_thread, tone, write_wav  # noqa: F401 (one_thread: autouse fixture)

from sermm.systems.audio.augment import Augmenter, AugmentSettings
from sermm.systems.audio.backbones import load_backbone
from sermm.systems.audio.data import AudioDataset, AudioItems, window_bounds
from sermm.systems.audio.io import probe_audio
from sermm.systems.audio.model import AudioModel
from sermm.systems.batching import length_batches

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


def batches_of(data, size=3, seed=0):
    return [
        data.collate(rows) for rows in length_batches(data.lengths(), max_items=size, shuffle=True, seed=seed)
    ]


def test_training_batches_are_equal_random_chunks_in_the_range(items):
    data = AudioDataset(items, raw_features, train=True, chunk_min_s=2.0, chunk_max_s=4.0, seed=1)
    np.testing.assert_allclose(data.lengths(), np.minimum(DURATIONS, 4.0))
    batches = batches_of(data)
    assert sorted(np.concatenate([b["index"].numpy() for b in batches])) == list(range(len(items)))
    for batch in batches:
        rows = batch["index"].numpy()
        lengths = batch["attention_mask"].sum(1).numpy() / 16000
        full = lengths[items.durations[rows] > 4.0]
        if len(full):
            assert 2.0 <= full.max() <= 4.0 and np.ptp(full) < 1e-3  # one chunk length per batch
        for k, i in enumerate(rows):
            if items.durations[i] < 2.0:  # shorter than any chunk: the whole utterance
                assert lengths[k] == pytest.approx(items.durations[i], abs=1e-3)
        assert batch["target"].tolist() == (rows % 3).tolist()


def test_training_chunks_repeat_for_a_seed_and_change_with_the_epoch(items):
    a = AudioDataset(items, raw_features, train=True, seed=3)
    b = AudioDataset(items, raw_features, train=True, seed=3)
    rows = [7, 6, 5]
    torch.testing.assert_close(a.collate(rows)["input_values"], b.collate(rows)["input_values"])
    first = a.collate(rows)["input_values"]
    a.set_epoch(1)
    second = a.collate(rows)["input_values"]
    assert first.shape != second.shape or not torch.equal(first, second)


def test_augmented_batches_are_about_the_requested_share(items, tmp_path):
    write_wav(tmp_path / "noise.wav", 0.1 * np.random.default_rng(0).standard_normal(32000), subtype="FLOAT")
    aug = Augmenter(
        AugmentSettings(noise=str(tmp_path / "noise.wav"), noise_prob=1.0, speeds=(), batch_prob=0.5)
    )
    plain = AudioDataset(items, raw_features, train=True, seed=5)
    noisy = AudioDataset(items, raw_features, train=True, seed=5, augmenter=aug)
    changed = []
    for epoch in range(12):
        plain.set_epoch(epoch)
        noisy.set_epoch(epoch)
        for i in range(len(items)):
            x, y = plain.collate([i])["input_values"], noisy.collate([i])["input_values"]
            assert x.shape == y.shape  # augmentation does not change which chunk is read
            changed.append(not torch.allclose(x, y))
    assert 0.35 < np.mean(changed) < 0.65


def test_window_bounds_cover_the_utterance_in_equal_windows():
    assert window_bounds(100, 40) == [(0, 33), (33, 67), (67, 100)]
    assert window_bounds(30, 40) == [(0, 30)]


def test_prediction_reads_whole_utterances_and_windows_long_ones(items):
    data = AudioDataset(items, raw_features, train=False, max_window_s=4.0)
    np.testing.assert_allclose(data.lengths(), DURATIONS)
    batch = data.collate([2, 7])
    assert batch["window_owner"].tolist() == [0, 1, 1, 1]  # 9 s in three windows of 3 s
    assert batch["attention_mask"].sum(1).tolist() == [48000, 48000, 48000, 48000]
    assert "window_owner" not in data.collate([0, 1])


def test_model_averages_window_posteriors(tmp_path, items):
    backbone = load_backbone(make_backbone("wav2vec2", tmp_path), finetune="frozen")
    model = AudioModel(backbone, 3).eval()
    batch = AudioDataset(items, backbone.features, train=False, max_window_s=4.0).collate([6])
    assert batch["window_owner"].tolist() == [0, 0]
    wave = items.read(6)
    with torch.no_grad():
        together = model(batch)
        apart = [model(backbone.features([wave[a:b]])) for a, b in window_bounds(len(wave), 64000)]
    mean_p = torch.stack([torch.softmax(o["scores"][0], 0) for o in apart]).mean(0)
    torch.testing.assert_close(torch.softmax(together["scores"][0], 0), mean_p, rtol=1e-5, atol=1e-6)
    mean_e = torch.stack([o["embedding"][0] for o in apart]).mean(0)
    torch.testing.assert_close(together["embedding"][0], mean_e, rtol=1e-5, atol=1e-6)
