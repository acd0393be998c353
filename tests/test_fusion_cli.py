"""``sermm-fuse`` end to end on the shipped examples: training, reports, CV, apply checks, chaining."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import EB, GO, sidecar_json

from sermm.align import load_aligned
from sermm.chain import Chain
from sermm.cli.calibrate import main as calibrate
from sermm.cli.fuse import main
from sermm.estimator import load
from sermm.modelfile import load_model
from sermm.sidecar import read_sidecar
from sermm.tables import read_posteriors

read_meta = sidecar_json


def go(name: str) -> str:
    return str(GO / name)


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def ok(*args: str) -> str:
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result.output


def error(*args: str) -> str:
    result = run(*args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def test_logreg_exact_call_needs_labels():
    line = error("logreg", "--inputs", go("words_dev.csv"), go("chars_dev.csv"))
    assert "logreg learns how far to trust each system" in line
    assert "pass --labels dev_labels.csv" in line


def test_logreg_on_the_examples(tmp_path):
    model, fused = tmp_path / "logreg.json", tmp_path / "fused_dev.csv"
    out = ok(
        "logreg",
        "--inputs",
        go("words_dev.csv"),
        go("chars_dev.csv"),
        "--labels",
        go("labels_dev.csv"),
        "--save",
        model,
        "--output",
        fused,
    )
    assert "logreg: 2 systems (words, chars), 7 classes" in out
    assert "fusion-logreg (fit on all dev)" in out and "C=1" in out
    doc = load_model(model, "fusion")
    labels = pd.read_csv(go("labels_dev.csv"))["label"]
    frequencies = labels.value_counts(normalize=True)
    assert doc["train_prior"] == pytest.approx({c: frequencies[c] for c in doc["classes"]})
    meta = read_meta(fused)
    assert meta["system"] == "fusion-logreg" and meta["models"] == ["logreg.json"]  # beside the output
    assert meta["train_prior"] == pytest.approx(doc["train_prior"])
    assert meta["values"] == "probability" and meta["classes"] == doc["classes"]
    sidecar = read_sidecar(fused)
    assert sidecar.models == [str(model)] and sidecar.inputs == [go("words_dev.csv"), go("chars_dev.csv")]
    table = read_posteriors(fused)
    assert np.allclose(table.values.sum(axis=1), 1.0)
    f1 = doc["fit"]["dev_metrics"]["fit"]["macro_f1"]
    assert f1 > max(doc["fit"]["dev_metrics"]["inputs"][s]["macro_f1"] for s in ("words", "chars"))


def test_interp_cv_report_and_cv_output(tmp_path):
    report, model, oof = tmp_path / "report.md", tmp_path / "interp.json", tmp_path / "oof.parquet"
    out = ok(
        "interp",
        "--inputs",
        go("words_dev.csv"),
        go("chars_dev.csv"),
        go("nb_dev.csv"),
        "--labels",
        go("labels_dev.csv"),
        "--cv",
        "4",
        "--save",
        model,
        "--report",
        report,
        "--cv-output",
        oof,
    )
    assert "weights words=" in out and "fusion-interp (4-fold CV)" in out
    doc = load_model(model, "fusion")
    cv = doc["fit"]["dev_metrics"]["cv"]
    assert cv["folds"] == 4 and cv["grouped"] is False
    assert 0 < cv["macro_f1"] <= doc["fit"]["dev_metrics"]["fit"]["macro_f1"] + 0.01
    assert sum(doc["state"]["weights"]) == pytest.approx(1.0)
    text = report.read_text()
    assert "| system | macro-F1 | UA | WA |" in text
    assert "| fusion-interp (4-fold CV) |" in text and "| nb |" in text
    assert read_meta(oof)["cross_validated"] is True
    labels = load_aligned([str(oof)], go("labels_dev.csv"))
    from sermm.metrics import macro_f1

    assert macro_f1(labels.y(), labels.tables[0].values.argmax(axis=1), n_classes=7) == pytest.approx(
        cv["macro_f1"]
    )


def test_grouped_cv(tmp_path):
    model = tmp_path / "vote.json"
    out = ok(
        "vote",
        "--inputs",
        go("words_dev.csv"),
        go("chars_dev.csv"),
        "--labels",
        go("labels_dev.csv"),
        "--groups",
        go("groups_dev.csv"),
        "--save",
        model,
    )
    assert "fusion-vote (5-fold grouped CV)" in out
    assert load_model(model)["fit"]["dev_metrics"]["cv"]["grouped"] is True
    missing = tmp_path / "groups.csv"
    pd.read_csv(go("groups_dev.csv")).iloc[5:].to_csv(missing, index=False)
    line = error(
        "vote", "--inputs", go("words_dev.csv"), "--labels", go("labels_dev.csv"), "--groups", missing
    )
    assert "no group for 5 id(s) of the inputs" in line
    # the mean learns nothing: cross-validating it would repeat its dev row, so it has no --cv
    assert "No such option '--cv'" in run("mean", "--inputs", go("words_dev.csv"), "--cv", "3").output
    assert "--cv/--groups score each fold against the labels" in error(
        "vote", "--inputs", go("words_dev.csv"), "--cv", "3"
    )


@pytest.fixture(scope="module")
def interp_model(tmp_path_factory) -> Path:
    model = tmp_path_factory.mktemp("models") / "interp.json"
    ok(
        "interp",
        "--inputs",
        go("words_dev.csv"),
        go("chars_dev.csv"),
        go("nb_dev.csv"),
        "--labels",
        go("labels_dev.csv"),
        "--save",
        model,
    )
    return model


def test_apply_matches_the_model_and_matches_systems_by_name(tmp_path, interp_model):
    out1, out2 = tmp_path / "a.csv", tmp_path / "b.parquet"
    printed = ok(
        "apply",
        interp_model,
        "--inputs",
        go("words_test.csv"),
        go("chars_test.csv"),
        go("nb_test.csv"),
        "--output",
        out1,
        "--labels",
        go("labels_test.csv"),
    )
    assert "fusion-interp" in printed and "macro-F1" in printed
    ok(
        "apply",
        interp_model,
        "--inputs",
        go("nb_test.csv"),
        go("words_test.csv"),
        go("chars_test.csv"),
        "--output",
        out2,
    )
    a, b = read_posteriors(out1), read_posteriors(out2)
    assert np.array_equal(a.values, b.values) and (a.ids == b.ids).all()
    fuser = load(interp_model)
    aligned = load_aligned([go("words_test.csv"), go("chars_test.csv"), go("nb_test.csv")])
    assert np.allclose(a.values, fuser.transform(aligned.tables), atol=1e-15)
    sidecar = read_sidecar(out1)
    assert sidecar.system == "fusion-interp" and sidecar.models == [str(interp_model)]


def test_apply_without_sidecars_matches_systems_by_file_name(tmp_path, interp_model):
    for name in ("words_test.csv", "chars_test.csv", "nb_test.csv"):
        shutil.copy(GO / name, tmp_path / name)
    out, swapped = tmp_path / "fused.csv", tmp_path / "swapped.csv"
    ok("apply", interp_model, "--inputs",
       *(tmp_path / n for n in ("words_test.csv", "chars_test.csv", "nb_test.csv")), "--output", out)
    ok("apply", interp_model, "--inputs",
       *(tmp_path / n for n in ("nb_test.csv", "words_test.csv", "chars_test.csv")), "--output", swapped)
    assert np.array_equal(read_posteriors(out).values, read_posteriors(swapped).values)
    assert read_sidecar(swapped).inputs == [str(tmp_path / n) for n in ("words_test.csv", "chars_test.csv",
                                                                         "nb_test.csv")]


def test_apply_refuses_swapped_inputs_it_cannot_name_and_systems_says_which(tmp_path):
    # A logreg model on three files without sidecars, named so that nothing ties them to a system.
    names = {"words": "a", "chars": "b", "nb": "c"}
    for system, short in names.items():
        shutil.copy(GO / f"{system}_dev.csv", tmp_path / f"{short}.csv")
        shutil.copy(GO / f"{system}_test.csv", tmp_path / f"eval{short}.csv")
    model = tmp_path / "logreg.json"
    ok("logreg", "--inputs", *(tmp_path / f"{s}.csv" for s in "abc"), "--labels", go("labels_dev.csv"),
       "--save", model)
    assert load(model).systems_ == ["a", "b", "c"]
    out = tmp_path / "fused.csv"
    swapped = [tmp_path / f"eval{s}.csv" for s in "bac"]
    line = error("apply", model, "--inputs", *swapped, "--output", out)
    assert "cannot tell which input is which system" in line
    assert "--systems a=FILE b=FILE c=FILE" in line
    assert not out.exists()
    # --systems in any order gives the fusion of the right files
    right = tmp_path / "right.csv"
    ok("apply", model, "--systems", f"c={tmp_path / 'evalc.csv'}", f"a={tmp_path / 'evala.csv'}",
       f"b={tmp_path / 'evalb.csv'}", "--output", right)
    fuser = load(model)
    aligned = load_aligned([tmp_path / f"eval{s}.csv" for s in "abc"])
    expected = fuser.transform([t.values for t in aligned.tables])
    assert np.allclose(read_posteriors(right).values, expected, atol=1e-12)
    wrong = fuser.transform([t.values for t in load_aligned(swapped).tables])
    assert np.abs(wrong - expected).max() > 0.05  # what a silent fusion by position would have given
    # the dev file names themselves match the model's systems (exactly)
    ok("apply", model, "--inputs", *(tmp_path / f"{s}.csv" for s in "cab"), "--output", tmp_path / "dev.csv")
    assert "no system 'd'" in error("apply", model, "--systems", f"d={tmp_path / 'evala.csv'}",
                                    "--output", out)
    assert "no file for system 'b'" in error("apply", model, "--systems", f"a={tmp_path / 'evala.csv'}",
                                             f"c={tmp_path / 'evalc.csv'}", "--output", out)
    assert "expected NAME=FILE" in error("apply", model, "--systems", "a", "--output", out)
    assert "not both" in error("apply", model, "--inputs", tmp_path / "evala.csv", "--systems",
                               f"a={tmp_path / 'evala.csv'}", "--output", out)


def test_apply_refuses_other_systems(tmp_path, interp_model):
    out = tmp_path / "fused.csv"
    line = error(
        "apply", interp_model, "--inputs", go("words_test.csv"), go("chars_test.csv"), "--output", out
    )
    assert "trained on 3 system(s) (words, chars, nb), got 2 input file(s)" in line
    renamed = tmp_path / "other.csv"
    shutil.copy(GO / "nb_test.csv", renamed)
    (tmp_path / "other.csv.meta.json").write_text(json.dumps({"system": "audio"}))
    line = error(
        "apply",
        interp_model,
        "--inputs",
        go("words_test.csv"),
        go("chars_test.csv"),
        renamed,
        "--output",
        out,
    )
    assert "system 'audio' is not one" in line and "(words, chars, nb)" in line
    assert not out.exists()


def test_apply_refuses_other_classes(tmp_path, interp_model):
    frame = pd.read_csv(GO / "nb_test.csv", dtype={"id": str}).rename(columns={"joy": "happiness"})
    odd = tmp_path / "nb_test.csv"
    frame.to_csv(odd, index=False)
    shutil.copy(GO / "nb_test.csv.meta.json", tmp_path / "nb_test.csv.meta.json")
    out = tmp_path / "fused.csv"
    line = error(
        "apply", interp_model, "--inputs", go("words_test.csv"), go("chars_test.csv"), odd, "--output", out
    )
    assert f"{odd}: classes" in line and "do not match the classes of" in line
    assert not out.exists() and not list(tmp_path.glob(".fused*"))
    line = error(
        "apply",
        interp_model,
        "--inputs",
        go("words_test.emb.parquet"),
        go("chars_test.csv"),
        go("nb_test.csv"),
        "--output",
        out,
    )
    assert "holds embeddings" in line
    assert not out.exists()


def test_apply_then_calibration_chain(tmp_path, interp_model):
    fused_dev = tmp_path / "fused_dev.csv"
    ok(
        "apply",
        interp_model,
        "--inputs",
        go("words_dev.csv"),
        go("chars_dev.csv"),
        go("nb_dev.csv"),
        "--output",
        fused_dev,
    )
    runner = CliRunner()
    prior, thresholds = tmp_path / "prior.json", tmp_path / "thr.json"
    result = runner.invoke(calibrate, ["prior", "--uniform", "-i", str(fused_dev), "--save", str(prior)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        calibrate,
        ["thresholds", "-i", str(fused_dev), "--labels", go("labels_dev.csv"), "--save", str(thresholds)],
    )
    assert result.exit_code == 0, result.output
    inputs = [go("words_test.csv"), go("chars_test.csv"), go("nb_test.csv")]
    calibrated, decided = tmp_path / "calibrated.csv", tmp_path / "decisions.csv"
    ok("apply", interp_model, "--inputs", *inputs, "--then", prior, "--output", calibrated)
    ok("apply", interp_model, "--inputs", *inputs, "--then", prior, thresholds, "--output", decided)
    fuser = load(interp_model)
    aligned = load_aligned(inputs)
    expected = Chain([load(prior)]).run(fuser.transform(aligned.tables), fuser.columns_).values
    assert np.allclose(read_posteriors(calibrated).values, expected)
    assert read_sidecar(calibrated).models == [str(interp_model), str(prior)]
    decisions = pd.read_csv(decided, dtype=str)
    assert list(decisions.columns) == ["id", "label"] and len(decisions) == len(aligned.ids)
    assert set(decisions["label"]) <= set(fuser.columns_)


def test_vote_without_labels_and_with_tie_break(tmp_path):
    out = tmp_path / "vote.csv"
    printed = ok("vote", "--inputs", go("words_dev.csv"), go("chars_dev.csv"), "--output", out)
    assert "ties go to words (first input; no labels)" in printed and "no dev metrics" in printed
    votes = read_posteriors(out)
    words = read_posteriors(go("words_dev.csv"))
    assert (votes.values.argmax(axis=1) == words.values.argmax(axis=1)).all()  # 1-1 ties go to words
    printed = ok("vote", "--inputs", go("words_dev.csv"), go("chars_dev.csv"), "--tie-break", "chars")
    assert "ties go to chars (chosen)" in printed


def test_embeddings_lda_and_plda(tmp_path):
    inputs = [go("words_dev.emb.parquet"), go("chars_dev.emb.parquet")]
    model = tmp_path / "plda.json"
    out = ok(
        "plda",
        "--inputs",
        *inputs,
        "--labels",
        go("labels_dev.csv"),
        "--lda-dim",
        "10",
        "--cv",
        "3",
        "--save",
        model,
    )
    assert "LDA 64 -> 10 dims, two-covariance PLDA, uniform prior" in out and "fusion-plda (3-fold CV)" in out
    fused = tmp_path / "plda_test.parquet"
    ok(
        "apply",
        model,
        "--inputs",
        go("words_test.emb.parquet"),
        go("chars_test.emb.parquet"),
        "--output",
        fused,
    )
    assert read_meta(fused)["train_prior"] == pytest.approx({c: 1 / 7 for c in load_model(model)["classes"]})
    out = ok(
        "lda", "--inputs", *inputs, "--labels", go("labels_dev.csv"), "--lda-dim", "20", "--norm", "length"
    )
    assert "length norm, LDA 64 -> 20 dims, logistic regression C=1" in out
    assert "needs the reference labels" in error("plda", "--inputs", *inputs)
    assert "holds posteriors" in error(
        "plda", "--inputs", go("words_dev.csv"), "--labels", go("labels_dev.csv")
    )


def test_attribute_interp_and_mean(tmp_path):
    inputs = [str(EB / "ridge_words_dev.csv"), str(EB / "ridge_chars_dev.csv")]
    model = tmp_path / "eb.json"
    out = ok(
        "interp",
        "--inputs",
        *inputs,
        "--labels",
        str(EB / "labels_dev.csv"),
        "--save",
        model,
        "--cv",
        "3",
        "--report",
        tmp_path / "eb.md",
    )
    assert "weights by CCC" in out and "CCC arousal" in out
    doc = load_model(model)
    assert doc["classes"] == ["arousal", "valence", "dominance"] and doc["values"] == "regression"
    assert np.array(doc["state"]["weights"]).shape == (3, 2)
    assert "| CCC arousal | CCC valence | CCC dominance |" in (tmp_path / "eb.md").read_text()
    fused = tmp_path / "eb_test.csv"
    printed = ok(
        "apply",
        model,
        "--inputs",
        str(EB / "ridge_words_test.csv"),
        str(EB / "ridge_chars_test.csv"),
        "--output",
        fused,
        "--labels",
        str(EB / "labels_test.csv"),
    )
    assert "CCC valence" in printed
    assert read_meta(fused)["attributes"] == ["arousal", "valence", "dominance"]
    assert "mean" in ok("mean", "--inputs", *inputs)
    assert "attribute files are fused by CCC, not ua" in error(
        "interp", "--inputs", *inputs, "--labels", str(EB / "labels_dev.csv"), "--metric", "ua"
    )
    assert "logreg fuses posterior files" in error(
        "logreg", "--inputs", *inputs, "--labels", str(EB / "labels_dev.csv")
    )


def test_help_reads_like_a_manual():
    out = ok("--help")
    assert "Examples:" in out and "sermm-fuse apply interp.json" in out
    assert "sermm-fuse interp --inputs words_dev.csv" in ok("interp", "--help")


def test_class_subset_is_kept_at_apply(tmp_path):
    model = tmp_path / "subset.json"
    keep = "anger,joy,neutral,sadness"
    out = ok(
        "interp",
        "--inputs",
        go("words_dev.csv"),
        go("chars_dev.csv"),
        "--labels",
        go("labels_dev.csv"),
        "--classes",
        keep,
        "--save",
        model,
    )
    assert "4 classes" in out
    doc = load_model(model)
    assert doc["classes"] == keep.split(",") and doc["inputs"]["class_subset"] is True
    fused = tmp_path / "subset_test.csv"
    ok("apply", model, "--inputs", go("words_test.csv"), go("chars_test.csv"), "--output", fused)
    table = read_posteriors(fused)
    assert table.columns == keep.split(",") and np.allclose(table.values.sum(axis=1), 1.0)
    words = read_posteriors(go("words_test.csv"), classes=keep.split(","))
    chars = read_posteriors(go("chars_test.csv"), classes=keep.split(","))
    w = doc["state"]["weights"]
    assert np.allclose(table.values, w[0] * words.values + w[1] * chars.values)
    sidecar = read_meta(go("words_test.csv"))["train_prior"]
    expected = np.array([sidecar[c] for c in keep.split(",")])
    assert list(doc["train_prior"].values()) == pytest.approx(list(expected / expected.sum()))
    assert read_meta(fused)["train_prior"] == pytest.approx(doc["train_prior"])
