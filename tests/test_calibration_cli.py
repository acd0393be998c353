"""sermm-calibrate on the shipped GoEmotions examples: train, save, apply, and clear errors."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import GO, copy_examples

from sermm.calibration.prior import rebalance
from sermm.cli.calibrate import main
from sermm.metrics import macro_f1
from sermm.modelfile import load_model, save_model
from sermm.tables import read_posteriors

EXAMPLES = GO
CLASSES = ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]
pytestmark = pytest.mark.skipif(not (EXAMPLES / "words_dev.csv").exists(), reason="examples not generated")


@pytest.fixture
def ex(tmp_path):
    """A private copy of the example files used here (sidecars included)."""
    names = ["words_dev.csv", "words_test.csv", "nb_dev.csv", "labels_dev.csv", "labels_test.csv"]
    return copy_examples(tmp_path, names)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def sidecar_prior(path):
    meta = json.loads(Path(f"{path}.meta.json").read_text())
    return np.array([meta["train_prior"][c] for c in CLASSES])


def test_prior_uniform_reads_the_train_prior_from_the_sidecar(ex):
    out = ex / "out.csv"
    result = run("prior", "--uniform", "--input", ex / "words_test.csv", "--output", out)
    assert result.exit_code == 0, result.output
    assert "words_test.csv.meta.json" in result.output
    calibrated = read_posteriors(out)
    original = read_posteriors(ex / "words_test.csv")
    assert calibrated.columns == original.columns and list(calibrated.ids) == list(original.ids)
    train = sidecar_prior(ex / "words_test.csv")
    expected = rebalance(original.values, train / train.sum(), np.full(7, 1 / 7))
    np.testing.assert_allclose(calibrated.values, expected, rtol=1e-12)
    meta = json.loads((ex / "out.csv.meta.json").read_text())
    assert meta["system"] == "words+prior" and meta["values"] == "probability"
    assert meta["train_prior"] == {c: pytest.approx(1 / 7) for c in CLASSES}


def test_prior_chains_consistently_back_to_the_training_prior(ex):
    balanced, back = ex / "balanced.csv", ex / "back.csv"
    train = sidecar_prior(ex / "words_dev.csv")
    target = ",".join(f"{c}={p}" for c, p in zip(CLASSES, train, strict=True))
    assert run("prior", "--uniform", "-i", ex / "words_dev.csv", "-o", balanced).exit_code == 0
    # the new sidecar says "uniform", so going to the old prior needs no --train-prior
    result = run("prior", "--target-prior", target, "-i", balanced, "-o", back)
    assert result.exit_code == 0, result.output
    original = read_posteriors(ex / "words_dev.csv").values  # rows sum to 1 within the file's rounding
    np.testing.assert_allclose(read_posteriors(back).values, original / original.sum(axis=1, keepdims=True),
                               rtol=1e-9)


def test_missing_train_prior_is_one_clear_error_and_writes_nothing(ex):
    (ex / "words_dev.csv.meta.json").unlink()
    out, model = ex / "out.csv", ex / "prior.json"
    result = run("prior", "--uniform", "-i", ex / "words_dev.csv", "-o", out, "--save", model)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert "--train-prior" in lines[0] and "--train-labels" in lines[0]
    assert not out.exists() and not model.exists()
    assert "Traceback" not in result.output


def test_train_prior_from_option_labels_and_fusion_model(ex):
    (ex / "words_dev.csv.meta.json").unlink()
    counts = pd.read_csv(ex / "labels_dev.csv")["label"].value_counts().reindex(CLASSES).to_numpy()
    expected = counts / counts.sum()
    result = run("prior", "--uniform", "-i", ex / "words_dev.csv", "--train-labels", ex / "labels_dev.csv",
                 "--save", ex / "a.json")
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(load_model(ex / "a.json")["state"]["train_prior"], expected)
    text = ",".join(f"{c}={n}" for c, n in zip(CLASSES, counts, strict=True))  # counts are normalised
    result = run("prior", "--uniform", "-i", ex / "words_dev.csv", "--train-prior", text,
                 "--save", ex / "b.json")
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(load_model(ex / "b.json")["state"]["train_prior"], expected)
    # a sidecar naming the fusion model that wrote the scores
    fusion_prior = dict(zip(CLASSES, expected.tolist(), strict=True))
    fusion = {"layer": "fusion", "method": "logreg", "classes": CLASSES, "train_prior": fusion_prior}
    save_model(ex / "fusion.json", fusion)
    (ex / "words_dev.csv.meta.json").write_text(json.dumps({"system": "fused", "model": "fusion.json"}))
    result = run("prior", "--uniform", "-i", ex / "words_dev.csv", "--save", ex / "c.json")
    assert result.exit_code == 0, result.output
    assert "fusion.json" in result.output
    np.testing.assert_allclose(load_model(ex / "c.json")["state"]["train_prior"], expected)


def test_prior_needs_exactly_one_target(ex):
    result = run("prior", "-i", ex / "words_dev.csv")
    assert result.exit_code == 1 and "--uniform, --target-prior PRIOR or --estimate" in result.output
    result = run("prior", "--uniform", "--estimate", "-i", ex / "words_dev.csv")
    assert result.exit_code == 1 and "got --uniform and --estimate" in result.output


def test_prior_estimate_records_and_prints_the_em_prior(ex):
    result = run("prior", "--estimate", "-i", ex / "words_test.csv", "--save", ex / "em.json",
                 "--labels", ex / "labels_test.csv")
    assert result.exit_code == 0, result.output
    assert "estimated by EM" in result.output and "EM converged" in result.output
    assert "macro-F1" in result.output and "NCE" in result.output
    doc = load_model(ex / "em.json", "calibration")
    assert doc["params"]["target"] == "estimate" and doc["state"]["converged"]
    true = pd.read_csv(ex / "labels_test.csv")["label"].value_counts(normalize=True).reindex(CLASSES)
    assert np.abs(np.array(doc["state"]["target_prior"]) - true.to_numpy()).max() < 0.05


def test_affine_save_then_apply(ex):
    model, dev_out, test_out = ex / "affine.json", ex / "dev_cal.csv", ex / "test_cal.csv"
    result = run("affine", "-i", ex / "nb_dev.csv", "--labels", ex / "labels_dev.csv", "--save", model,
                 "-o", dev_out)
    assert result.exit_code == 0, result.output
    before, after = (float(v) for v in result.output.split("NCE")[1].split()[:2])
    assert after < before
    doc = load_model(model, "calibration")
    assert doc["method"] == "affine" and doc["classes"] == CLASSES and doc["params"]["scale"] == "shared"
    result = run("apply", model, "-i", ex / "nb_dev.csv", "-o", test_out)
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(read_posteriors(test_out).values, read_posteriors(dev_out).values)
    meta = json.loads((ex / "test_cal.csv.meta.json").read_text())
    assert meta["system"] == "nb+affine" and meta["models"] == ["affine.json"]  # beside the output
    dev_prior = pd.read_csv(ex / "labels_dev.csv")["label"].value_counts(normalize=True).reindex(CLASSES)
    np.testing.assert_allclose([meta["train_prior"][c] for c in CLASSES], dev_prior.to_numpy())


def test_thresholds_write_decisions_and_never_lower_dev_macro_f1(ex):
    model, decisions = ex / "thr.json", ex / "decisions.csv"
    result = run("thresholds", "-i", ex / "words_dev.csv", "--labels", ex / "labels_dev.csv", "--save", model,
                 "-o", decisions)
    assert result.exit_code == 0, result.output
    out = pd.read_csv(decisions, dtype=str)
    assert list(out.columns) == ["id", "label"] and set(out["label"]) <= set(CLASSES)
    labels = pd.read_csv(ex / "labels_dev.csv", dtype=str).set_index("id").loc[out["id"], "label"]
    y = np.array([CLASSES.index(c) for c in labels])
    P = read_posteriors(ex / "words_dev.csv").with_columns(CLASSES).values
    tuned = macro_f1(y, np.array([CLASSES.index(c) for c in out["label"]]), n_classes=7)
    assert tuned >= macro_f1(y, P.argmax(axis=1), n_classes=7)
    assert tuned == pytest.approx(load_model(model)["state"]["dev_macro_f1"])
    result = run("apply", model, "-i", ex / "words_test.csv", "-o", ex / "test_decisions.csv")
    assert result.exit_code == 0, result.output
    assert pd.read_csv(ex / "test_decisions.csv").columns.tolist() == ["id", "label"]
    assert not (ex / "test_decisions.csv.meta.json").exists()


def test_apply_chain_with_labels_prints_metrics(ex):
    assert run("temperature", "-i", ex / "words_dev.csv", "--labels", ex / "labels_dev.csv",
               "--save", ex / "t.json").exit_code == 0
    assert run("thresholds", "-i", ex / "words_dev.csv", "--labels", ex / "labels_dev.csv",
               "--save", ex / "thr.json").exit_code == 0
    result = run("apply", ex / "t.json", ex / "thr.json", "-i", ex / "words_test.csv", "-o", ex / "d.csv",
                 "--labels", ex / "labels_test.csv")
    assert result.exit_code == 0, result.output
    assert "macro-F1" in result.output and (ex / "d.csv").exists()
    result = run("apply", ex / "thr.json", ex / "t.json", "-i", ex / "words_test.csv", "-o", ex / "e.csv")
    assert result.exit_code == 1 and "must come last" in result.output and not (ex / "e.csv").exists()


def test_mismatched_classes_are_refused(ex):
    model = ex / "affine.json"
    assert run("affine", "-i", ex / "words_dev.csv", "--labels", ex / "labels_dev.csv",
               "--save", model).exit_code == 0
    out = ex / "out.csv"
    result = run("apply", model, "-i", ex / "words_test.csv", "-o", out,
                 "--classes", "anger,disgust,fear,joy,neutral,sadness")
    assert result.exit_code == 1
    assert "affine.json: calibrated for classes" in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_fitting_methods_need_labels(ex):
    result = run("affine", "-i", ex / "words_dev.csv")
    assert result.exit_code == 2 and "--labels" in result.output


def test_help_reads_like_a_manual_page():
    for args in ([], ["prior"], ["thresholds"], ["affine"], ["temperature"], ["apply"]):
        result = run(*args, "--help")
        assert result.exit_code == 0 and "Examples:" in result.output and "sermm-calibrate" in result.output
