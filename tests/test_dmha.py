"""The DMHA recipe end to end on tiny random wav2vec2 + BERT checkpoints: CLI training (two optimiser
steps) and prediction into a valid posterior file, the frozen-feature cache, augmentation on the fly,
attention plots, waveform statistics, the learning-rate plateau cut, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from audio_tiny import make_backbone, one_thread, tone, write_wav  # noqa: F401 (one_thread: autouse fixture)
from click.testing import CliRunner
from toy_recipe import ToyConfig, ToyRecipe
from toy_recipe import write_manifest as write_toy

from sermm.cli.system import main
from sermm.sidecar import read_sidecar
from sermm.systems.audio.io import read_audio
from sermm.systems.config import load_config
from sermm.systems.dmha import DMHAConfig, DMHAModel, DMHARecipe, crop_frames, repeat_to
from sermm.systems.feature_cache import FeatureCache, file_digest
from sermm.systems.manifest import read_manifest
from sermm.systems.rundir import RunDir
from sermm.systems.text.scratch import save_random_bert
from sermm.systems.training import train_system
from sermm.tables import read_posteriors

BIN = Path(sys.executable).parent
CLASSES = {"angry": 420.0, "neutral": 150.0, "sad": 260.0}
WORDS = {"angry": "i hate this awful news", "neutral": "the weather was fine", "sad": "we lost again sad"}
#: 12 training rows in batches of 6 with no accumulation: two optimiser steps.
FAST = [
    "epochs=1",
    "batch_size=6",
    "effective_batch=6",
    "dense_dim=16",
    "dense_layers=2",
    "crop_s=0.8",
    "lr=1e-3",
    "extract_batch=6",
]


def sets(*extra: str) -> list[str]:
    return [a for s in (*FAST, *extra) for a in ("--set", s)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Tones per class (some at 22.05 kHz) with a transcript each: train/dev manifests id,path,text,label."""
    root = tmp_path_factory.mktemp("dmha")
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("dev", 6)):
        lines = ["id,path,text,label"]
        for i in range(n):
            label = list(CLASSES)[i % 3]
            rate = 22050 if i % 2 else 16000
            x = tone(float(rng.uniform(0.5, 1.4)), rate=rate, freq=CLASSES[label], seed=i)
            write_wav(root / "wav" / f"{split}{i}.wav", x, rate=rate)
            lines.append(f"{split}{i},wav/{split}{i}.wav,{WORDS[label]} {i},{label}")
        (root / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("dmha_checkpoints")
    texts = [f"{w} {i}" for w in WORDS.values() for i in range(12)]
    return make_backbone("wav2vec2", root), save_random_bert(
        root / "bert", texts, hidden_size=24, vocab_size=80
    )


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def train_cli(corpus, checkpoints, out, *extra):
    speech, text = checkpoints
    return cli(
        "dmha",
        "train",
        "--train",
        corpus / "train.csv",
        "--dev",
        corpus / "dev.csv",
        "--backbone",
        speech,
        "--text-backbone",
        text,
        "--out",
        out,
        "-q",
        *extra,
    )


def one_line(result, *fragments):
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in result.output, (
        result.stderr
    )
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def check_posteriors(path: Path, tmp_path: Path, n: int = 6) -> None:
    table = read_posteriors(path)
    assert table.ids.tolist() == [f"dev{i}" for i in range(n)]
    assert sorted(table.columns) == sorted(CLASSES)
    np.testing.assert_allclose(table.values.sum(1), 1.0, atol=1e-6)
    labels = tmp_path / "labels.csv"
    labels.write_text("id,label\n" + "".join(f"dev{i},{list(CLASSES)[i % 3]}\n" for i in range(n)))
    done = subprocess.run(
        [str(BIN / "sermm-data"), "check", str(path), "--labels", str(labels)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert f"posterior, {n} rows, 3 classes" in done.stdout


def test_cached_mha_run_trains_two_steps_predicts_and_plots(corpus, checkpoints, tmp_path):
    cache = tmp_path / "cache"
    out = tmp_path / "run"
    result = train_cli(corpus, checkpoints, out, "--feature-cache", cache, *sets("speeds="))
    assert result.exit_code == 0, result.output
    assert "dmha categorical: 12 training and 6 dev utterances, 1 epoch(s)" in result.output
    config = RunDir.open(out).config(DMHAConfig)
    assert config.first_attention == "mha" and config.loss == "wce" and config.feature_cache == str(cache)
    # the waveform statistics were computed from the training audio and saved with the run
    train = read_manifest(corpus / "train.csv", need="path+text")
    samples = np.concatenate([read_audio(p) for p in train.paths]).astype(np.float64)
    assert config.wave_mean == pytest.approx(samples.mean(), abs=1e-6)
    assert config.wave_std == pytest.approx(samples.std(), rel=1e-5)
    # one cache entry per audio file and per distinct transcript (dev's six repeat training ones), in
    # two settings (speech, text)
    settings = sorted(p for p in cache.iterdir())
    assert len(settings) == 2
    entries = sorted(settings[0].rglob("*.safetensors")) + sorted(settings[1].rglob("*.safetensors"))
    assert len(entries) == 18 + 12
    stamps = {p: p.stat().st_mtime_ns for p in entries}

    scores = tmp_path / "d_dev.csv"
    result = cli(
        "dmha",
        "predict",
        out,
        "--manifest",
        corpus / "dev.csv",
        "-o",
        scores,
        "--embeddings",
        tmp_path / "d_dev.emb.parquet",
        "--plot-attention",
        2,
        "-q",
    )
    assert result.exit_code == 0, result.output
    check_posteriors(scores, tmp_path)
    sidecar = read_sidecar(scores)
    assert sidecar.system == "run" and sidecar.train_prior is not None
    pngs = sorted((tmp_path / "d_dev.csv.attention").glob("*.png"))
    assert [p.name for p in pngs] == ["dev0.png", "dev1.png"]
    assert pngs[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # prediction read the cache: nothing was extracted again
    assert {p: p.stat().st_mtime_ns for p in entries} == stamps


def test_subvector_focal_with_augmentation_on_the_fly(corpus, checkpoints, tmp_path):
    out = tmp_path / "run"
    result = train_cli(
        corpus,
        checkpoints,
        out,
        "--first-attention",
        "subvector",
        "--loss",
        "focal",
        *sets("augment_prob=1.0", "speeds=0.9,1.1", "normalize=utterance"),
    )
    assert result.exit_code == 0, result.output
    config = RunDir.open(out).config(DMHAConfig)
    assert config.first_attention == "subvector" and config.loss == "focal" and config.wave_mean is None
    scores = tmp_path / "d_dev.csv"
    result = cli("dmha", "predict", out, "--manifest", corpus / "dev.csv", "-o", scores, "-q")
    assert result.exit_code == 0, result.output
    check_posteriors(scores, tmp_path)


def test_cached_features_equal_the_backbones_and_crops_repeat(corpus, checkpoints, tmp_path):
    speech, text = checkpoints
    config = load_config(
        DMHAConfig,
        None,
        [*FAST, "speeds=", f"feature_cache={tmp_path / 'c'}"],
        backbone=str(speech),
        text_backbone=str(text),
    )
    recipe = DMHARecipe(quiet=True)
    dev = recipe.validate(read_manifest(corpus / "dev.csv", need="path+text"), skip_bad=False)
    config = recipe.prepare(config, dev)
    cached = recipe.dataset(dev, config, train=False).collate([0, 3])
    online = recipe.dataset(
        dev,
        load_config(
            DMHAConfig,
            None,
            [*FAST, "speeds="],
            backbone=str(speech),
            text_backbone=str(text),
            wave_mean=config.wave_mean,
            wave_std=config.wave_std,
        ),
        train=False,
    ).collate([0, 3])
    for key in ("speech_mask", "text_mask"):
        assert torch.equal(cached[key], online[key])
    for key in ("speech", "text"):
        assert torch.allclose(cached[key].float(), online[key], atol=2e-2, rtol=1e-2)  # stored as float16
    n_layers = 2 + 1
    assert cached["speech"].shape[1] == n_layers
    # training crops from the cache: every row the crop length, short rows repeated
    train = recipe.dataset(dev, config, train=True).collate([0, 1, 2])
    assert train["speech"].shape[2] == recipe.dataset(dev, config, train=True).crop_frames
    assert bool(train["speech_mask"].all())
    x = torch.arange(5.0).reshape(1, 5, 1)
    assert crop_frames(x, 12, np.random.default_rng(0)).flatten().tolist() == [0, 1, 2, 3, 4] * 2 + [0, 1]
    assert repeat_to(np.arange(3), 7).tolist() == [0, 1, 2, 0, 1, 2, 0]


def test_cache_keys_follow_the_audio_bytes(tmp_path):
    a = write_wav(tmp_path / "a.wav", tone(0.3))
    b = write_wav(tmp_path / "b.wav", tone(0.3))  # same content under another name
    c = write_wav(tmp_path / "c.wav", tone(0.3, seed=1))
    assert file_digest(a) == file_digest(b) != file_digest(c)
    cache = FeatureCache(tmp_path / "cache", {"backbone": "x"})
    calls = []

    def extract(rows):
        calls.append(rows.tolist())
        return [torch.full((2, 3), float(i)) for i in rows]

    keys = [file_digest(p) for p in (a, b, c)]
    assert cache.fill(keys, extract, quiet=True) == 2  # a and b share one entry
    assert cache.fill(keys, extract, quiet=True) == 0  # all there: nothing extracted again
    assert calls == [[0, 2]]
    assert cache.load(keys[2]).dtype == torch.float16 and float(cache.load(keys[2])[0, 0]) == 2.0
    assert FeatureCache(tmp_path / "cache", {"backbone": "y"}).key != cache.key


def test_model_ignores_padding_in_both_modalities():
    torch.manual_seed(0)
    for first in ("mha", "subvector"):
        model = DMHAModel(16, 3, 8, 4, first_attention=first, dense_layers=2, dense_dim=8).eval()
        speech, text = torch.randn(2, 3, 5, 16), torch.randn(2, 4, 8)
        sm, tm = torch.ones(2, 5, dtype=torch.bool), torch.ones(2, 4, dtype=torch.bool)
        sm[1, 3:], tm[1, 2:] = False, False
        batch = {"speech": speech, "speech_mask": sm, "text": text, "text_mask": tm}
        out = model(batch)["scores"]
        wide = {
            "speech": torch.cat([speech, 1e3 * torch.randn(2, 3, 4, 16)], 2),
            "speech_mask": torch.cat([sm, torch.zeros(2, 4, dtype=torch.bool)], 1),
            "text": torch.cat([text, 1e3 * torch.randn(2, 3, 8)], 1),
            "text_mask": torch.cat([tm, torch.zeros(2, 3, dtype=torch.bool)], 1),
        }
        wide["speech"][1, :, 3:5] = 1e3  # garbage in the padding that was there already
        assert torch.allclose(model(wide)["scores"], out, atol=1e-4)
        batch["speech"][1, :, 3:5] = -1e3
        assert torch.allclose(model(batch)["scores"], out, atol=1e-4)
        maps = model.attention_maps(batch)
        assert maps["first"].shape == (2, 4, 9) and maps["mask"].shape == (2, 9)


def test_bad_input_is_one_line(corpus, checkpoints, tmp_path):
    speech, text = checkpoints
    no_text = tmp_path / "audio_only.csv"
    no_text.write_text(
        "id,path,label\n" + "".join(f"t{i},{corpus}/wav/train{i}.wav,angry\n" for i in range(3))
    )
    result = CliRunner().invoke(
        main,
        [
            "dmha",
            "train",
            "--train",
            str(no_text),
            "--dev",
            str(no_text),
            "--backbone",
            str(speech),
            "--text-backbone",
            str(text),
            "--out",
            str(tmp_path / "r1"),
        ],
    )
    one_line(result, "no 'text' column", "id,path,text,label")
    assert not (tmp_path / "r1").exists()
    result = CliRunner().invoke(
        main,
        [
            "dmha",
            "train",
            "--train",
            str(corpus / "train.csv"),
            "--dev",
            str(corpus / "dev.csv"),
            "--backbone",
            str(speech),
            "--out",
            str(tmp_path / "r2"),
        ],
    )
    one_line(result, "no text backbone", "--text-backbone")
    result = CliRunner().invoke(
        main,
        [
            "dmha",
            "train",
            "--train",
            str(corpus / "train.csv"),
            "--dev",
            str(corpus / "dev.csv"),
            "--backbone",
            str(speech),
            "--text-backbone",
            str(text),
            "--out",
            str(tmp_path / "r3"),
            "--set",
            "finetune=lora",
        ],
    )
    one_line(result, "frozen backbones")
    result = CliRunner().invoke(
        main,
        [
            "dmha",
            "predict",
            str(tmp_path / "nothing"),
            "--manifest",
            str(corpus / "dev.csv"),
            "-o",
            str(tmp_path / "x.csv"),
        ],
    )
    one_line(result, "not a sermm run directory")
    assert not (tmp_path / "x.csv").exists()


def test_learning_rate_is_cut_on_a_dev_plateau_and_training_stops(tmp_path):
    train = read_manifest(write_toy(tmp_path / "train.csv", 60, seed=0), need="text")
    dev = read_manifest(write_toy(tmp_path / "dev.csv", 30, seed=1), need="text")
    config = load_config(
        ToyConfig,
        None,
        [
            "epochs=8",
            "lr=1e-4",
            "schedule=constant",
            "plateau_patience=1",
            "plateau_factor=0.5",
            "patience=3",
        ],
    )
    result = train_system(ToyRecipe(), config, train, dev, str(tmp_path / "run"), quiet=True)
    history = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    cuts, stale = 0, 0
    for record in history:
        stale = 0 if record["best"] else stale + 1
        cuts += not record["best"]
        assert record["lr"] == pytest.approx(1e-4 * 0.5**cuts), history
    assert cuts >= 2, history  # lr 1e-4 barely moves the toy model: dev macro-F1 plateaus
    assert result.epochs_run == len(history)
    assert len(history) == 8 or stale == 3
