"""Errors that guide: MSP's O/X rows, ids that almost match, label files with splits, rows that
lost classes, groups and expected ids from labels_consensus.csv (issue 12). Each test names the
line the issue quoted and asserts the line that replaced it."""

from __future__ import annotations

import numpy as np
import pandas as pd
from conftest import assert_one_line_error, invoke
from msp_fake import (
    CODES,
    N_DEV,
    NAMINGS,
    dev_ids,
    eval_ids,
    posteriors,
    write_labels,
    write_posteriors,
    write_systems,
)

from sermm.cli.calibrate import main as calibrate
from sermm.cli.data import main as data
from sermm.cli.fuse import main as fuse
from sermm.cli.report import main as report
from sermm.cli.submit import main as submit
from sermm.tables import read_posteriors

EIGHT = ",".join(NAMINGS["baseline"])


def test_ox_labels_without_classes_say_how_to_drop_them(tmp_path):
    """Was: unknown class 'no_agreement' (the scores' classes are: ...), nothing more."""
    labels = write_labels(tmp_path)
    audio, text = write_systems(tmp_path, "baseline", with_ox_rows=True)
    for result in (
        invoke(fuse, "logreg", "--inputs", audio, text, "--labels", labels, "--split", "Development"),
        invoke(report, "--input", audio, "--labels", labels, "--split", "Development", "--n-boot", 10),
        invoke(data, "check", audio, "--labels", labels, "--split", "Development"),
    ):
        assert_one_line_error(
            result, "unknown class 'no_agreement'", "6 row(s) are O/X",
            "MSP-Podcast's O (other) and X (no_agreement) rows are not among the score files' classes",
            f"leave them out with --classes {EIGHT}",
        )
    dropped = invoke(fuse, "logreg", "--inputs", audio, text, "--labels", labels, "--split", "Development",
                     "--classes", EIGHT)
    assert dropped.exit_code == 0, dropped.output
    assert "note: " in dropped.stderr and "leaving out 6 MSP-Podcast O/X row(s)" in dropped.stderr
    assert f"{N_DEV} dev rows" in dropped.stdout


def test_calibrating_a_fused_file_without_ox_does_not_suggest_on_missing(tmp_path):
    """Was: 6 id(s) of labels_consensus.csv are missing from fused.csv (pass --on-missing drop ...)."""
    labels = write_labels(tmp_path)
    audio, text = write_systems(tmp_path, "lower", with_ox_rows=True)
    fused = tmp_path / "fused.csv"
    made = invoke(fuse, "logreg", "--inputs", audio, text, "--labels", labels, "--split", "Development",
                  "--classes", ",".join(NAMINGS["lower"]), "--output", fused)
    assert made.exit_code == 0, made.output
    assert len(read_posteriors(fused)) == N_DEV  # the O/X rows left the fused file
    dev = ["--labels", labels, "--split", "Development"]
    result = invoke(calibrate, "prior", "--uniform", "-i", fused, *dev, "-o", tmp_path / "bal.csv")
    line = assert_one_line_error(result, "unknown class", "O (other) and X (no_agreement)",
                                 "--classes angry,sad")
    assert "--on-missing" not in line
    scored = invoke(report, "--input", fused, *dev, "--n-boot", 10)
    assert "--on-missing" not in assert_one_line_error(scored, "O (other) and X (no_agreement)",
                                                       "--classes angry,sad,happy")
    fixed = invoke(calibrate, "prior", "--uniform", "-i", fused, "--labels", labels, "--split", "Development",
                   "--classes", "A,S,H,U,F,D,C,N", "-o", tmp_path / "bal.csv")
    assert fixed.exit_code == 0, fixed.output
    assert f"metrics on {N_DEV} labelled utterances" in fixed.stdout


def test_ids_with_a_wav_suffix_or_whitespace_name_the_cause(tmp_path):
    ids = dev_ids()[:8]
    bare = [i.removesuffix(".wav") for i in ids]
    a = write_posteriors(tmp_path / "a.csv", posteriors(1, ids), ids, NAMINGS["lower"])
    t = write_posteriors(tmp_path / "t.csv", posteriors(2, bare), bare, NAMINGS["lower"])
    line = assert_one_line_error(invoke(fuse, "mean", "--inputs", a, t),
                                 "the ids seem to differ only by a '.wav' suffix",
                                 f"'{bare[0]}' in {t}", f"'{ids[0]}' in {a}")
    assert "--on-missing drop" not in line  # it would fail: the inputs share no ids
    dropped = invoke(fuse, "mean", "--inputs", a, t, "--on-missing", "drop")
    assert_one_line_error(dropped, "the inputs share no ids: the ids seem to differ only by a '.wav' suffix")
    spaced = list(ids)
    spaced[3] = " " + spaced[3]
    s = write_posteriors(tmp_path / "s.csv", posteriors(2, ids), spaced, NAMINGS["lower"])
    assert_one_line_error(invoke(fuse, "mean", "--inputs", a, s), "1 id(s) of",
                          "differ only by surrounding whitespace")


