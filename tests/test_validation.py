"""Every validation case of the core, fed as a bad file to a CLI: one line, exit 1, no output."""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import assert_one_line_error

from sermm.align import load_aligned
from sermm.cli.data import main as data_main
from sermm.cli.submit import main as submit_main
from sermm.tables import read_posteriors


def invoke(cli, args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def no_outputs(directory, name="out.csv"):
    """Neither the output nor a leftover temporary file of it exists."""
    return not any(p.name == name or p.name.startswith(f".{name}.") for p in directory.iterdir())


def run_submit(tmp_path, path, *extra):
    out = tmp_path / "out.csv"
    return invoke(submit_main, ["--input", path, "--format", "msp-categorical", "--output", out, *extra])


def run_check(tmp_path, path, *extra):
    return invoke(data_main, ["check", path, *extra])


CLIS = {"submit": run_submit, "check": run_check}

# name, file content, fragments the one-line message must hold ("{path}" is the bad file)
BAD_CSV = [
    ("missing-id", "name,angry,sad\na,0.5,0.5\n", ["{path}: no 'id' column", "name, angry, sad"]),
    (
        "duplicate-ids",
        "id,angry,sad\na,0.5,0.5\nb,0.5,0.5\na,0.2,0.8\n",
        ["{path}: duplicate id 'a'", "line 2, line 4", "1 id(s) appear more than once"],
    ),
    ("empty-id", "id,angry,sad\na,0.5,0.5\n,0.5,0.5\n", ["{path}: line 3: empty id"]),
    ("empty-file", "", ["{path}: empty file"]),
    ("header-only", "id,angry,sad\n", ["{path}: no data rows"]),
    (
        "truncated-row",
        "id,angry,sad\na,0.5,0.5\nb,0.",
        ["{path}: line 3: expected 3 fields as in the header, got 2 (ragged or truncated row)"],
    ),
    (
        "ragged-row",
        "id,angry,sad\na,0.5,0.5\nb,0.5,0.25,0.25\nc,1,0\n",
        ["{path}: line 3: expected 3 fields as in the header, got 4"],
    ),
    (
        "non-numeric",
        "id,angry,sad\na,0.5,0.5\nb,0.5,abc\n",
        ["{path}: line 3: column 'sad': non-numeric value 'abc'"],
    ),
    ("nan", "id,angry,sad\na,0.5,0.5\nb,NaN,0.5\n", ["{path}: line 3: column 'angry': missing or NaN value"]),
    ("empty-value", "id,angry,sad\na,0.5,\n", ["{path}: line 2: column 'sad': missing or NaN value"]),
    ("inf", "id,angry,sad\na,0.5,0.5\nb,0,inf\n", ["{path}: line 3: column 'sad': infinite value (inf)"]),
    (
        "negative-probability",
        "id,angry,sad\na,0.5,0.5\nb,1.25,-0.25\n",
        ["{path}: line 3: column 'sad': negative probability -0.25", "pass --scores logit"],
    ),
    (
        "sum-not-one",
        "id,angry,sad\na,0.5,0.5\nb,0.6,0.6\nc,0.7,0.7\n",
        ["{path}: line 3: probabilities sum to 1.2, not 1", "2 such row(s)"],
    ),
    (
        "sum-off-by-2e-3",
        "id,angry,sad\na,0.5,0.502\n",
        ["{path}: line 2: probabilities sum to 1.002, not 1"],
    ),
    ("duplicate-column", "id,angry,angry\na,0.5,0.5\n", ["{path}: a class column appears twice"]),
    ("no-class-columns", "id\na\n", ["{path}: no class columns besides 'id'"]),
]


@pytest.mark.parametrize("cli", sorted(CLIS))
@pytest.mark.parametrize("name, content, fragments", BAD_CSV, ids=[c[0] for c in BAD_CSV])
def test_bad_csv_is_one_line_error(tmp_path, cli, name, content, fragments):
    path = tmp_path / f"{name}.csv"
    path.write_text(content)
    result = CLIS[cli](tmp_path, path)
    assert_one_line_error(result, *(f.format(path=path) for f in fragments))
    assert no_outputs(tmp_path)


def _parquet(path, columns):
    pq.write_table(pa.table(columns), path)


BAD_PARQUET = [
    ("garbage", None, ["{path}: unreadable Parquet file"]),
    (
        "duplicate-ids",
        {"id": ["a", "b", "a"], "angry": [0.5, 0.5, 0.5], "sad": [0.5, 0.5, 0.5]},
        ["{path}: duplicate id 'a' (row 1, row 3)"],
    ),
    ("nan", {"id": ["a", "b"], "angry": [0.5, np.nan], "sad": [0.5, 0.5]}, ["{path}: row 2: column 'angry'"]),
    (
        "sum-not-one",
        {"id": ["a", "b"], "angry": [0.5, 0.9], "sad": [0.5, 0.9]},
        ["{path}: row 2: probabilities sum to 1.8"],
    ),
    ("missing-id", {"name": ["a"], "angry": [0.5], "sad": [0.5]}, ["{path}: no 'id' column"]),
    ("no-rows", {"id": pa.array([], pa.string()), "angry": pa.array([], pa.float64())}, ["no data rows"]),
]


@pytest.mark.parametrize("cli", sorted(CLIS))
@pytest.mark.parametrize("name, columns, fragments", BAD_PARQUET, ids=[c[0] for c in BAD_PARQUET])
def test_bad_parquet_is_one_line_error(tmp_path, cli, name, columns, fragments):
    path = tmp_path / f"{name}.parquet"
    if columns is None:
        path.write_bytes(b"PAR1 these are not parquet pages \x00\x01\x02 garbage")
    else:
        _parquet(path, columns)
    result = CLIS[cli](tmp_path, path)
    assert_one_line_error(result, *(f.format(path=path) for f in fragments))
    assert no_outputs(tmp_path)


@pytest.mark.parametrize("cli", sorted(CLIS))
@pytest.mark.parametrize("offset", [5e-4, -5e-4, 9e-4])
def test_rows_within_sum_tolerance_pass(tmp_path, cli, offset):
    path = tmp_path / "near.csv"
    path.write_text(f"id,angry,sad\na,0.25,{0.75 + offset!r}\nb,0.5,0.5\n")
    result = CLIS[cli](tmp_path, path)
    assert result.exit_code == 0, result.output
    values = read_posteriors(path).values
    np.testing.assert_allclose(values[0], [0.25, 0.75 + offset])  # accepted, not renormalised


def test_missing_file_and_directory(tmp_path):
    for cli in CLIS.values():
        assert_one_line_error(cli(tmp_path, tmp_path / "nope.csv"), "nope.csv: no such file")
    result = invoke(submit_main, ["--input", tmp_path, "--format", "msp-categorical", "--output", "o.csv"])
    assert result.exit_code == 2  # click rejects a directory before sermm reads anything


# ------------------------------------------------------------------------------------- sidecars, logits

LOGITS = "id,angry,sad,happy\na,2.0,0.0,-1.0\nb,-0.5,0.5,3.0\n"
LOGIT_MATRIX = np.array([[2.0, 0.0, -1.0], [-0.5, 0.5, 3.0]])


def _softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("cli", sorted(CLIS))
def test_undeclared_logits_are_rejected(tmp_path, cli):
    path = tmp_path / "logits.csv"
    path.write_text(LOGITS)
    assert_one_line_error(
        CLIS[cli](tmp_path, path),
        f"{path}: line 2: column 'happy': negative probability -1",
        "if these are logits, pass --scores logit",
    )
    assert no_outputs(tmp_path)


@pytest.mark.parametrize("declare", ["flag", "sidecar"])
def test_declared_logits_are_softmaxed(tmp_path, declare):
    path = tmp_path / "logits.csv"
    path.write_text(LOGITS)
    extra = ["--scores", "logit"] if declare == "flag" else []
    if declare == "sidecar":
        (tmp_path / "logits.csv.meta.json").write_text(json.dumps({"system": "text", "values": "logit"}))
    check = run_check(tmp_path, path, *extra)
    assert check.exit_code == 0, check.output
    assert "3 classes (angry, sad, happy), logits softmaxed" in check.output
    submit = run_submit(tmp_path, path, *extra)
    assert submit.exit_code == 0, submit.output
    assert (tmp_path / "out.csv").read_text() == "FileName,EmoClass\na,A\nb,H\n"
    table = read_posteriors(path, scores="logit" if declare == "flag" else "auto")
    np.testing.assert_allclose(table.values, _softmax(LOGIT_MATRIX), rtol=1e-12)
    np.testing.assert_allclose(table.values[0, 0], np.exp(2) / (np.exp(2) + 1 + np.exp(-1)))


def test_probability_flag_overrides_logit_sidecar(tmp_path):
    path = tmp_path / "logits.csv"
    path.write_text(LOGITS)
    (tmp_path / "logits.csv.meta.json").write_text(json.dumps({"values": "logit"}))
    assert_one_line_error(run_check(tmp_path, path, "--scores", "probability"), "negative probability")


@pytest.mark.parametrize(
    "sidecar, fragments",
    [
        ("{not json", ["logits.csv.meta.json: not valid JSON"]),
        ("[1, 2]", ["logits.csv.meta.json: expected a JSON object"]),
        ('{"values": "scores"}', ["logits.csv.meta.json: 'values' must be 'probability' or 'logit'"]),
    ],
)
@pytest.mark.parametrize("cli", sorted(CLIS))
def test_bad_sidecar(tmp_path, cli, sidecar, fragments):
    path = tmp_path / "logits.csv"
    path.write_text(LOGITS)
    (tmp_path / "logits.csv.meta.json").write_text(sidecar)
    assert_one_line_error(CLIS[cli](tmp_path, path), *fragments)
    assert no_outputs(tmp_path)


# ------------------------------------------------------------------------------------- labels

BAD_LABELS = [
    ("missing-id", "name,label\na,angry\n", ["{path}: no 'id' column"]),
    ("duplicate-ids", "id,label\na,angry\na,sad\n", ["{path}: duplicate id 'a' (line 2, line 3)"]),
    ("empty-label", "id,label\na,angry\nb,\n", ["{path}: row 2: empty label"]),
    ("no-label-columns", "id,speaker\na,s1\n", ["{path}: no label columns"]),
    (
        "unknown-msp-code",
        "FileName,EmoClass,Split_Set\nx.wav,A,Train\ny.wav,Z,Train\n",
        ["{path}: unknown EmoClass code 'Z'"],
    ),
    (
        "non-numeric-attribute",
        "id,arousal\na,3\nb,high\n",
        ["{path}: line 3: column 'arousal': non-numeric value 'high'"],
    ),
    ("empty-file", "", ["{path}: empty file"]),
]


@pytest.mark.parametrize("name, content, fragments", BAD_LABELS, ids=[c[0] for c in BAD_LABELS])
def test_bad_label_file(tmp_path, name, content, fragments):
    path = tmp_path / f"{name}.csv"
    path.write_text(content)
    assert_one_line_error(
        run_check(tmp_path, path, "--kind", "labels"), *(f.format(path=path) for f in fragments)
    )


def _write(path, text):
    path.write_text(text)
    return path


def test_unknown_class_in_labels(tmp_path):
    scores = _write(tmp_path / "a.csv", "id,angry,sad\nx,0.5,0.5\ny,0.1,0.9\nz,1,0\n")
    labels = _write(tmp_path / "labels.csv", "id,label\nz,angry\nx,sad\ny,joy\n")
    assert_one_line_error(
        run_check(tmp_path, scores, "--labels", labels),
        f"{labels}: id 'y': unknown class 'joy'",
        "the scores' classes are: angry, sad",
    )


def test_unknown_label_with_classes_subset_is_dropped(tmp_path):
    scores = _write(tmp_path / "a.csv", "id,angry,sad,happy\nx,0.5,0.25,0.25\ny,0.2,0.6,0.2\nz,0.1,0.1,0.8\n")
    labels = _write(tmp_path / "labels.csv", "id,label\nx,angry\ny,sad\nz,happy\n")
    result = run_check(tmp_path, scores, "--labels", labels, "--classes", "angry,sad")
    assert result.exit_code == 0, result.output
    assert "a.csv: posterior, 3 rows, 2 classes (angry, sad)" in result.output
    assert f"together: 2 aligned rows, 2 columns, systems a and labels {labels}" in result.output
    aligned = load_aligned([str(scores)], str(labels), classes="angry,sad")
    assert aligned.ids.tolist() == ["x", "y"]
    np.testing.assert_allclose(aligned.tables[0].values, [[2 / 3, 1 / 3], [0.25, 0.75]])
    np.testing.assert_array_equal(aligned.y(), [0, 1])


@pytest.mark.parametrize(
    "classes, fragments",
    [
        ("angry,joy", ["--classes names joy, not a column of this file", "its classes: angry, sad, happy"]),
        ("angry,angry", ["--classes: a class is named twice"]),
        (",", ["--classes: no class names given"]),
    ],
)
def test_bad_classes_option(tmp_path, classes, fragments):
    scores = _write(tmp_path / "a.csv", "id,angry,sad,happy\nx,0.5,0.25,0.25\n")
    assert_one_line_error(run_check(tmp_path, scores, "--classes", classes), *fragments)


def test_classes_subset_with_no_mass_left(tmp_path):
    scores = _write(tmp_path / "a.csv", "id,angry,sad,happy\nx,0.5,0.5,0\ny,0,0,1\n")
    assert_one_line_error(
        run_check(tmp_path, scores, "--classes", "angry,sad"),
        f"{scores}: line 3: all probability mass lies outside --classes",
    )


# ------------------------------------------------------------------------------------- several files


def test_class_sets_disagree(tmp_path):
    a = _write(tmp_path / "a.csv", "id,angry,sad,happy\nx,0.5,0.25,0.25\n")
    b = _write(tmp_path / "b.csv", "id,angry,sad,neutral\nx,0.5,0.25,0.25\n")
    assert_one_line_error(
        invoke(data_main, ["check", a, b, "--together"]),
        f"class sets disagree: {a} has happy that {b} lacks, which has neutral extra",
        "--classes",
    )
    ok = invoke(data_main, ["check", a, b, "--together", "--classes", "angry,sad"])
    assert ok.exit_code == 0, ok.output
    assert "together: 1 aligned rows, 2 columns, systems a, b" in ok.output


def test_column_order_does_not_matter(tmp_path):
    a = _write(tmp_path / "a.csv", "id,angry,sad\nx,0.5,0.5\ny,0.25,0.75\n")
    b = _write(tmp_path / "b.csv", "id,sad,angry\ny,0.9,0.1\nx,0.2,0.8\n")
    result = invoke(data_main, ["check", a, b, "--together"])
    assert result.exit_code == 0, result.output
    aligned = load_aligned([str(a), str(b)])
    np.testing.assert_allclose(aligned.tables[1].values, [[0.8, 0.2], [0.1, 0.9]])


def test_kinds_disagree(tmp_path):
    a = _write(tmp_path / "a.csv", "id,angry,sad\nx,0.5,0.5\n")
    b = _write(tmp_path / "b.csv", "id,arousal,valence\nx,3,4\n")
    assert_one_line_error(
        invoke(data_main, ["check", a, b, "--together"]), "the inputs are not all of one kind"
    )


def _scores(path, ids):
    frame = pd.DataFrame({"id": ids, "angry": 0.5, "sad": 0.5})
    frame.to_csv(path, index=False)
    return path


def test_ids_missing_in_one_file(tmp_path):
    a = _scores(tmp_path / "a.csv", ["u1", "u2", "u3", "u4", "u5", "u6", "u7"])
    b = _scores(tmp_path / "b.csv", ["u1", "u2"])
    message = assert_one_line_error(
        invoke(data_main, ["check", a, b, "--together"]),
        f"5 id(s) of {a} are missing from {b} (e.g. 'u3', 'u4', 'u5' ...)",
        "--on-missing drop",
    )
    assert "'u6'" not in message
    dropped = invoke(data_main, ["check", a, b, "--together", "--on-missing", "drop"])
    assert dropped.exit_code == 0, dropped.output
    assert "together: 2 aligned rows" in dropped.output


def test_ids_missing_from_labels(tmp_path):
    a = _scores(tmp_path / "a.csv", ["u1", "u2", "u3"])
    labels = _write(tmp_path / "labels.csv", "id,label\nu1,angry\nu2,sad\nu9,sad\n")
    assert_one_line_error(
        run_check(tmp_path, a, "--labels", labels), f"1 id(s) of {labels} are missing from {a} (e.g. 'u9')"
    )
    dropped = run_check(tmp_path, a, "--labels", labels, "--on-missing", "drop")
    assert dropped.exit_code == 0, dropped.output
    assert "together: 2 aligned rows" in dropped.output
    aligned = load_aligned([str(a)], str(labels), on_missing="drop")
    assert aligned.ids.tolist() == ["u1", "u2"]
    assert aligned.labels.labels.tolist() == ["angry", "sad"]


def test_files_share_no_ids(tmp_path):
    a = _scores(tmp_path / "a.csv", ["u1"])
    b = _scores(tmp_path / "b.csv", ["u2"])
    assert_one_line_error(
        invoke(data_main, ["check", a, b, "--together", "--on-missing", "drop"]), "the inputs share no ids"
    )


# ------------------------------------------------------------------------------------- MSP-Podcast layouts

CONSENSUS = (
    "FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set\n"
    "MSP-PODCAST_0001_0001.wav,A,5.2,2.0,5.6,1,Male,Train\n"
    "MSP-PODCAST_0001_0002.wav,N,4.0,4.0,4.2,1,Male,Development\n"
    "MSP-PODCAST_0002_0001.wav,H,4.8,5.6,4.4,2,Female,Development\n"
    "MSP-PODCAST_0002_0002.wav,X,3.6,3.8,3.6,2,Female,Development\n"
    "MSP-PODCAST_0003_0001.wav,S,2.4,2.2,3.0,3,Female,Test1\n"
)


def test_msp_attribute_names(tmp_path):
    path = _write(
        tmp_path / "attr.csv",
        "FileName,EmoAct,EmoVal,EmoDom\nMSP-PODCAST_0001_0002.wav,4.1,3.9,4.3\nMSP-PODCAST_0002_0001.wav,5,6,4\n",
    )
    result = run_check(tmp_path, path)
    assert result.exit_code == 0, result.output
    assert (
        result.output == f"{path}: attribute, 2 rows, columns arousal, valence, dominance, system 'attr' "
        "(file name, no sidecar system)\n"
    )
    labels = _write(tmp_path / "consensus.csv", CONSENSUS)
    together = run_check(tmp_path, path, "--labels", labels, "--split", "Development", "--on-missing", "drop")
    assert together.exit_code == 0, together.output
    assert "together: 2 aligned rows, 3 columns" in together.output


def test_msp_attribute_names_bad_value(tmp_path):
    path = _write(tmp_path / "attr.csv", "FileName,EmoAct,EmoVal,EmoDom\nx.wav,4.1,,4.3\n")
    assert_one_line_error(run_check(tmp_path, path), f"{path}: line 2: column 'EmoVal': missing or NaN value")


def test_unknown_attribute_column(tmp_path):
    path = _write(tmp_path / "attr.csv", "id,arousal,valence,loudness\nx,1,2,3\n")
    assert_one_line_error(
        run_check(tmp_path, path, "--kind", "attribute"), f"{path}: attribute columns must be", "got loudness"
    )


def test_labels_consensus_with_split(tmp_path):
    labels = _write(tmp_path / "labels_consensus.csv", CONSENSUS)
    result = run_check(tmp_path, labels, "--split", "Development")
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"{labels}: labels, 3 rows, 3 classes (happy 1, neutral 1, no_agreement 1), "
        "attributes arousal, valence, dominance\n"
    )
    scores = _write(
        tmp_path / "a.csv",
        "id,angry,sad,happy,neutral\nMSP-PODCAST_0001_0002.wav,0.1,0.1,0.2,0.6\n"
        "MSP-PODCAST_0002_0001.wav,0.1,0.1,0.7,0.1\nMSP-PODCAST_0002_0002.wav,0.25,0.25,0.25,0.25\n",
    )
    # no_agreement (X) is not a class of the scores: an error, unless --classes leaves it out
    assert_one_line_error(
        run_check(tmp_path, scores, "--labels", labels, "--split", "Development"),
        f"{labels}: id 'MSP-PODCAST_0002_0002.wav': unknown class 'no_agreement'",
    )
    kept = run_check(
        tmp_path, scores, "--labels", labels, "--split", "Development", "--classes", "angry,sad,happy,neutral"
    )
    assert kept.exit_code == 0, kept.output
    assert "together: 2 aligned rows, 4 columns" in kept.output


@pytest.mark.parametrize(
    "content, split, fragments",
    [
        (CONSENSUS, "Dev", ["no rows with Split_Set 'Dev' (found: Development, Test1, Train)"]),
        ("id,label\na,angry\n", "Development", ["--split needs a 'Split_Set' column"]),
    ],
)
def test_bad_split(tmp_path, content, split, fragments):
    labels = _write(tmp_path / "labels.csv", content)
    assert_one_line_error(run_check(tmp_path, labels, "--split", split), f"{labels}: ", *fragments)
