"""The shared systems layer on a toy recipe: configs, manifests, the training loop, run directories,
prediction (sharded, resumable) and the files it writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import f1_score
from toy_recipe import ToyConfig, ToyRecipe, write_manifest

from sermm.cli.common import SermmGroup
from sermm.cli.system_options import predict_options, run_predict, run_train, train_options
from sermm.errors import SermmError
from sermm.sidecar import read_sidecar
from sermm.systems.config import config_hash, load_config, save_config
from sermm.systems.manifest import Inventory, read_manifest
from sermm.systems.prediction import _write_part, parts_dir, predict_system
from sermm.systems.rundir import RunDir
from sermm.systems.training import train_system
from sermm.tables import read_posteriors, read_scores, softmax

TESTS = Path(__file__).parent


# --------------------------------------------------------------------------- config


def test_config_yaml_then_options_then_set(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("epochs: 7\nlr: 0.5\nlora_targets: [q, v]\nclass_weighted: true\n")
    config = load_config(ToyConfig, path, ["lr=1e-3", "dim=4", "lora_targets=a,b,c"], task="attributes")
    assert (config.epochs, config.lr, config.dim, config.task) == (7, 1e-3, 4, "attributes")
    assert config.lora_targets == ["a", "b", "c"] and config.class_weighted is True
    saved = tmp_path / "saved.yaml"
    save_config(config, saved)
    assert load_config(ToyConfig, saved) == config
    assert config_hash(load_config(ToyConfig, saved)) == config_hash(config)
    assert config_hash(load_config(ToyConfig, saved, ["epochs=8"])) != config_hash(config)


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["epoch=3"], "unknown config key 'epoch'"),
        (["epochs=three"], "--set epochs: epochs must be int"),
        (["epochs=2.5"], "epochs must be int"),
        (["epochs=0"], "epochs must be at least 1"),
        (["finetune=partial"], "finetune must be one of lora, full, frozen"),
        (["class_weighted=maybe"], "class_weighted must be bool"),
        (["lr"], "expected key=value"),
    ],
)
def test_config_errors_name_the_key(sets, message):
    with pytest.raises(SermmError, match=message):
        load_config(ToyConfig, None, sets)


# --------------------------------------------------------------------------- manifests


def test_manifest_resolves_relative_paths_and_reads_optional_columns(tmp_path):
    (tmp_path / "m.csv").write_text("id,path,label,speaker\na,x.wav,angry,s1\nb,/abs/y.wav,sad,s2\n")
    m = read_manifest(tmp_path / "m.csv", need="path")
    assert m.paths.tolist() == [str(tmp_path.resolve() / "x.wav"), "/abs/y.wav"]
    assert m.speakers.tolist() == ["s1", "s2"] and m.labels.tolist() == ["angry", "sad"]
    m = read_manifest(tmp_path / "m.csv", need="path", audio_root="/data")
    assert m.paths[0] == "/data/x.wav"


def msp_labels(path):
    path.write_text(
        "FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set\n"
        "MSP_1.wav,A,5,2,5,1,F,Train\nMSP_2.wav,N,4,4,4,2,M,Train\nMSP_3.wav,O,3,3,3,3,F,Train\n"
        "MSP_4.wav,X,4,5,4,4,M,Development\nMSP_5.wav,H,6,6,5,5,F,Test1\n"
    )
    return path


def test_msp_labels_with_split_audio_root_and_transcripts(tmp_path):
    labels = msp_labels(tmp_path / "labels_consensus.csv")
    m = read_manifest(labels, need="path", split="Train", audio_root="/msp/Audios")
    assert m.ids.tolist() == ["MSP_1.wav", "MSP_2.wav", "MSP_3.wav"]
    assert m.labels.tolist() == ["angry", "neutral", "other"]
    assert m.paths.tolist() == ["/msp/Audios/MSP_1.wav", "/msp/Audios/MSP_2.wav", "/msp/Audios/MSP_3.wav"]
    np.testing.assert_array_equal(m.attributes[0], [5, 2, 5])
    assert m.lines.tolist() == [2, 3, 4]
    transcripts = tmp_path / "asr.csv"
    transcripts.write_text('id,text\nMSP_2.wav,"well, fine"\nMSP_1.wav,\nMSP_3.wav,hello\n')
    (tmp_path / "asr.csv.meta.json").write_text(json.dumps({"system": "asr", "model_id": "whisper-large-v3"}))
    m = read_manifest(labels, need="text", split="Train", transcripts=transcripts)
    assert m.texts.tolist() == ["", "well, fine", "hello"]
    assert m.extra["asr_model"] == "whisper-large-v3"
    inventory = Inventory.from_manifest(m, "categorical")
    assert inventory.classes == ["angry", "neutral", "other"] and inventory.primary == ["angry", "neutral"]
    assert inventory.prior(inventory.primary) == {"angry": 0.5, "neutral": 0.5}


@pytest.mark.parametrize(
    ("content", "kwargs", "message"),
    [
        (
            "id,path,label\na,x.wav,angry\na,y.wav,sad\n",
            {"need": "path"},
            "duplicate id 'a' \\(line 2, line 3\\)",
        ),
        ("id,label\na,angry\n", {"need": "path"}, "no 'path' column"),
        ("id,label\na,angry\n", {"need": "text"}, "no 'text' column"),
        ("id,path,label\na,,angry\n", {"need": "path"}, "line 2 \\(id 'a'\\): empty path"),
        ("FileName,EmoClass,Split_Set\nx,A,Train\n", {"need": "path"}, "pass --split \\(one of Train\\)"),
        (
            "FileName,EmoClass,Split_Set\nx,A,Train\n",
            {"need": "path", "split": "Test2"},
            "no rows with Split_Set",
        ),
        ("FileName,EmoClass,Split_Set\nx,Q,Train\n", {"split": "Train"}, "unknown EmoClass code 'Q'"),
        ("FileName,EmoClass,Split_Set\nx,A,Train\n", {"need": "path", "split": "Train"}, "--audio-root"),
    ],
)
def test_bad_manifests_get_one_line(tmp_path, content, kwargs, message):
    (tmp_path / "m.csv").write_text(content)
    with pytest.raises(SermmError, match=message):
        read_manifest(tmp_path / "m.csv", **kwargs)


def test_missing_transcripts_and_unknown_labels_are_errors(tmp_path):
    labels = msp_labels(tmp_path / "labels_consensus.csv")
    (tmp_path / "asr.csv").write_text("id,text\nMSP_1.wav,hi\n")
    with pytest.raises(SermmError, match="no transcript for 2 id"):
        read_manifest(labels, need="text", split="Train", transcripts=tmp_path / "asr.csv")
    train = read_manifest(write_manifest(tmp_path / "t.csv", 6, classes=("high", "low")), need="text")
    dev = read_manifest(write_manifest(tmp_path / "d.csv", 6), need="text")
    with pytest.raises(SermmError, match=r"line 4 \(id 'u0_0002'\): label 'other' is not a training class"):
        Inventory.from_manifest(train, "categorical").encode(dev)


# --------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy")
    train = read_manifest(write_manifest(folder / "train.csv", 240, seed=0), need="text")
    dev = read_manifest(write_manifest(folder / "dev.csv", 90, seed=1), need="text")
    return folder, train, dev


@pytest.fixture(scope="module")
def trained(data):
    folder, train, dev = data
    config = load_config(ToyConfig, None, ["epochs=3", "class_weighted=true"])
    result = train_system(ToyRecipe(), config, train, dev, str(folder / "run"), quiet=True)
    return folder, result


def test_training_learns_and_writes_the_run_directory(trained, data):
    folder, result = trained
    dev = data[2]
    means = np.array([np.mean(np.array(t.split(), dtype=float)) for t in dev.texts])
    rule = np.where(means > 0.5, "high", np.where(means < -0.5, "low", "other"))  # the class means' midpoints
    best_rule = f1_score(dev.labels.astype(str), rule, average="macro")
    assert result.best["macro_f1"] > 0.9 * best_rule > 0.5
    run = folder / "run"
    assert sorted(p.name for p in run.iterdir()) == [
        "best",
        "checkpoints",
        "config.yaml",
        "labels.json",
        "log.jsonl",
        "run.json",
    ]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch-002", "epoch-003"]
    history = RunDir.open(run).history()
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert history[-1]["lr"] == 0.0 and all(np.isfinite(r["train_loss"]) for r in history)
    best = json.loads((run / "best" / "state.json").read_text())
    assert best["epoch"] == result.best_epoch and best["macro_f1"] == result.best["macro_f1"]
    labels = json.loads((run / "labels.json").read_text())
    assert labels["classes"] == ["high", "low", "other"] and labels["primary"] == ["high", "low", "other"]


def test_resume_after_a_crash_reproduces_the_uninterrupted_run(data, trained, tmp_path):
    folder, train, dev = data
    config = load_config(ToyConfig, None, ["epochs=3", "class_weighted=true"])
    run = tmp_path / "run"
    train_system(ToyRecipe(), config, train, dev, str(run), quiet=True)
    import shutil

    shutil.rmtree(run / "checkpoints" / "epoch-003")  # as if it crashed during epoch 3
    log = (run / "log.jsonl").read_text().splitlines()
    (run / "log.jsonl").write_text("\n".join(log[:2]) + "\n")
    train_system(ToyRecipe(), config, train, dev, str(run), resume=True, quiet=True)
    first = (folder / "run" / "checkpoints" / "epoch-003" / "model.safetensors").read_bytes()
    assert (run / "checkpoints" / "epoch-003" / "model.safetensors").read_bytes() == first
    with pytest.raises(SermmError, match="another config"):
        train_system(
            ToyRecipe(), load_config(ToyConfig, None, ["epochs=4"]), train, dev, str(run), resume=True
        )
    with pytest.raises(SermmError, match="already holds a run: pass --resume"):
        train_system(ToyRecipe(), config, train, dev, str(run))


def test_attribute_task_trains_on_negative_ccc(data, tmp_path):
    _, train, dev = data
    config = load_config(ToyConfig, None, ["epochs=2", "task=attributes", "lr=0.01"])
    result = train_system(ToyRecipe(), config, train, dev, str(tmp_path / "run"), quiet=True)
    assert set(result.best) == {"ccc_arousal", "ccc_valence", "ccc_dominance", "ccc"}
    assert result.best["ccc"] > 0.3
    out = tmp_path / "attr.csv"
    predict_system(ToyRecipe(), str(tmp_path / "run"), dev, str(out), quiet=True)
    table = read_scores(out)
    assert table.kind == "attribute" and table.columns == ["arousal", "valence", "dominance"]
    assert read_sidecar(out).values == "regression"


# --------------------------------------------------------------------------- prediction


def test_prediction_files_and_sidecar_feed_fusion_and_calibration(trained, data, tmp_path):
    folder, result = trained
    _, _, dev = data
    out, emb = tmp_path / "toy_dev.csv", tmp_path / "toy_dev.emb.parquet"
    predict_system(ToyRecipe(), str(folder / "run"), dev, str(out), embeddings=str(emb), quiet=True)
    table = read_posteriors(out)
    assert table.ids.tolist() == dev.ids.tolist()  # manifest order
    np.testing.assert_allclose(table.values.sum(axis=1), 1.0)
    sidecar = read_sidecar(out)
    assert sidecar.system == "run" and sidecar.classes == ["high", "low", "other"]
    assert sidecar.train_prior == pytest.approx({"high": 1 / 3, "low": 1 / 3, "other": 1 / 3})
    assert (
        sidecar.extra["config_hash"] == result.run.info["config_hash"] and sidecar.extra["model_id"] == "toy"
    )
    embeddings = read_scores(emb)
    assert embeddings.kind == "embedding" and embeddings.values.shape == (90, 8)
    labels = tmp_path / "labels.csv"
    labels.write_text("id,label\n" + "".join(f"{i},{y}\n" for i, y in zip(dev.ids, dev.labels, strict=True)))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}

    def cli(*args):
        return subprocess.run(list(args), capture_output=True, text=True, env=env, cwd=tmp_path)

    check = cli("sermm-data", "check", str(out), "--labels", str(labels))
    assert check.returncode == 0, check.stderr
    prior = cli("sermm-calibrate", "prior", "--uniform", "-i", str(out), "-o", str(tmp_path / "u.csv"))
    assert prior.returncode == 0, prior.stderr
    assert "training prior" in prior.stdout
    plda = cli("sermm-fuse", "plda", "--inputs", str(emb), "--labels", str(labels), "--lda-dim", "2")
    assert plda.returncode == 0, plda.stderr


def test_o_and_x_are_dropped_and_renormalised_unless_kept(trained, data, tmp_path):
    folder, _ = trained
    _, _, dev = data
    run = folder / "run"
    info = json.loads((run / "labels.json").read_text())
    msp_run = tmp_path / "msp"
    import shutil

    shutil.copytree(run, msp_run)
    info.update(classes=["angry", "sad", "other"])
    (msp_run / "labels.json").write_text(json.dumps(info))
    kept, dropped = tmp_path / "all.csv", tmp_path / "primary.csv"
    predict_system(ToyRecipe(), str(msp_run), dev, str(kept), keep_all_classes=True, quiet=True)
    predict_system(ToyRecipe(), str(msp_run), dev, str(dropped), quiet=True)
    full, primary = read_posteriors(kept), read_posteriors(dropped)
    assert full.columns == ["angry", "sad", "other"] and primary.columns == ["angry", "sad"]
    np.testing.assert_allclose(primary.values, full.values[:, :2] / full.values[:, :2].sum(1, keepdims=True))
    assert read_sidecar(dropped).train_prior == pytest.approx({"angry": 0.5, "sad": 0.5})


def test_prediction_resumes_from_part_files(trained, data, tmp_path):
    folder, _ = trained
    _, _, dev = data
    out = tmp_path / "p.csv"
    done = np.arange(0, 90, 3)
    marker = np.tile(
        np.array([[3.0, 0.0, 0.0]], np.float32), (len(done), 1)
    )  # softmax ~ (0.91, 0.045, 0.045)
    _write_part(parts_dir(out), done, marker, np.zeros((len(done), 8), np.float32), 0)
    predict_system(ToyRecipe(), str(folder / "run"), dev, str(out), quiet=True)
    values = read_posteriors(out).values
    np.testing.assert_allclose(values[done], softmax(marker.astype(np.float64)), rtol=1e-6)
    fresh = tmp_path / "fresh.csv"
    predict_system(ToyRecipe(), str(folder / "run"), dev, str(fresh), quiet=True)
    rest = np.setdiff1d(np.arange(90), done)
    np.testing.assert_allclose(values[rest], read_posteriors(fresh).values[rest], rtol=1e-6)
    assert not parts_dir(out).exists()


def test_two_rank_prediction_merges_to_the_single_process_file(trained, data, tmp_path):
    folder, _ = trained
    single = tmp_path / "single.csv"
    predict_system(ToyRecipe(), str(folder / "run"), data[2], str(single), quiet=True)
    script = tmp_path / "predict.py"
    script.write_text(
        "import sys\n"
        "from toy_recipe import ToyRecipe\n"
        "from sermm.systems.manifest import read_manifest\n"
        "from sermm.systems.prediction import predict_system\n"
        "m = read_manifest(sys.argv[2], need='text')\n"
        "predict_system(ToyRecipe(), sys.argv[1], m, sys.argv[3], max_items=4, quiet=True)\n"
    )
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "PYTHONPATH": str(TESTS), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            str(torchrun),
            "--nproc_per_node",
            "2",
            "--master_port",
            "29517",
            str(script),
            str(folder / "run"),
            str(folder / "dev.csv"),
            str(tmp_path / "two.csv"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    a, b = read_posteriors(single), read_posteriors(tmp_path / "two.csv")
    assert a.ids.tolist() == b.ids.tolist()
    np.testing.assert_allclose(a.values, b.values, rtol=1e-5, atol=1e-7)


def test_run_directory_checks(trained, tmp_path):
    folder, _ = trained
    with pytest.raises(SermmError, match="not a sermm run directory"):
        RunDir.open(tmp_path)
    with pytest.raises(SermmError, match="a run of the 'toy' system, not 'audio'"):
        RunDir.open(folder / "run", system="audio")
    with pytest.raises(SermmError, match="trained for the categorical task, not attributes"):
        RunDir.open(folder / "run", task="attributes")
    info = json.loads((folder / "run" / "run.json").read_text())
    other = tmp_path / "old"
    other.mkdir()
    (other / "run.json").write_text(json.dumps({**info, "version": 99, "sermm_version": "9.9"}))
    with pytest.raises(SermmError, match="run format version 99 \\(made by sermm 9.9\\)"):
        RunDir.open(other)


# --------------------------------------------------------------------------- the shared CLI flow


@click.group(cls=SermmGroup)
def toy() -> None:
    """A toy system group built from the shared options."""


@toy.command()
@train_options
def train(**opts):
    run_train("toy_recipe:ToyRecipe", opts)


@toy.command()
@predict_options
def predict(**opts):
    run_predict("toy_recipe:ToyRecipe", opts)


def test_cli_train_and_predict_through_the_shared_options(data, tmp_path):
    folder, _, _ = data
    runner = CliRunner()
    result = runner.invoke(
        toy,
        [
            "train",
            "--train",
            str(folder / "train.csv"),
            "--dev",
            str(folder / "dev.csv"),
            "--out",
            str(tmp_path / "run"),
            "--set",
            "epochs=1",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "best epoch 1: dev macro_f1" in result.output
    out = tmp_path / "scores.csv"
    result = runner.invoke(
        toy, ["predict", str(tmp_path / "run"), "--manifest", str(folder / "dev.csv"), "-o", str(out), "-q"]
    )
    assert result.exit_code == 0, result.output
    assert f"wrote 90 rows (high, low, other): {out}" in result.output
    result = runner.invoke(
        toy,
        [
            "predict",
            str(tmp_path / "run"),
            "--manifest",
            str(folder / "dev.csv"),
            "-o",
            str(folder / "dev.csv"),
        ],
    )
    assert result.exit_code == 1 and "that is an input file" in result.output
    result = runner.invoke(
        toy,
        [
            "train",
            "--train",
            str(folder / "train.csv"),
            "--dev",
            str(folder / "dev.csv"),
            "--out",
            str(tmp_path / "r2"),
            "--set",
            "epochs=none",
        ],
    )
    assert result.exit_code == 1 and result.output.strip().endswith("epochs must be int, got 'none'")
    assert "Traceback" not in result.output
