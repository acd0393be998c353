"""``sermm-system text train|predict`` end to end on tiny local checkpoints: both tasks, decoder, encoder."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from click.testing import CliRunner  # noqa: E402
from text_checkpoints import bitsandbytes_reason, corpus, save_llama, save_roberta  # noqa: E402

from sermm.cli.calibrate import main as calibrate_cli  # noqa: E402
from sermm.cli.data import main as data_cli  # noqa: E402
from sermm.cli.system import main as system_cli  # noqa: E402
from sermm.sidecar import read_sidecar  # noqa: E402
from sermm.tables import read_scores  # noqa: E402

CLASSES = ("joy", "neutral", "sadness")


def label_of(text: str) -> str:
    return "joy" if "happy" in text or "love" in text else "sadness" if "sad" in text else "neutral"


def write_manifest(path, texts, start=0):
    """``id,text,label,arousal,valence,dominance,speaker`` rows; the attributes depend on the words."""
    lines = ["id,text,label,arousal,valence,dominance,speaker"]
    for i, text in enumerate(texts):
        joy = float("happy" in text or "love" in text)
        lines.append(
            f"u{start + i:03d},{text},{label_of(text)},{0.2 + 0.5 * joy:.2f},{0.8 - 0.6 * joy:.2f},"
            f"{0.1 * (len(text) % 7):.2f},s{i % 3}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("text_cli")
    texts = corpus(60)
    texts[3] = ""  # an empty transcript: still a row, in training and in prediction
    return {
        "folder": folder,
        "llama": str(save_llama(folder / "llama")),
        "roberta": str(save_roberta(folder / "roberta")),
        "train": write_manifest(folder / "train.csv", texts[:40]),
        "dev": write_manifest(folder / "dev.csv", texts[40:], start=40),
        "texts": texts,
    }


def cli(*args, command=system_cli):
    result = CliRunner().invoke(command, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


def train(data, backbone, out, *extra):
    return cli(
        "text", "train", "--train", data["train"], "--dev", data["dev"], "--backbone", data[backbone],
        "--out", out, "--set", "epochs=1", "--set", "max_length=16", "--set", "lora_r=4",
        "--set", "lora_alpha=4", "--set", "lr=1e-3", "-q", *extra,
    )


CASES = [
    ("llama", "categorical", ()),
    ("llama", "attributes", ()),
    ("roberta", "categorical", ()),
    ("roberta", "attributes", ()),
    ("llama", "categorical", ("--quantize", "4bit")),
    ("roberta", "categorical", ("--finetune", "lora")),
]


@pytest.mark.parametrize(("backbone", "task", "extra"), CASES, ids=["-".join([*c[:2], *c[2]]) for c in CASES])
def test_train_and_predict_from_the_cli(data, tmp_path, backbone, task, extra):
    if "4bit" in extra and bitsandbytes_reason() is not None:
        pytest.skip(bitsandbytes_reason())
    run = tmp_path / "run"
    result = train(data, backbone, run, "--task", task, *extra)
    assert result.exit_code == 0, result.output
    assert f"text {task}: 40 training and 20 dev utterances, 1 epoch(s)" in result.output
    config = (run / "config.yaml").read_text()
    assert "quantize: 4bit" in config if "4bit" in extra else "quantize: none" in config
    out, emb = tmp_path / "t_dev.csv", tmp_path / "t_dev.emb.parquet"
    result = cli("text", "predict", run, "--manifest", data["dev"], "-o", out, "--embeddings", emb, "-q")
    assert result.exit_code == 0, result.output
    scores, sidecar = read_scores(out), read_sidecar(out)
    assert scores.ids.tolist() == [f"u{i:03d}" for i in range(40, 60)]  # every id, in manifest order
    assert read_scores(emb).values.shape == (20, 64)  # the pooled hidden state (hidden size 64)
    assert sidecar.extra["model_id"] == data[backbone] and sidecar.extra["task"] == task
    if task == "categorical":
        assert scores.columns == list(CLASSES) and sidecar.values == "probability"
        np.testing.assert_allclose(scores.values.sum(axis=1), 1.0, rtol=1e-9)
        labels = [label_of(t) for t in data["texts"][:40]]
        assert sidecar.train_prior == pytest.approx({c: labels.count(c) / 40 for c in CLASSES})
        check = cli("check", out, "--labels", data["dev"], command=data_cli)
        assert check.exit_code == 0, check.output
        uniform = cli("prior", "--uniform", "-i", out, "-o", tmp_path / "u.csv", command=calibrate_cli)
        assert uniform.exit_code == 0 and "training prior" in uniform.output, uniform.output
    else:
        assert scores.columns == ["arousal", "valence", "dominance"] and sidecar.values == "regression"
        assert np.isfinite(scores.values).all()


def test_a_rerun_predicts_the_same_file(data, tmp_path):
    run = tmp_path / "run"
    assert train(data, "roberta", run).exit_code == 0
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    for out, size in ((first, "16"), (second, "3")):  # other batches, other padding: the same scores
        opts = ("-o", out, "--batch-size", size, "-q")
        result = cli("text", "predict", run, "--manifest", data["dev"], *opts)
        assert result.exit_code == 0, result.output
    np.testing.assert_allclose(read_scores(first).values, read_scores(second).values, rtol=1e-5, atol=1e-6)


def test_msp_labels_with_a_transcript_file_record_the_asr_model(data, tmp_path):
    texts = corpus(30)
    rows = ["FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set"]
    code = {"joy": "H", "sadness": "S", "neutral": "N"}
    for i, text in enumerate(texts):
        split = "Train" if i < 20 else "Development"
        rows.append(f"MSP_{i:02d}.wav,{code[label_of(text)]},4,4,4,{i % 4},F,{split}")
    rows.append("MSP_98.wav,X,4,4,4,1,F,Train")  # no agreement: a training class, not written
    rows.append("MSP_99.wav,X,4,4,4,1,F,Development")
    labels = tmp_path / "labels_consensus.csv"
    labels.write_text("\n".join(rows) + "\n")
    transcripts = tmp_path / "whisper.csv"
    lines = ["id,text", *(f"MSP_{i:02d}.wav,{t}" for i, t in enumerate(texts))]
    lines += ["MSP_98.wav,no", "MSP_99.wav,"]
    transcripts.write_text("\n".join(lines) + "\n")
    asr = {"system": "asr", "model_id": "whisper-large-v3"}
    (tmp_path / "whisper.csv.meta.json").write_text(json.dumps(asr))
    run = tmp_path / "run"
    result = cli(
        "text", "train", "--train", labels, "--train-split", "Train", "--dev", labels, "--dev-split",
        "Development", "--transcripts", transcripts, "--backbone", data["roberta"], "--out", run,
        "--set", "epochs=1", "--set", "max_length=16", "-q",
    )
    assert result.exit_code == 0, result.output
    out = tmp_path / "t_dev.csv"
    result = cli(
        "text", "predict", run, "--manifest", labels, "--split", "Development", "--transcripts", transcripts,
        "-o", out, "-q",
    )
    assert result.exit_code == 0, result.output
    scores, sidecar = read_scores(out), read_sidecar(out)
    assert len(scores.ids) == 11 and "MSP_99.wav" in scores.ids.tolist()
    assert scores.columns == ["sad", "happy", "neutral"]  # MSP order; X dropped, the rest renormalised
    inventory = json.loads((run / "labels.json").read_text())
    assert inventory["classes"] == ["sad", "happy", "neutral", "no_agreement"]
    assert sidecar.extra["asr_model"] == "whisper-large-v3"


def no_run(path) -> bool:
    return not path.exists() or not any(path.iterdir())


def test_manifest_without_text_is_one_line_and_writes_nothing(data, tmp_path):
    bad = tmp_path / "audio.csv"
    bad.write_text("id,path,label\nu1,a.wav,joy\nu2,b.wav,neutral\n")
    result = cli("text", "train", "--train", bad, "--dev", data["dev"], "--backbone", data["roberta"],
                 "--out", tmp_path / "run")
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {bad}: no 'text' column (a text manifest is id,text,label)"
    assert no_run(tmp_path / "run")


def test_dev_label_outside_the_inventory_is_one_line_and_writes_nothing(data, tmp_path):
    dev = tmp_path / "dev.csv"
    dev.write_text("id,text,label\nd1,i am happy,joy\nd2,what a surprise,surprise\n")
    result = train(data, "roberta", tmp_path / "run", "--dev", dev)
    assert result.exit_code == 1
    assert "line 3 (id 'd2'): label 'surprise' is not a training class (joy, neutral, sadness)" in (
        result.output
    )
    assert len(result.output.strip().splitlines()) == 1 and no_run(tmp_path / "run")


def test_backbone_without_tokenizer_is_one_line_and_writes_nothing(data, tmp_path):
    from transformers import AutoConfig

    bare = tmp_path / "bare"
    AutoConfig.from_pretrained(data["roberta"]).save_pretrained(bare)
    result = cli("text", "train", "--train", data["train"], "--dev", data["dev"], "--backbone", bare,
                 "--out", tmp_path / "run")
    assert result.exit_code == 1 and "backbone directory has no tokenizer" in result.output
    assert len(result.output.strip().splitlines()) == 1 and no_run(tmp_path / "run")


def test_4bit_where_bitsandbytes_cannot_load_is_one_line_and_writes_nothing(data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)
    result = train(data, "llama", tmp_path / "run", "--quantize", "4bit")
    assert result.exit_code == 1
    assert result.output.strip().startswith("Error: --quantize 4bit: bitsandbytes cannot load")
    assert len(result.output.strip().splitlines()) == 1 and no_run(tmp_path / "run")


def test_predict_with_a_run_of_another_system_is_one_line(data, tmp_path):
    run = tmp_path / "run"
    assert train(data, "roberta", run).exit_code == 0
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "system": "audio"}))
    result = cli("text", "predict", run, "--manifest", data["dev"], "-o", tmp_path / "t.csv")
    assert result.exit_code == 1 and "a run of the 'audio' system, not 'text'" in result.output
    assert not (tmp_path / "t.csv").exists()


def test_two_process_ddp_training_and_sharded_prediction(data, tmp_path):
    """The library under torchrun (2 CPU processes, gloo), as ``sermm-system text`` runs it there: DDP
    training, then each rank scores a share and rank 0 merges to what one process writes."""
    import os
    import subprocess
    from pathlib import Path

    script = tmp_path / "ddp.py"
    script.write_text(
        "import sys\n"
        "from sermm.systems.config import load_config\n"
        "from sermm.systems.manifest import read_manifest\n"
        "from sermm.systems.prediction import predict_system\n"
        "from sermm.systems.text.recipe import TextRecipe\n"
        "from sermm.systems.training import train_system\n"
        "train, dev, backbone, run, out = sys.argv[1:]\n"
        "sets = ['epochs=1', 'max_length=16', 'lora_r=4', 'lora_alpha=4', 'batch_size=4']\n"
        "recipe = TextRecipe()\n"
        "config = load_config(recipe.config_class, None, sets, backbone=backbone)\n"
        "train, dev = (read_manifest(m, need='text') for m in (train, dev))\n"
        "train_system(recipe, config, train, dev, run, quiet=True)\n"
        "predict_system(TextRecipe(), run, dev, out, max_items=3, quiet=True)\n"
    )
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    run, two = tmp_path / "run", tmp_path / "two.csv"
    command = [Path(sys.executable).parent / "torchrun", "--nproc_per_node", "2", "--master_port", "29541",
               script, data["train"], data["dev"], data["llama"], run, two]
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len((run / "log.jsonl").read_text().splitlines()) == 1  # one process writes the log
    one = tmp_path / "one.csv"
    assert cli("text", "predict", run, "--manifest", data["dev"], "-o", one, "-q").exit_code == 0
    a, b = read_scores(one), read_scores(two)
    assert a.ids.tolist() == b.ids.tolist()
    np.testing.assert_allclose(a.values, b.values, rtol=1e-5, atol=1e-7)
    assert not Path(f"{two}.parts").exists()


def test_class_weighted_training_records_a_uniform_prior(data, tmp_path):
    """Inverse-frequency class weights make every class weigh the same in the loss, so the
    posteriors are under a uniform prior: the sidecar says so (and keeps the label frequencies
    apart), and prior --uniform then changes nothing."""
    run = tmp_path / "run"
    assert train(data, "roberta", run, "--set", "class_weighted=true").exit_code == 0
    out = tmp_path / "t_dev.csv"
    assert cli("text", "predict", run, "--manifest", data["dev"], "-o", out, "-q").exit_code == 0
    sidecar = read_sidecar(out)
    labels = [label_of(t) for t in data["texts"][:40]]
    assert sidecar.train_prior == pytest.approx({c: 1 / len(CLASSES) for c in CLASSES})
    assert sidecar.extra["label_prior"] == pytest.approx({c: labels.count(c) / 40 for c in CLASSES})
    uniform = tmp_path / "u.csv"
    assert cli("prior", "--uniform", "-i", out, "-o", uniform, command=calibrate_cli).exit_code == 0
    np.testing.assert_allclose(read_scores(uniform).values, read_scores(out).values, atol=1e-9)
