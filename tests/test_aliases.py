"""Class names are aliases everywhere: MSP letter codes, the official baseline's capitalised names
and sermm's lowercase names, in any case (issue 12, "Class names")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import assert_one_line_error, invoke
from msp_fake import CODES, N_DEV, NAMINGS, dev_ids, posteriors, write_labels, write_posteriors, write_systems

from sermm.classes import class_code, class_key, same_classes, spelled_as
from sermm.cli.calibrate import main as calibrate
from sermm.cli.data import main as data
from sermm.cli.fuse import main as fuse
from sermm.cli.report import main as report
from sermm.cli.submit import main as submit
from sermm.tables import read_posteriors

EIGHT_LOWER = ",".join(NAMINGS["lower"])


def test_one_key_per_class_under_every_alias():
    for code, lower, baseline in zip(CODES, NAMINGS["lower"], NAMINGS["baseline"], strict=True):
        assert class_key(code) == class_key(lower) == class_key(baseline) == lower
        assert class_key(baseline.upper()) == lower
        assert class_key(code.lower()) == lower
        assert class_code(baseline) == class_code(lower) == class_code(code) == code
    assert class_key("X") == class_key("No_Agreement") == class_key("no agreement") == "no_agreement"
    assert class_key(" Joy ") == "joy"  # any class name matches case-insensitively
    assert same_classes(["A", "s"], ["Sad", "angry"])
    assert spelled_as(["A", "Sad"], ["angry", "sad"]) == ["angry", "sad"]


def fused_by_key(path) -> pd.DataFrame:
    """A fused posterior file with its columns named by class key, sorted by id."""
    frame = pd.read_csv(path).set_index("id").sort_index()
    frame.columns = [class_key(c) for c in frame.columns]
    return frame[NAMINGS["lower"]]


@pytest.mark.parametrize("naming", ["baseline", "letters"])
def test_baseline_names_and_letters_fuse_to_the_lowercase_posteriors(tmp_path, naming):
    labels = write_labels(tmp_path)
    outputs = {}
    for which in ("lower", naming):
        folder = tmp_path / which
        folder.mkdir()
        audio, text = write_systems(folder, which)
        out = folder / "fused.csv"
        result = invoke(fuse, "logreg", "--inputs", audio, text, "--labels", labels, "--split", "Development",
                        "--classes", ",".join(NAMINGS[which]), "--output", out, "--save", folder / "m.json")
        assert result.exit_code == 0, result.output
        assert "leaving out 6 MSP-Podcast O/X row(s)" in result.stderr
        outputs[which] = out
    # the output keeps the naming of the first input
    assert pd.read_csv(outputs[naming]).columns.tolist() == ["id", *NAMINGS[naming]]
    np.testing.assert_allclose(fused_by_key(outputs[naming]).to_numpy(),
                               fused_by_key(outputs["lower"]).to_numpy(), rtol=1e-9, atol=1e-12)


def test_two_files_whose_columns_differ_only_by_alias_fuse(tmp_path):
    labels = write_labels(tmp_path)
    ids = dev_ids()[:N_DEV]
    audio = write_posteriors(tmp_path / "audio_dev.csv", posteriors(1, ids), ids, NAMINGS["baseline"])
    text = write_posteriors(tmp_path / "text_dev.csv", posteriors(2, ids), ids, NAMINGS["letters"])
    lower_a = write_posteriors(tmp_path / "la.csv", posteriors(1, ids), ids, NAMINGS["lower"])
    lower_t = write_posteriors(tmp_path / "lt.csv", posteriors(2, ids), ids, NAMINGS["lower"])
    mixed, lower = tmp_path / "mixed.csv", tmp_path / "lower.csv"
    for inputs, out in (((audio, text), mixed), ((lower_a, lower_t), lower)):
        result = invoke(fuse, "logreg", "--inputs", *inputs, "--labels", labels, "--split", "Development",
                        "--classes", "A,S,H,U,F,D,C,N", "--output", out)
        assert result.exit_code == 0, result.output
    assert pd.read_csv(mixed).columns.tolist() == ["id", *NAMINGS["baseline"]]
    np.testing.assert_allclose(fused_by_key(mixed).to_numpy(), fused_by_key(lower).to_numpy(), atol=1e-12)


def test_apply_a_model_to_inputs_named_another_way(tmp_path):
    labels = write_labels(tmp_path)
    audio, text = write_systems(tmp_path, "baseline")
    model = tmp_path / "m.json"
    assert invoke(fuse, "logreg", "--inputs", audio, text, "--labels", labels, "--split", "Development",
                  "--classes", EIGHT_LOWER, "--save", model).exit_code == 0
    ids = dev_ids()[:N_DEV]
    la = write_posteriors(tmp_path / "audio_eval.csv", posteriors(1, ids), ids, NAMINGS["letters"])
    lt = write_posteriors(tmp_path / "text_eval.csv", posteriors(2, ids), ids, NAMINGS["lower"])
    out = tmp_path / "fused_eval.csv"
    result = invoke(fuse, "apply", model, "--inputs", la, lt, "--output", out)
    assert result.exit_code == 0, result.output
    assert read_posteriors(out).columns == NAMINGS["baseline"]


def test_labels_and_classes_option_take_any_alias(tmp_path):
    """sermm-data check, sermm-report and sermm-calibrate read the baseline's names and letters."""
    labels = write_labels(tmp_path)
    audio, text = write_systems(tmp_path, "baseline")
    check = invoke(data, "check", audio, text, "--labels", labels, "--split", "Development",
                   "--classes", "angry,SAD,h,U,fear,Disgust,c,neutral")
    assert check.exit_code == 0, check.output
    assert "together: 64 aligned rows, 8 columns" in check.stdout
    rep = invoke(report, "--input", audio, "--labels", labels, "--split", "Development",
                 "--classes", EIGHT_LOWER, "--n-boot", 20)
    assert rep.exit_code == 0, rep.output
    assert "Angry" in rep.stdout
    cal = invoke(calibrate, "prior", "--uniform", "-i", audio, "--train-labels", labels, "--train-split",
                 "Development", "-o", tmp_path / "bal.csv")
    assert cal.exit_code == 0, cal.output
    assert read_posteriors(tmp_path / "bal.csv").columns == NAMINGS["baseline"]


