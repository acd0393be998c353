"""sermm-data: convert the MSP-Podcast baseline's outputs, balance label sets, check files."""

import json
import math
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import assert_one_line_error
from scipy.special import softmax

from sermm.cli.data import balanced_rows, main
from sermm.tables import read_posteriors

CLASSES = ["angry", "sad", "happy", "surprise", "fear", "disgust", "contempt", "neutral"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


# ----------------------------------------------------------------------------------------- convert

# logits chosen so that the softmax is easy by hand
LOGITS = [
    [0, 0, 0, 0, 0, 0, 0, math.log(3)],  # exp: 1 x7 and 3, sum 10
    [math.log(4), math.log(2), 0, 0, 0, 0, 0, 0],  # exp: 4, 2, 1 x6, sum 12
    [2.5] * 8,  # uniform
]
EXPECTED = [
    [0.1] * 7 + [0.3],
    [4 / 12, 2 / 12] + [1 / 12] * 6,
    [0.125] * 8,
]
ONE_HOT = [
    [0, 0, 0, 0, 0, 0, 0, 1],  # neutral
    [1, 0, 0, 0, 0, 0, 0, 0],  # angry
    [0, 0.1, 0.6, 0.3, 0, 0, 0, 0],  # soft: happy
]
IDS = ["MSP-PODCAST_0007_0001.wav", "MSP-PODCAST_0002_0003.wav", "MSP-PODCAST_0005_0002.wav"]

FORMATS = {
    # what the baseline's eval_cat_ser_weighted.py writes: labels "0.0,1.0,...", logits "0.1234, -2.3456, ..."
    "baseline": (lambda v: ",".join(f"{x:.1f}" for x in v), lambda v: ", ".join(repr(float(x)) for x in v)),
    "bracketed": (lambda v: str([float(x) for x in v]), lambda v: str([float(x) for x in v])),
    "numpy-style": (
        lambda v: "[" + " ".join(repr(float(x)) for x in v) + "]",
        lambda v: "[ " + "  ".join(repr(float(x)) for x in v) + " ]",
    ),
    "plain": (lambda v: ",".join(repr(float(x)) for x in v), lambda v: ",".join(repr(float(x)) for x in v)),
}


def baseline_csv(path, fmt="baseline", labels=ONE_HOT, logits=LOGITS, ids=IDS):
    label_text, logit_text = FORMATS[fmt]
    lines = ["Filename,Label,Prediction"]
    lines += [f'{i},"{label_text(y)}","{logit_text(p)}"' for i, y, p in zip(ids, labels, logits, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_convert_msp_baseline(tmp_path, fmt):
    source = baseline_csv(tmp_path / "dev.csv", fmt)
    out, labels = tmp_path / "base_dev.csv", tmp_path / "dev_labels.csv"
    result = invoke("convert", "--from", "msp-baseline", source, "--output", out, "--labels-output", labels)
    assert result.exit_code == 0, result.output
    assert result.output == f"{source}: 3 rows (msp-baseline, 8 classes) -> {out} and {labels}\n"
    frame = pd.read_csv(out)
    assert frame.columns.tolist() == ["id", *CLASSES]
    assert frame["id"].tolist() == IDS
    np.testing.assert_allclose(frame[CLASSES].to_numpy(), EXPECTED, rtol=1e-12)
    meta = json.loads((tmp_path / "base_dev.csv.meta.json").read_text())
    assert meta.pop("created")
    assert meta == {
        "system": "msp-baseline",
        "classes": CLASSES,
        "values": "probability",
        "inputs": [os.path.relpath(source, tmp_path)],
    }
    assert labels.read_text() == (
        '"id","label"\n'
        '"MSP-PODCAST_0007_0001.wav","neutral"\n'
        '"MSP-PODCAST_0002_0003.wav","angry"\n'
        '"MSP-PODCAST_0005_0002.wav","happy"\n'
    )
    check = invoke("check", out, "--labels", labels)
    assert check.exit_code == 0, check.output
    assert "system 'msp-baseline' (sidecar)" in check.output
    assert "together: 3 aligned rows" in check.output


def test_convert_many_rows_matches_scipy(tmp_path):
    rng = np.random.default_rng(3)
    n = 2000
    logits = rng.normal(scale=3.0, size=(n, 8))
    labels = np.eye(8)[rng.integers(0, 8, n)]
    ids = [f"MSP-PODCAST_{i:05d}.wav" for i in range(n)]
    source = baseline_csv(tmp_path / "dev.csv", "baseline", labels, logits, ids)
    out = tmp_path / "base_dev.parquet"
    result = invoke(
        "convert", "--from", "msp-baseline", source, "--output", out, "--labels-output", tmp_path / "l.csv"
    )
    assert result.exit_code == 0, result.output
    table = read_posteriors(out)
    assert table.system == "msp-baseline"
    assert table.columns == CLASSES
    np.testing.assert_array_equal(table.ids, ids)
    np.testing.assert_allclose(table.values, softmax(logits, axis=1), rtol=1e-12)
    written = pd.read_csv(tmp_path / "l.csv")
    assert written["label"].tolist() == [CLASSES[k] for k in labels.argmax(axis=1)]


def test_convert_without_label_column(tmp_path):
    source = tmp_path / "test3.csv"
    source.write_text('Filename,Prediction\na.wav,"0, 0, 0, 0, 0, 0, 0, 0"\n')
    out = tmp_path / "test3_scores.csv"
    result = invoke("convert", "--from", "msp-baseline", source, "--output", out)
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(pd.read_csv(out)[CLASSES].to_numpy(), [[0.125] * 8])
    assert_one_line_error(
        invoke(
            "convert",
            "--from",
            "msp-baseline",
            source,
            "--output",
            out,
            "--labels-output",
            tmp_path / "l.csv",
        ),
        f"{source}: --labels-output needs a 'Label' column",
    )


BAD_BASELINE = [
    (
        'Filename,Label,Prediction\na,"1,0,0,0,0,0,0,0","1,2,3,4,5,6,7,8"\nb,"1,0,0,0,0,0,0,0","1,2,3,4,5,6,7"\n',
        ["line 3: column 'Prediction': expected 8 numbers (A, S, H, U, F, D, C, N), got 7 (1 such row(s))"],
    ),
    (
        'Filename,Label,Prediction\na,"[1, 0, 0, 0, 0, 0, 0, 0, 0]","[1, 2, 3, 4, 5, 6, 7, 8]"\n',
        ["line 2: column 'Label': expected 8 numbers", "got 9"],
    ),
    ('Filename,Label,Prediction\na,"1,0,0,0,0,0,0,0",""\n', ["line 2: column 'Prediction'", "got 0"]),
    (
        'Filename,Label,Prediction\na,"1,0,0,0,0,0,0,0","[1, 2, x3, 4, 5, 6, 7, 8]"\n',
        ["line 2: column 'Prediction': non-numeric value 'x3' (number 3 of 8)"],
    ),
    (
        'Filename,Label,Prediction\na,"1,0,0,0,0,0,0,0","1, 2, 3, 4, 5, 6, 7, nan"\n',
        ["line 2: column 'Prediction': NaN value 'nan' (number 8 of 8)"],
    ),
    (
        'Filename,Label,Prediction\na,"1,0,0,0,0,0,0,0","1, 2, 3, inf, 5, 6, 7, 8"\n',
        ["line 2: column 'Prediction': infinite value 'inf'"],
    ),
    (
        'Filename,Label,Prediction\na,"0,0,0,0,0,0,0,0","1, 2, 3, 4, 5, 6, 7, 8"\n',
        ["line 2: column 'Label': no class has a positive value"],
    ),
    ('Filename,Label\na,"1,0,0,0,0,0,0,0"\n', ["no 'Prediction' column (columns are: Filename, Label)"]),
    ('utt,Label,Prediction\na,"1,0,0,0,0,0,0,0","1,2,3,4,5,6,7,8"\n', ["no 'id' column"]),
    (
        'Filename,Label,Prediction\na,"1,0,0,0,0,0,0,0","1,2,3,4,5,6,7,8"\na,"1,0,0,0,0,0,0,0","1,2,3,4,5,6,7,8"\n',
        ["duplicate id 'a'"],
    ),
    ("Filename,Label,Prediction\n", ["no data rows"]),
]


BAD_BASELINE_IDS = [
    "short-row", "long-label", "empty-field", "non-numeric", "nan", "inf", "zero-label",
    "no-prediction", "no-id", "duplicate-id", "header-only",
]  # fmt: skip


@pytest.mark.parametrize("content, fragments", BAD_BASELINE, ids=BAD_BASELINE_IDS)
def test_convert_errors(tmp_path, content, fragments):
    source = tmp_path / "dev.csv"
    source.write_text(content)
    out, labels = tmp_path / "out.csv", tmp_path / "labels.csv"
    result = invoke("convert", "--from", "msp-baseline", source, "--output", out, "--labels-output", labels)
    assert_one_line_error(result, f"{source}: ", *fragments)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dev.csv"]


def test_convert_help_names_the_format():
    result = invoke("convert", "--help")
    assert result.exit_code == 0
    assert "sermm-data convert --from msp-baseline" in result.output


# ----------------------------------------------------------------------------------------- balance


def label_file(path, labels, ids=None):
    ids = ids or [f"u{i:03d}" for i in range(len(labels))]
    pd.DataFrame({"id": ids, "label": labels}).to_csv(path, index=False)
    return path


def test_balance_counts_and_messages(tmp_path):
    labels = ["a"] * 10 + ["b"] * 5 + ["c"] * 2
    order = np.random.default_rng(1).permutation(len(labels))
    source = label_file(tmp_path / "dev.csv", [labels[i] for i in order])
    out = tmp_path / "bal.csv"
    result = invoke("balance", "--labels", source, "--per-class", 4, "--seed", 0, "--output", out)
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"class 'c': only 2 item(s), keeping all of them\n{out}: 10 of 17 ids, 3 classes, up to 4 each\n"
    )
    original = pd.read_csv(source)
    kept = pd.read_csv(out)
    assert kept.columns.tolist() == ["id", "label"]
    assert kept["label"].value_counts().to_dict() == {"a": 4, "b": 4, "c": 2}
    # a subset of the input, in the input's order, with the input's labels
    merged = kept.merge(original, on="id", suffixes=("", "_orig"))
    assert (merged["label"] == merged["label_orig"]).all()
    positions = original.reset_index().set_index("id").loc[kept["id"], "index"].to_numpy()
    assert (np.diff(positions) > 0).all()
    assert set(original.loc[original["label"] == "c", "id"]) <= set(kept["id"])


def test_balance_is_deterministic(tmp_path):
    rng = np.random.default_rng(5)
    source = label_file(tmp_path / "dev.csv", rng.choice(["x", "y", "z"], size=600).tolist())
    outputs = []
    for seed, name in [(0, "a.csv"), (0, "b.csv"), (1, "c.csv")]:
        result = invoke(
            "balance", "--labels", source, "--per-class", 50, "--seed", seed, "--output", tmp_path / name
        )
        assert result.exit_code == 0, result.output
        outputs.append((tmp_path / name).read_text())
    assert outputs[0] == outputs[1]
    assert outputs[0] != outputs[2]
    assert pd.read_csv(tmp_path / "c.csv")["label"].value_counts().to_dict() == {"x": 50, "y": 50, "z": 50}


def test_balanced_rows_draws_uniformly_without_replacement():
    labels = np.array(["a"] * 10 + ["b"] * 3 + ["c"] * 7, dtype=object)
    counts = np.zeros(len(labels))
    for seed in range(600):
        rows = balanced_rows(labels, 5, seed)
        assert len(np.unique(rows)) == len(rows) == 13
        counts[rows] += 1
    np.testing.assert_allclose(counts[:10] / 600, 0.5, atol=0.08)
    np.testing.assert_array_equal(counts[10:13], 600)
    np.testing.assert_allclose(counts[13:] / 600, 5 / 7, atol=0.08)


CONSENSUS = (
    "FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set\n"
    "f1.wav,A,5,2,5,1,Male,Development\n"
    "f2.wav,A,5,2,5,1,Male,Development\n"
    "f3.wav,N,4,4,4,1,Male,Development\n"
    "f4.wav,X,4,4,4,2,Female,Development\n"
    "f5.wav,O,4,4,4,2,Female,Development\n"
    "f6.wav,A,5,2,5,2,Female,Train\n"
    "f7.wav,H,4,6,4,3,Male,Development\n"
)


def test_balance_msp_consensus(tmp_path):
    source = tmp_path / "labels_consensus.csv"
    source.write_text(CONSENSUS)
    out = tmp_path / "dev_bal.csv"
    result = invoke(
        "balance", "--labels", source, "--split", "Development", "--classes", "angry,happy,neutral",
        "--per-class", 1, "--output", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output == f"{out}: 3 of 4 ids, 3 classes, up to 1 each\n"
    kept = pd.read_csv(out)
    assert kept.columns.tolist() == ["id", "label"]
    assert sorted(kept["label"]) == ["angry", "happy", "neutral"]
    assert kept.loc[kept["label"] == "angry", "id"].item() in {"f1.wav", "f2.wav"}


@pytest.mark.parametrize(
    "content, extra, fragments",
    [
        ("id,arousal\na,3\n", [], ["balance needs categorical labels"]),
        ("id,label\na,x\nb,y\n", ["--classes", "v,w"], ["no labels of the classes v, w"]),
        ("id,label\na,x\na,y\n", [], ["duplicate id 'a'"]),
    ],
)
def test_balance_errors(tmp_path, content, extra, fragments):
    source = tmp_path / "labels.csv"
    source.write_text(content)
    out = tmp_path / "bal.csv"
    result = invoke("balance", "--labels", source, "--per-class", 2, "--output", out, *extra)
    assert_one_line_error(result, *fragments)
    assert not out.exists()


def test_balance_class_without_items_is_named(tmp_path):
    source = label_file(tmp_path / "dev.csv", ["a", "b", "a", "c"])
    out = tmp_path / "bal.csv"
    result = invoke("balance", "--labels", source, "--classes", "a,b,z", "--per-class", 1, "--output", out)
    assert result.exit_code == 0, result.output
    assert (
        result.output
        == f"class 'z': no items (named in --classes)\n{out}: 2 of 3 ids, 2 classes, up to 1 each\n"
    )
    assert sorted(pd.read_csv(out)["label"]) == ["a", "b"]


def test_balance_per_class_must_be_positive(tmp_path):
    source = label_file(tmp_path / "dev.csv", ["a", "b"])
    result = invoke("balance", "--labels", source, "--per-class", 0, "--output", tmp_path / "o.csv")
    assert result.exit_code == 2
    assert "--per-class" in result.output


# ------------------------------------------------------------------------------------------- check


def test_check_describes_each_kind(tmp_path):
    post = tmp_path / "words_dev.csv"
    post.write_text("id,joy,anger\na,0.75,0.25\nb,0.5,0.5\n")
    (tmp_path / "words_dev.csv.meta.json").write_text(
        json.dumps({"system": "words", "classes": ["joy", "anger"]})
    )
    attr = tmp_path / "ridge.csv"
    attr.write_text("id,valence,arousal\na,3.1,2.9\n")
    emb = tmp_path / "words_dev.emb.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "e0": [0.1, 0.2], "e1": [0.3, 0.4], "e2": [0.0, 1.0]}), emb)
    labels = tmp_path / "labels.csv"
    labels.write_text("id,label,arousal\na,joy,3\nb,anger,2\nc,joy,1\n")
    result = invoke("check", post, attr, emb, labels)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"{post}: posterior, 2 rows, 2 classes (joy, anger), system 'words' (sidecar)",
        f"{attr}: attribute, 1 rows, columns valence, arousal, system 'ridge' (file name, no sidecar system)",
        f"{emb}: embedding, 2 rows, 3 dimensions (e0..e2), system 'words_dev.emb' "
        "(file name, no sidecar system)",
        f"{labels}: labels, 3 rows, 2 classes (anger 1, joy 2), attributes arousal",
    ]


def test_check_stops_at_first_bad_file(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("id,a,b\nx,0.5,0.5\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("id,a,b\nx,0.5,0.6\n")
    worse = tmp_path / "worse.csv"
    worse.write_text("")
    result = invoke("check", good, bad, worse)
    assert_one_line_error(result, f"{bad}: line 2: probabilities sum to 1.1")
    assert (
        result.stdout
        == f"{good}: posterior, 1 rows, 2 classes (a, b), system 'good' (file name, no sidecar system)\n"
    )


def test_check_kind_forced(tmp_path):
    path = tmp_path / "scores.csv"
    path.write_text("id,arousal,valence\nx,0.5,0.5\n")
    assert invoke("check", path).output.startswith(f"{path}: attribute")
    assert invoke("check", path, "--kind", "posterior").output.startswith(f"{path}: posterior")
    result = invoke("check", path, "--kind", "embedding")
    assert_one_line_error(result, "embedding columns must be named e0..eN")


def test_check_together_needs_score_files(tmp_path):
    scores = tmp_path / "a.csv"
    scores.write_text("id,x,y\nu,0.5,0.5\n")
    labels = tmp_path / "l.csv"
    labels.write_text("id,label\nu,x\n")
    assert_one_line_error(invoke("check", scores, labels, "--together"), "give score files as FILES")
