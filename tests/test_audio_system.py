"""The audio system end to end: `sermm-system audio train|predict` for every backbone kind and both
tasks, reloading, two-rank prediction, the files it writes feeding fusion and calibration, bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from audio_tiny import make_backbone, one_thread, tone, write_wav  # noqa: F401 (one_thread: autouse fixture)
from click.testing import CliRunner

from sermm.cli.system import main
from sermm.sidecar import read_sidecar
from sermm.systems.audio.kinds import KINDS
from sermm.systems.audio.recipe import AudioRecipe
from sermm.systems.config import load_config
from sermm.systems.manifest import read_manifest
from sermm.systems.prediction import predict_system
from sermm.systems.training import train_system
from sermm.tables import read_posteriors, read_scores

BIN = Path(sys.executable).parent
CLASSES = {"angry": 420.0, "neutral": 150.0, "sad": 260.0}
#: Small and fast: short chunks, a small embedding, no worker processes.
FAST = [
    "epochs=1",
    "num_workers=0",
    "batch_size=4",
    "effective_batch=8",
    "chunk_min_s=0.5",
    "chunk_max_s=1.0",
    "embedding_dim=16",
    "lr=1e-3",
]


def sets(*extra: str) -> list[str]:
    return [a for s in (*FAST, *extra) for a in ("--set", s)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Tones per class (some at 22.05 kHz, one stereo) in train/dev manifests with attributes and speakers,
    and the same clips as an MSP-Podcast labels_consensus.csv."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    msp = ["FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Split_Set"]
    codes = {"angry": "A", "neutral": "N", "sad": "S"}
    for split, n in (("train", 12), ("dev", 6)):
        lines = ["id,path,label,arousal,valence,dominance,speaker"]
        for i in range(n):
            label = list(CLASSES)[i % 3]
            seconds = float(rng.uniform(0.6, 2.2))
            x = tone(seconds, rate=22050 if i % 2 else 16000, freq=CLASSES[label], seed=i)
            if i == 1:
                x = np.stack([x, 0.5 * x], axis=1)
            write_wav(root / "wav" / f"{split}{i}.wav", x, rate=22050 if i % 2 else 16000)
            a, v, d = CLASSES[label] / 420, 1 - CLASSES[label] / 420, seconds / 2.2
            lines.append(f"{split}{i},wav/{split}{i}.wav,{label},{a:.3f},{v:.3f},{d:.3f},s{i % 3}")
            code = "O" if split == "train" and i == n - 1 else codes[label]
            msp.append(
                f"{split}{i}.wav,{code},{1 + 6 * a:.2f},{1 + 6 * v:.2f},{1 + 6 * d:.2f},{i % 3},"
                f"{'Train' if split == 'train' else 'Development'}"
            )
        (root / f"{split}.csv").write_text("\n".join(lines) + "\n")
    (root / "labels_consensus.csv").write_text("\n".join(msp) + "\n")
    return root


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    saved = {kind: make_backbone(kind, root) for kind in ("w2v-bert", "sonar", "wav2vec2", "hubert", "wavlm")}
    saved["xls-r"] = saved["wav2vec2"]
    return saved


def cli(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def train_cli(corpus, backbone, out, *extra, **kwargs):
    return cli(
        "audio",
        "train",
        "--train",
        corpus / "train.csv",
        "--dev",
        corpus / "dev.csv",
        "--backbone",
        backbone,
        "--out",
        out,
        "-q",
        *extra,
    )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("task", ["categorical", "attributes"])
def test_every_kind_trains_and_predicts_both_tasks_from_the_cli(corpus, checkpoints, tmp_path, kind, task):
    extra = ["--kind", "xls-r"] if kind == "xls-r" else []
    if task == "attributes":
        extra += ["--layers", "weighted"]
    result = train_cli(corpus, checkpoints[kind], tmp_path / "run", "--task", task, *extra, *sets())
    assert result.exit_code == 0, result.output
    assert "best epoch 1" in result.output
    out, emb = tmp_path / "a_dev.csv", tmp_path / "a_dev.emb.parquet"
    result = cli(
        "audio",
        "predict",
        tmp_path / "run",
        "--manifest",
        corpus / "dev.csv",
        "--output",
        out,
        "--embeddings",
        emb,
        "-q",
    )
    assert result.exit_code == 0, result.output
    ids = [f"dev{i}" for i in range(6)]
    sidecar = read_sidecar(out)
    if task == "categorical":
        table = read_posteriors(out)
        assert table.columns == ["angry", "sad", "neutral"] and np.allclose(table.values.sum(1), 1.0)
        assert sidecar.train_prior == pytest.approx({c: 1 / 3 for c in CLASSES})
    else:
        table = read_scores(out)
        assert table.kind == "attribute" and table.columns == ["arousal", "valence", "dominance"]
    assert table.ids.tolist() == ids and np.isfinite(table.values).all()
    assert sidecar.extra["model_id"] == str(checkpoints[kind].resolve()) and sidecar.extra["task"] == task
    embeddings = read_scores(emb)
    assert embeddings.values.shape == (6, 16) and embeddings.ids.tolist() == ids


class CapturingRecipe(AudioRecipe):
    """The audio recipe, keeping the model it builds (the trained model, after training)."""

    def build_model(self, config, inventory):
        self.model = super().build_model(config, inventory)
        return self.model


@pytest.fixture(scope="module")
def trained(corpus, checkpoints, tmp_path_factory):
    """A categorical w2v-bert LoRA run trained in this process; the recipe still holds its model."""
    out = tmp_path_factory.mktemp("trained") / "run"
    recipe = CapturingRecipe()
    config = load_config(recipe.config_class, None, FAST, backbone=str(checkpoints["w2v-bert"]))
    train = recipe.validate(read_manifest(corpus / "train.csv", need="path"), skip_bad=False)
    dev = recipe.validate(read_manifest(corpus / "dev.csv", need="path"), skip_bad=False)
    train_system(recipe, config, train, dev, str(out), quiet=True)
    return out, recipe, config, dev


def test_a_saved_run_reloads_and_predicts_what_the_trained_model_predicted(trained, tmp_path):
    out, recipe, config, dev = trained
    model = recipe.model.eval()
    batch = recipe.dataset(dev, config, train=False).collate(range(len(dev)))
    with torch.no_grad():
        expected = torch.softmax(model(batch)["scores"].double(), 1).numpy()
    first, again = tmp_path / "a.csv", tmp_path / "b.csv"
    predict_system(AudioRecipe(), str(out), dev, str(first), quiet=True)
    predict_system(AudioRecipe(), str(out), dev, str(again), max_items=2, quiet=True)
    np.testing.assert_allclose(read_posteriors(first).values, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(read_posteriors(again).values, expected, rtol=1e-5, atol=1e-6)


def test_two_rank_prediction_merges_to_the_single_process_file(trained, corpus, tmp_path):
    out = trained[0]
    single, two = tmp_path / "single.csv", tmp_path / "two.csv"
    assert cli("audio", "predict", out, "--manifest", corpus / "dev.csv", "-o", single, "-q").exit_code == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            str(BIN / "torchrun"),
            "--nproc_per_node",
            "2",
            "--master_port",
            "29531",
            str(BIN / "sermm-system"),
            "audio",
            "predict",
            str(out),
            "--manifest",
            str(corpus / "dev.csv"),
            "-o",
            str(two),
            "-q",
            "--batch-seconds",
            "3",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = read_posteriors(single), read_posteriors(two)
    assert a.ids.tolist() == b.ids.tolist()
    np.testing.assert_allclose(a.values, b.values, rtol=1e-5, atol=1e-7)


def test_written_files_pass_checks_and_feed_fusion_and_calibration(trained, corpus, tmp_path):
    out = trained[0]
    scores, emb = tmp_path / "a_dev.csv", tmp_path / "a_dev.emb.parquet"
    result = cli(
        "audio", "predict", out, "--manifest", corpus / "dev.csv", "-o", scores, "--embeddings", emb, "-q"
    )
    assert result.exit_code == 0, result.output
    labels = tmp_path / "labels.csv"
    labels.write_text("id,label\n" + "".join(f"dev{i},{list(CLASSES)[i % 3]}\n" for i in range(6)))

    def run(*args):
        done = subprocess.run(
            [str(BIN / args[0]), *map(str, args[1:])], capture_output=True, text=True, cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "posterior, 6 rows, 3 classes" in run("sermm-data", "check", scores, "--labels", labels)
    assert "training prior" in run(
        "sermm-calibrate", "prior", "--uniform", "-i", scores, "-o", tmp_path / "u.csv"
    )
    run("sermm-fuse", "logreg", "--inputs", scores, "--labels", labels, "--output", tmp_path / "fused.csv")
    run("sermm-fuse", "plda", "--inputs", emb, "--labels", labels, "--lda-dim", "2")


def test_msp_labels_consensus_with_splits_and_audio_root(corpus, checkpoints, tmp_path):
    msp = corpus / "labels_consensus.csv"
    result = cli(
        "audio",
        "train",
        "--train",
        msp,
        "--train-split",
        "Train",
        "--dev",
        msp,
        "--dev-split",
        "Development",
        "--audio-root",
        corpus / "wav",
        "--backbone",
        checkpoints["hubert"],
        "--out",
        tmp_path / "run",
        "-q",
        *sets(),
    )
    assert result.exit_code == 0, result.output
    labels = json.loads((tmp_path / "run" / "labels.json").read_text())
    assert labels["classes"] == ["angry", "sad", "neutral", "other"] and labels["primary"] == [
        "angry",
        "sad",
        "neutral",
    ]
    for flag, columns in (([], ["angry", "sad", "neutral"]), (["--keep-all-classes"], labels["classes"])):
        out = tmp_path / f"a{len(flag)}.csv"
        result = cli(
            "audio",
            "predict",
            tmp_path / "run",
            "--manifest",
            msp,
            "--split",
            "Development",
            "--audio-root",
            corpus / "wav",
            "-o",
            out,
            "-q",
            *flag,
        )
        assert result.exit_code == 0, result.output
        assert read_posteriors(out).columns == columns


def one_line(result, *fragments):
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in result.output, (
        result.stderr
    )
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_bad_audio_stops_training_with_one_line_unless_skip_bad(corpus, checkpoints, tmp_path):
    bad = tmp_path / "train.csv"
    text = (corpus / "train.csv").read_text().replace("wav/train", str(corpus / "wav" / "train"))
    (tmp_path / "empty.wav").write_bytes(b"")
    rows = text.splitlines()
    rows[3] = rows[3].replace(str(corpus / "wav" / "train2.wav"), str(tmp_path / "missing.wav"))
    rows[5] = rows[5].replace(str(corpus / "wav" / "train4.wav"), str(tmp_path / "empty.wav"))
    bad.write_text("\n".join(rows) + "\n")
    args = [
        "audio",
        "train",
        "--train",
        bad,
        "--dev",
        corpus / "dev.csv",
        "--backbone",
        checkpoints["wav2vec2"],
        "-q",
        *sets(),
    ]
    one_line(
        cli(*args, "--out", tmp_path / "r1"),
        f"{bad}: line 4: {tmp_path / 'missing.wav'}: audio file not found",
    )
    assert not (tmp_path / "r1").exists()
    result = cli(*args, "--out", tmp_path / "r2", "--skip-bad")
    assert result.exit_code == 0, result.output
    assert "skipped 2 bad row(s)" in result.stderr and "empty file (0 bytes)" in result.stderr
    assert "10 training and 6 dev utterances" in result.output


def test_bad_prediction_inputs_and_foreign_runs_are_one_line_and_write_nothing(trained, corpus, tmp_path):
    out = trained[0]
    manifest = tmp_path / "eval.csv"
    garbage = tmp_path / "garbage.wav"
    garbage.write_text("this is not audio\n" * 20)
    manifest.write_text(f"id,path\ne1,{corpus / 'wav' / 'dev0.wav'}\ne2,{garbage}\n")
    target = tmp_path / "a_eval.csv"
    one_line(
        cli("audio", "predict", out, "--manifest", manifest, "-o", target),
        "line 3",
        "not a readable audio file",
    )
    assert not target.exists() and not Path(f"{target}.meta.json").exists()
    manifest.write_text("id,file\ne1,x.wav\n")
    one_line(cli("audio", "predict", out, "--manifest", manifest, "-o", target), "no 'path' column")
    foreign = tmp_path / "foreign"
    shutil.copytree(out, foreign)
    info = json.loads((foreign / "run.json").read_text())
    (foreign / "run.json").write_text(json.dumps({**info, "system": "text"}))
    one_line(
        cli("audio", "predict", foreign, "--manifest", corpus / "dev.csv", "-o", target),
        "a run of the 'text' system, not 'audio'",
    )
    one_line(
        train_cli(corpus, trained[2].backbone, out, "--resume", "--task", "attributes", *sets()),
        "trained for the categorical task, not attributes",
    )


def test_a_bad_backbone_or_corpus_stops_training_before_the_run_directory_exists(
    corpus, checkpoints, tmp_path
):
    one_line(
        train_cli(corpus, tmp_path / "nowhere", tmp_path / "r1", *sets()),
        "cannot read the backbone's config.json",
    )
    one_line(
        train_cli(corpus, checkpoints["wavlm"], tmp_path / "r2", *sets(f"noise={tmp_path / 'no-noise'}")),
        "noise corpus not found",
    )
    one_line(
        train_cli(
            corpus, checkpoints["wav2vec2"], tmp_path / "r3", *sets("finetune=lora", "lora_targets=q_proj,qx")
        ),
        "LoRA target(s) qx name no module of this wav2vec2 backbone",
        "k_proj",
    )
    assert not any((tmp_path / name).exists() for name in ("r1", "r2", "r3"))