def test_decision_files_and_submissions_take_any_alias(tmp_path):
    labels = write_labels(tmp_path)
    ids = dev_ids()[:8]
    decisions = tmp_path / "decisions.csv"
    rows = zip(ids, NAMINGS["baseline"], strict=True)
    decisions.write_text("id,label\n" + "".join(f"{i},{n}\n" for i, n in rows))
    rep = invoke(report, "--input", decisions, "--labels", labels, "--split", "Development", "--classes",
                 ",".join(CODES), "--on-missing", "drop", "--n-boot", 10)
    assert rep.exit_code == 0, rep.output
    out = tmp_path / "sub.csv"
    result = invoke(submit, "--input", decisions, "--format", "msp-categorical", "--output", out)
    assert result.exit_code == 0, result.output
    assert pd.read_csv(out)["EmoClass"].tolist() == CODES


def test_a_file_naming_one_class_twice_is_refused(tmp_path):
    path = tmp_path / "twice.csv"
    path.write_text("id,A,angry,sad\nu1,0.2,0.3,0.5\n")
    result = invoke(data, "check", path)
    assert_one_line_error(result, f"{path}: columns 'A' and 'angry' name one class")


def test_labels_outside_the_classes_in_another_spelling_are_counted(tmp_path):
    labels = write_labels(tmp_path)
    audio, text = write_systems(tmp_path, "letters")
    result = invoke(fuse, "mean", "--inputs", audio, text, "--labels", labels, "--split", "development",
                    "--classes", "Angry,Sad,Happy,Neutral")
    assert result.exit_code == 0, result.output
    assert "leaving out 6 MSP-Podcast O/X row(s) and 32 of other classes" in result.stderr
    assert "32 dev rows" in result.stdout