def test_on_missing_drop_is_suggested_only_where_it_works(tmp_path):
    ids = dev_ids()[:8]
    a = write_posteriors(tmp_path / "a.csv", posteriors(1, ids), ids, NAMINGS["lower"])
    t = write_posteriors(tmp_path / "t.csv", posteriors(2, ids[2:]), ids[2:], NAMINGS["lower"])
    line = assert_one_line_error(invoke(fuse, "mean", "--inputs", a, t), "2 id(s) of", "--on-missing drop")
    assert "6 common ids" in line
    assert invoke(fuse, "mean", "--inputs", a, t, "--on-missing", "drop").exit_code == 0
    other = [f"x{i}" for i in range(8)]
    o = write_posteriors(tmp_path / "o.csv", posteriors(2, other), other, NAMINGS["lower"])
    line = assert_one_line_error(invoke(fuse, "mean", "--inputs", a, o), "share no ids at all",
                                 "--on-missing drop would not help")


def test_a_label_file_with_splits_and_no_split_says_pass_split(tmp_path):
    labels = write_labels(tmp_path)
    audio, text = write_systems(tmp_path, "lower")
    line = assert_one_line_error(
        invoke(fuse, "mean", "--inputs", audio, text, "--labels", labels, "--classes", ",".join(CODES)),
        f"10 id(s) of {labels} are missing", "has a Split_Set column (Development, Test1)",
        "pass --split (e.g. --split Development)")
    assert "--on-missing" not in line


def test_rows_that_lost_classes_point_to_renormalise_not_logits(tmp_path):
    """Was: probabilities sum to 0.9..., not 1 (...; if these are logits, pass --scores logit)."""
    ids = dev_ids()[:N_DEV]
    P = posteriors(1, ids)
    seven = write_posteriors(tmp_path / "seven.csv", P[:, :7], ids, NAMINGS["lower"][:7])
    line = assert_one_line_error(invoke(data, "check", seven), "sum to less than 1",
                                 "classes were probably dropped", "--renormalise", "--classes")
    assert "--scores logit" not in line
    out = tmp_path / "fixed.csv"
    result = invoke(calibrate, "prior", "--uniform", "-i", seven, "--renormalise",
                    "--train-prior", ",".join(f"{c}={1 / 7}" for c in NAMINGS["lower"][:7]), "-o", out)
    assert result.exit_code == 0, result.output
    expected = P[:, :7] / P[:, :7].sum(axis=1, keepdims=True)
    np.testing.assert_allclose(read_posteriors(out).values, expected, rtol=1e-6)
    subset = invoke(data, "check", seven, "--classes", "angry,sad,happy")
    assert subset.exit_code == 0, subset.output
    # a row that sums to more than one is still not explained away
    over = tmp_path / "over.csv"
    over.write_text("id,a,b\nu1,0.7,0.7\nu2,0.5,0.5\n")
    assert_one_line_error(invoke(data, "check", over), "sum to 1.4", "--scores logit")


def test_groups_from_labels_consensus_speakers(tmp_path):
    labels = write_labels(tmp_path)
    audio, text = write_systems(tmp_path, "lower")
    frame = pd.read_csv(labels)
    groups = tmp_path / "groups.csv"
    frame.rename(columns={"FileName": "id", "SpkrID": "group"})[["id", "group"]].to_csv(groups, index=False)
    speaker = tmp_path / "speaker.csv"
    frame = frame.rename(columns={"FileName": "id", "SpkrID": "speaker"})
    frame[["id", "speaker"]].to_csv(speaker, index=False)
    common = ["logreg", "--inputs", audio, text, "--labels", labels, "--split", "Development",
              "--classes", ",".join(NAMINGS["lower"])]
    outs = {}
    for name, extra in (("group", ["--groups", groups]), ("spkr", ["--groups", labels]),
                        ("column", ["--groups", speaker, "--group-column", "speaker"])):
        out = tmp_path / f"oof_{name}.csv"
        result = invoke(fuse, *common, *extra, "--cv-output", out)
        assert result.exit_code == 0, result.output
        assert "5-fold grouped CV" in result.stdout
        outs[name] = read_posteriors(out).values
    np.testing.assert_array_equal(outs["spkr"], outs["group"])
    np.testing.assert_array_equal(outs["column"], outs["group"])
    assert_one_line_error(invoke(fuse, *common, "--groups", speaker), f"{speaker}: no 'group' column",
                          "--group-column")
    assert_one_line_error(invoke(fuse, *common, "--groups", labels, "--group-column", "Room"),
                          f"{labels}: no column 'Room' (--group-column")


def test_submit_expects_the_ids_of_one_split_of_labels_consensus(tmp_path):
    labels = write_labels(tmp_path)
    ids = eval_ids()
    final = write_posteriors(tmp_path / "final.csv", posteriors(3, ids), ids, NAMINGS["baseline"])
    out = tmp_path / "submission.csv"
    result = invoke(submit, "--input", final, "--format", "msp-categorical", "--output", out,
                    "--ids", labels, "--split", "Test1")
    assert result.exit_code == 0, result.output
    assert f"every id of {labels} (Split_Set Test1) present once" in result.stdout
    written = pd.read_csv(out)
    assert written["FileName"].tolist() == sorted(ids)
    assert set(written["EmoClass"]) <= set(CODES)
    missing = invoke(submit, "--input", final, "--format", "msp-categorical", "--output", out,
                     "--ids", labels, "--split", "Development")
    assert_one_line_error(missing, "70 id(s) of", "are missing")
    assert_one_line_error(invoke(submit, "--input", final, "--format", "msp-categorical", "--output", out,
                                 "--split", "Test1"), "--split picks the expected ids", "--ids")
