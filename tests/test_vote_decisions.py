"""``sermm-fuse vote`` takes decision files (``id,label``) as systems: BSC-UPC voted their
systems' thresholded decisions, which ``sermm-calibrate apply`` writes as such files."""

from __future__ import annotations

import numpy as np
import pandas as pd
from conftest import GO, assert_one_line_error, invoke

from sermm.cli.fuse import main as fuse
from sermm.tables import read_posteriors

SYSTEMS = ("words", "chars", "nb")


def argmax_decisions(tmp_path, system: str, rows: slice = slice(0, 400)) -> str:
    """The argmax decisions of a shipped test posterior file, as ``<system>.csv`` (id,label)."""
    table = read_posteriors(GO / f"{system}_test.csv")
    labels = np.asarray(table.columns)[table.values.argmax(axis=1)]
    path = tmp_path / f"{system}.csv"
    pd.DataFrame({"id": table.ids, "label": labels}).iloc[rows].to_csv(path, index=False)
    return str(path)


def scores_of(path) -> pd.DataFrame:
    return pd.read_csv(path).set_index("id").sort_index()


def test_a_vote_of_decision_files_equals_the_vote_of_their_posterior_files(tmp_path):
    decisions = [argmax_decisions(tmp_path, s) for s in SYSTEMS]
    posteriors = tmp_path / "posteriors"
    posteriors.mkdir()
    for s in SYSTEMS:  # the same 400 rows of each posterior file, named as the system
        pd.read_csv(GO / f"{s}_test.csv").iloc[:400].to_csv(posteriors / f"{s}.csv", index=False)
    tie = ("--tie-break", "chars")
    classes = ",".join(read_posteriors(GO / "words_test.csv").columns)
    result = invoke(fuse, "vote", "--inputs", *decisions, *tie, "--classes", classes,
                    "-o", tmp_path / "from_decisions.csv")
    assert result.exit_code == 0, result.output
    result = invoke(fuse, "vote", "--inputs", *(posteriors / f"{s}.csv" for s in SYSTEMS), *tie,
                    "-o", tmp_path / "from_posteriors.csv")
    assert result.exit_code == 0, result.output
    a, b = scores_of(tmp_path / "from_decisions.csv"), scores_of(tmp_path / "from_posteriors.csv")
    pd.testing.assert_frame_equal(a[b.columns], b)


def test_decision_and_posterior_files_mix_and_a_saved_vote_applies_to_decisions(tmp_path):
    words = argmax_decisions(tmp_path, "words", slice(None))
    inputs = [words, str(GO / "chars_test.csv"), str(GO / "nb_test.csv")]
    model = tmp_path / "vote.json"
    result = invoke(fuse, "vote", "--inputs", *inputs, "--labels", GO / "labels_test.csv", "--save", model,
                    "-o", tmp_path / "fit.csv")
    assert result.exit_code == 0, result.output
    assert "3 systems (words, chars, nb)" in result.output
    systems = [f"words={words}", f"chars={inputs[1]}", f"nb={inputs[2]}"]
    result = invoke(fuse, "apply", model, "--systems", *systems, "-o", tmp_path / "applied.csv")
    assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(scores_of(tmp_path / "applied.csv"), scores_of(tmp_path / "fit.csv"))
    shares = scores_of(tmp_path / "fit.csv").to_numpy()  # three voters: every winner has 1/3 or more
    assert (shares.max(axis=1) >= 1 / 3 - 1e-9).all() and np.allclose(shares.sum(axis=1), 1, atol=1e-5)


def test_a_decision_outside_the_classes_is_one_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,label\n" + "".join(f"{i},joy\n" for i in pd.read_csv(GO / "chars_test.csv")["id"][:3]))
    bad.write_text(bad.read_text().replace(",joy\n", ",boredom\n", 1))
    result = invoke(fuse, "vote", "--inputs", bad, GO / "chars_test.csv", "--on-missing", "drop",
                    "-o", tmp_path / "v.csv")
    assert_one_line_error(result, "bad.csv", "boredom")
    assert not (tmp_path / "v.csv").exists()


def test_other_fusers_do_not_take_decision_files(tmp_path):
    words = argmax_decisions(tmp_path, "words", slice(None))
    result = invoke(fuse, "mean", "--inputs", words, GO / "chars_test.csv", "-o", tmp_path / "m.csv")
    assert_one_line_error(result, "words.csv", "holds decisions", "vote takes decision files")
    assert not (tmp_path / "m.csv").exists()
