"""User mistakes on every CLI end in one ``Error:`` line, exit code 1 or 2, no traceback, no output file.

Each test is a regression found by trying to break the commands: wrong models, edited model
files, single-class labels, outputs that would overwrite an input, unwritable output paths.
The inputs are small synthetic files written into ``tmp_path`` so the whole module runs in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner, Result

from sermm.cli.calibrate import main as calibrate
from sermm.cli.data import main as data
from sermm.cli.fuse import main as fuse
from sermm.cli.report import main as report
from sermm.cli.submit import main as submit

CLASSES = ["angry", "happy", "neutral"]
N = 60


def run(cli, *args: object) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def refused(result: Result, *needles: str, code: int = 1) -> str:
    """The command stopped with one clear error line naming ``needles``, and no traceback."""
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1, result.output
    for needle in needles:
        assert needle in error[0], error[0]
    return error[0]


def posteriors(path: Path, seed: int, ids: list[str] | None = None) -> Path:
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(len(CLASSES)), N)
    frame = pd.DataFrame(P, columns=CLASSES)
    frame.insert(0, "id", ids or [f"u{i:03d}" for i in range(N)])
    frame.to_csv(path, index=False)
    return path


def labels(path: Path, values: list[str] | None = None) -> Path:
    values = values or [CLASSES[i % len(CLASSES)] for i in range(N)]
    pd.DataFrame({"id": [f"u{i:03d}" for i in range(N)], "label": values}).to_csv(path, index=False)
    return path


def embeddings(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(N, 4)), columns=[f"e{j}" for j in range(4)])
    frame.insert(0, "id", [f"u{i:03d}" for i in range(N)])
    frame.to_parquet(path, index=False)
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {
        "a": posteriors(tmp_path / "a.csv", 0),
        "t": posteriors(tmp_path / "t.csv", 1),
        "labels": labels(tmp_path / "labels.csv"),
        "one_class": labels(tmp_path / "one_class.csv", ["happy"] * N),
        "ea": embeddings(tmp_path / "ea.parquet", 2),
        "et": embeddings(tmp_path / "et.parquet", 3),
    }


def unchanged(path: Path):
    """A check that ``path`` still holds exactly what it held when this was called."""
    before = path.read_bytes()
    return lambda: path.read_bytes() == before


# ------------------------------------------------------------------ unwritable output paths


def test_fuse_output_below_a_file_is_one_line(files, tmp_path):
    target = files["a"] / "fused.csv"  # a.csv is a file, not a directory
    refused(run(fuse, "mean", "--inputs", files["a"], files["t"], "--output", target), str(target))
    assert not list(tmp_path.glob("**/.fused.csv.*"))


def test_fuse_save_below_a_file_writes_no_output_either(files, tmp_path):
    out = tmp_path / "fused.csv"
    result = run(fuse, "mean", "-i", files["a"], files["t"], "-o", out, "--save", files["a"] / "m.json")
    refused(result, "m.json")
    assert not out.exists()


@pytest.mark.parametrize("option", ["--output", "--save"])
def test_calibrate_output_below_a_file_is_refused_before_fitting(files, option):
    target = files["a"] / "x.json"
    result = run(calibrate, "temperature", "-i", files["a"], "-l", files["labels"], option, target)
    refused(result, option, "is not a directory")
    assert "L-BFGS-B" not in result.output  # refused before any work


def test_report_json_below_a_file(files):
    refused(run(report, "--input", files["a"], "--labels", files["labels"], "--json", files["t"] / "r.json"),
            "--json", "is not a directory")


def test_balance_output_below_a_file(files):
    refused(run(data, "balance", "--labels", files["labels"], "--per-class", 2, "--output",
                files["a"] / "b.csv"), "--output", "is not a directory")


# ------------------------------------------------------------------ outputs that overwrite an input


@pytest.mark.parametrize("method", ["temperature", "affine", "thresholds"])
def test_calibrate_refuses_to_overwrite_its_input(files, method):
    intact = unchanged(files["a"])
    refused(run(calibrate, method, "-i", files["a"], "-l", files["labels"], "-o", files["a"]),
            "--output", "input file")
    assert intact()


def test_calibrate_refuses_to_save_over_the_labels(files):
    intact = unchanged(files["labels"])
    refused(run(calibrate, "temperature", "-i", files["a"], "-l", files["labels"], "--save", files["labels"]),
            "--save", "input file")
    assert intact()


def test_calibrate_refuses_save_and_output_on_one_path(files, tmp_path):
    same = tmp_path / "same.csv"
    result = run(calibrate, "temperature", "-i", files["a"], "-l", files["labels"], "-s", same, "-o", same)
    refused(result, "same path")
    assert not same.exists()


def test_calibrate_apply_refuses_to_overwrite_its_model(files, tmp_path):
    model = tmp_path / "temp.json"
    fitted = run(calibrate, "temperature", "-i", files["a"], "-l", files["labels"], "--save", model)
    assert fitted.exit_code == 0, fitted.output
    intact = unchanged(model)
    refused(run(calibrate, "apply", model, "-i", files["t"], "-o", model), "--output", "input file")
    assert intact()


def test_report_submit_data_refuse_to_overwrite_an_input(files, tmp_path):
    intact = [unchanged(files["a"]), unchanged(files["labels"])]
    refused(run(report, "--input", files["a"], "--labels", files["labels"], "--markdown", files["labels"]),
            "--report", "input file")
    refused(run(submit, "--input", files["labels"], "--format", "msp-categorical",
                "--output", files["labels"]), "--output", "input file")
    refused(run(data, "balance", "--labels", files["labels"], "--per-class", 2, "--output", files["labels"]),
            "--output", "input file")
    assert all(check() for check in intact)


def test_convert_refuses_one_path_for_both_outputs(tmp_path):
    source = tmp_path / "dev.csv"
    source.write_text('Filename,Label,Prediction\nx.wav,"0,0,0,0,0,0,0,1","1,2,3,4,5,6,7,8"\n')
    same = tmp_path / "same.csv"
    refused(run(data, "convert", "--from", "msp-baseline", source, "--output", same, "--labels-output", same),
            "same path")
    assert not same.exists()


# sermm-fuse used to overwrite the user's input when an output named it.


def test_fuse_refuses_to_overwrite_an_input(files):
    intact = unchanged(files["a"])
    refused(run(fuse, "mean", "--inputs", files["a"], files["t"], "--output", files["a"]),
            "--output", "input file")
    assert intact()


def test_fuse_refuses_to_save_over_the_labels(files):
    intact = unchanged(files["labels"])
    refused(run(fuse, "logreg", "--inputs", files["a"], files["t"], "--labels", files["labels"],
                "--save", files["labels"]), "--save", "input file")
    assert intact()


def test_fuse_refuses_save_and_output_on_one_path(files, tmp_path):
    same = tmp_path / "same.out"
    refused(run(fuse, "mean", "--inputs", files["a"], files["t"], "--save", same, "--output", same),
            "same path")
    assert not same.exists()


def test_fuse_apply_refuses_to_overwrite_an_input(files, tmp_path):
    model = tmp_path / "mean.json"
    assert run(fuse, "mean", "--inputs", files["a"], files["t"], "--save", model).exit_code == 0
    intact = unchanged(files["t"])
    refused(run(fuse, "apply", model, "--inputs", files["a"], files["t"], "--output", files["t"]),
            "--output", "input file")
    assert intact()


def test_fuse_cv_zero_names_zero(files):
    refused(run(fuse, "logreg", "--inputs", files["a"], files["t"], "--labels", files["labels"], "--cv", 0),
            "--cv", "got 0")


# ------------------------------------------------------------------ labels of a single class


@pytest.mark.parametrize("method", ["temperature", "affine", "thresholds"])
def test_calibrate_single_class_labels(files, tmp_path, method):
    out = tmp_path / "out.csv"
    refused(run(calibrate, method, "-i", files["a"], "-l", files["one_class"], "-o", out),
            "one_class.csv", "'happy'", "at least two classes")
    assert not out.exists()


def test_thresholds_on_one_kept_class(files, tmp_path):
    out = tmp_path / "out.csv"
    refused(run(calibrate, "thresholds", "-i", files["a"], "-l", files["labels"], "--classes", "happy",
                "-o", out), "at least two classes")
    assert not out.exists()


def test_calibrate_apply_scores_single_class_labels(files, tmp_path):
    """Metrics on a one-class test set: NCE is undefined, so it is shown as nan, not a crash."""
    model, out = tmp_path / "temp.json", tmp_path / "out.csv"
    fitted = run(calibrate, "temperature", "-i", files["a"], "-l", files["labels"], "--save", model)
    assert fitted.exit_code == 0, fitted.output
    result = run(calibrate, "apply", model, "-i", files["t"], "-o", out, "--labels", files["one_class"])
    assert result.exit_code == 0, result.output
    assert "nan" in next(line for line in result.output.splitlines() if "NCE" in line)
    assert out.exists()


@pytest.mark.parametrize("method", ["lda", "plda"])
def test_embedding_fusion_single_class_labels(files, tmp_path, method):
    model = tmp_path / "m.json"
    refused(run(fuse, method, "--inputs", files["ea"], files["et"], "--labels", files["one_class"],
                "--lda-dim", 2, "--save", model), "only one class", method)
    assert not model.exists()


# ------------------------------------------------------------------ option ranges


@pytest.mark.parametrize(
    ("method", "option", "value"),
    [("temperature", "--max-iter", 0), ("affine", "--max-iter", -5), ("prior", "--max-iter", 0),
     ("prior", "--tol", 0), ("prior", "--tol", -1)],
)
def test_calibrate_iteration_options_must_be_positive(files, method, option, value):
    extra = ["-l", files["labels"]]
    if method == "prior":
        extra = ["--estimate", "--train-labels", files["labels"]]
    refused(run(calibrate, method, "-i", files["a"], *extra, option, value), option, code=2)


# ------------------------------------------------------------------ model files edited by hand


def edited(tmp_path: Path, model: Path, edit) -> Path:
    doc = json.loads(model.read_text())
    edit(doc)
    path = tmp_path / f"edited_{model.name}"
    path.write_text(json.dumps(doc))
    return path


def fit(files, tmp_path, method: str, *extra: object) -> Path:
    model = tmp_path / f"{method}.json"
    inputs = (files["ea"], files["et"]) if method in ("lda", "plda") else (files["a"], files["t"])
    result = run(fuse, method, "--inputs", *inputs, "--labels", files["labels"], "--save", model, *extra)
    assert result.exit_code == 0, result.output
    return model


@pytest.mark.parametrize(
    ("method", "extra", "key"),
    [
        ("mean", (), "weights"),
        ("interp", ("--step", 0.25), "weights"),
        ("logreg", (), "coef"),
        ("logreg", (), "intercept"),
        ("logreg", ("--tied",), "system_weights"),
        ("lda", ("--lda-dim", 2), "coef"),
        ("lda", ("--lda-dim", 2), "norm_mean"),
        ("plda", ("--lda-dim", 2), "class_means"),
        ("plda", ("--lda-dim", 2), "prior"),
    ],
)
def test_apply_refuses_a_state_of_the_wrong_shape(files, tmp_path, method, extra, key):
    model = fit(files, tmp_path, method, *extra)
    bad = edited(tmp_path, model, lambda doc: doc["state"].__setitem__(key, doc["state"][key][:-1]))
    inputs = (files["ea"], files["et"]) if method in ("lda", "plda") else (files["a"], files["t"])
    out = tmp_path / "out.csv"
    refused(run(fuse, "apply", bad, "--inputs", *inputs, "--output", out),
            bad.name, f"malformed {method} fusion model", f"'{key}'")
    assert not out.exists()


def test_apply_refuses_a_tie_break_outside_the_systems(files, tmp_path):
    model = fit(files, tmp_path, "vote")
    bad = edited(tmp_path, model, lambda doc: doc["state"].__setitem__("tie_break", 5))
    refused(run(fuse, "apply", bad, "--inputs", files["a"], files["t"], "--output", tmp_path / "o.csv"),
            "tie_break")


@pytest.mark.parametrize(("method", "param", "extra"), [("interp", "domain", ("--step", 0.5)),
                                                       ("lda", "norm", ("--lda-dim", 2))])
def test_apply_refuses_an_unknown_parameter_value(files, tmp_path, method, param, extra):
    model = fit(files, tmp_path, method, *extra)
    bad = edited(tmp_path, model, lambda doc: doc["params"].__setitem__(param, "bogus"))
    inputs = (files["ea"], files["et"]) if method == "lda" else (files["a"], files["t"])
    refused(run(fuse, "apply", bad, "--inputs", *inputs, "--output", tmp_path / "o.csv"),
            f"'{param}'", "bogus")


def test_apply_refuses_a_non_numeric_coefficient(files, tmp_path):
    model = fit(files, tmp_path, "logreg")
    bad = edited(tmp_path, model, lambda doc: doc["state"]["coef"][0].__setitem__(0, "x"))
    refused(run(fuse, "apply", bad, "--inputs", files["a"], files["t"], "--output", tmp_path / "o.csv"),
            "malformed logreg fusion model")


def test_report_plots_and_json_on_one_path_write_nothing(files, tmp_path):
    same = tmp_path / "same"
    refused(run(report, "--input", files["a"], "--labels", files["labels"], "--plots", same, "--json", same),
            "same path")
    assert not same.exists()  # the plots used to be drawn before --json failed


def test_c_auto_blames_its_inner_folds_not_cv(files, tmp_path):
    """--C auto picks C by 5 inner folds; with 2-row classes its error named '--cv 5' though --cv was 2."""
    few = labels(tmp_path / "few.csv", ["angry", "angry", "happy", "happy"] + ["neutral"] * (N - 4))
    result = run(fuse, "logreg", "-i", files["a"], files["t"], "--labels", few, "--C", "auto", "--cv", 2)
    error = refused(result, "--C auto", "5-fold inner")
    assert "--cv 5" not in error


def test_prior_names_the_class_whose_training_prior_is_zero(files, tmp_path):
    out = tmp_path / "out.csv"
    prior = "angry=0,happy=1,neutral=1"
    result = run(calibrate, "prior", "--uniform", "-i", files["a"], "--train-prior", prior, "-o", out)
    refused(result, "--train-prior", "class angry is 0")
    assert not out.exists()
