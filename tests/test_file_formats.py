"""Files as teams have them: compressed CSV, TSV, other separators, other extensions, id headers
in any case, extra text columns (issue 12, "Files")."""

from __future__ import annotations

import csv
import gzip
import io

import numpy as np
import pandas as pd
import pytest
from conftest import GO, assert_one_line_error, invoke
from msp_fake import CODES, N_DEV, NAMINGS, dev_ids, posteriors, write_labels, write_posteriors, write_systems

from sermm.cli.calibrate import main as calibrate
from sermm.cli.data import main as data
from sermm.cli.fuse import main as fuse
from sermm.cli.report import main as report
from sermm.cli.submit import main as submit
from sermm.formats import file_format
from sermm.tables import read_posteriors, write_scores


@pytest.mark.parametrize("suffix", [".csv.gz", ".csv.bz2", ".csv.zst", ".csv.lz4", ".tsv", ".tsv.gz"])
def test_round_trip_through_every_text_format(tmp_path, suffix):
    table = read_posteriors(GO / "words_dev.csv")
    path = tmp_path / f"words{suffix}"
    write_scores(table, path)
    again = read_posteriors(path)
    assert again.columns == table.columns
    assert again.ids.tolist() == table.ids.tolist()
    np.testing.assert_allclose(again.values, table.values, rtol=1e-15)
    assert again.system == "words"  # the system name is the file name without its extensions
    raw = path.read_bytes()
    fmt = file_format(path)
    if fmt.compression is None:
        text = raw.decode()
    else:
        assert not raw.startswith(b"\"id\"")  # really compressed, not plain text under a codec name
        text = gzip.decompress(raw).decode() if suffix.endswith(".gz") else None
    if text is not None:
        header = next(csv.reader(io.StringIO(text), delimiter=fmt.delimiter))
        assert header == ["id", *table.columns]
        assert fmt.delimiter == ("\t" if ".tsv" in suffix else ",")


def test_fuse_writes_and_reads_gzip(tmp_path):
    out = tmp_path / "m.csv.gz"
    result = invoke(fuse, "mean", "--inputs", GO / "words_dev.csv", GO / "chars_dev.csv", "--output", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:2] == b"\x1f\x8b"  # gzip magic: not plain text under a .gz name
    words, chars = read_posteriors(GO / "words_dev.csv"), read_posteriors(GO / "chars_dev.csv")
    fused = read_posteriors(out)
    np.testing.assert_allclose(fused.values, (words.values + chars.with_columns(words.columns).values) / 2)
    # and the .gz file is an input like any other (header sniffing read the UTF-8 error before)
    balanced = tmp_path / "bal.tsv.gz"
    prior = "joy=0.5,anger=0.1,disgust=0.1,fear=0.1,neutral=0.1,sadness=0.05,surprise=0.05"
    result = invoke(calibrate, "prior", "--uniform", "-i", out, "--train-prior", prior, "-o", balanced)
    assert result.exit_code == 0, result.output
    assert len(read_posteriors(balanced)) == len(fused)
    check = invoke(data, "check", out, balanced, "--together")
    assert check.exit_code == 0, check.output


def test_tsv_inputs_fuse_like_csv(tmp_path):
    labels = write_labels(tmp_path)
    ids = dev_ids()[:N_DEV]
    results = {}
    for sep, suffix in ((",", ".csv"), ("\t", ".tsv")):
        a = write_posteriors(tmp_path / f"a{suffix}", posteriors(1, ids), ids, NAMINGS["lower"], sep=sep)
        t = write_posteriors(tmp_path / f"t{suffix}", posteriors(2, ids), ids, NAMINGS["lower"], sep=sep)
        out = tmp_path / f"fused{suffix}"
        result = invoke(fuse, "logreg", "--inputs", a, t, "--labels", labels, "--split", "Development",
                        "--classes", ",".join(NAMINGS["lower"]), "--output", out)
        assert result.exit_code == 0, result.output
        results[suffix] = pd.read_csv(out, sep=sep)
    pd.testing.assert_frame_equal(results[".csv"], results[".tsv"])


def test_delimiter_option_reads_other_separators(tmp_path):
    ids = dev_ids()[:8]
    path = write_posteriors(tmp_path / "semi.csv", posteriors(1, ids), ids, NAMINGS["lower"], sep=";")
    result = invoke(data, "check", path, "--delimiter", ";")
    assert result.exit_code == 0, result.output
    assert "posterior, 8 rows, 8 classes" in result.stdout
    bad = invoke(data, "check", path, "--delimiter", "::")
    assert bad.exit_code == 2 and "--delimiter" in bad.stderr
    # the comma-separated labels beside them keep their commas; outputs use the extension's
    labels = tmp_path / "labels.csv"
    labels.write_text("id,label\n" + "".join(f"{i},angry\n" for i in ids))
    out = tmp_path / "fused.csv"
    fused = invoke(fuse, "mean", "--inputs", path, path, "--labels", labels, "--delimiter", ";",
                   "--output", out)
    assert fused.exit_code == 0, fused.output
    assert pd.read_csv(out).columns.tolist() == ["id", *NAMINGS["lower"]]


def test_a_header_in_one_column_says_the_separator_is_wrong(tmp_path):
    """Was: no 'id' column (columns are: id<TAB>angry<TAB>sad...)."""
    ids = dev_ids()[:4]
    path = write_posteriors(tmp_path / "tabs.csv", posteriors(1, ids), ids, NAMINGS["lower"], sep="\t")
    line = assert_one_line_error(invoke(data, "check", path), f"{path}: the header parses into one column",
                                 "holds tabs: the separator is probably wrong", "--delimiter tab")
    assert "no 'id' column" not in line
    assert invoke(data, "check", path, "--delimiter", "tab").exit_code == 0  # the hint works
    semi = write_posteriors(tmp_path / "semi.csv", posteriors(1, ids), ids, NAMINGS["lower"], sep=";")
    assert_one_line_error(invoke(fuse, "mean", "--inputs", semi, semi), "holds semicolons", "--delimiter ';'")


@pytest.mark.parametrize("suffix", [".xlsx", ".json"])
def test_unknown_extension_names_the_formats(tmp_path, suffix):
    path = tmp_path / f"scores{suffix}"
    path.write_text('{"id": 1}')
    line = assert_one_line_error(invoke(data, "check", path), f"{path}: unknown file type '{suffix}'",
                                 "CSV (.csv), TSV (.tsv) or Parquet", ".csv.gz")
    assert "UTF-8" not in line and "column" not in line


def test_writing_an_unknown_extension_is_refused_and_leaves_nothing(tmp_path):
    out = tmp_path / "fused.xlsx"
    result = invoke(fuse, "mean", "--inputs", GO / "words_dev.csv", GO / "chars_dev.csv", "--output", out)
    assert_one_line_error(result, f"{out}: unknown file type '.xlsx'")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("header", ["ID", "Id", "FileName", "Filename", "FILENAME"])
def test_id_headers_in_any_case(tmp_path, header):
    path = tmp_path / "a.csv"
    path.write_text(f"{header},angry,sad\n007,0.25,0.75\n010,0.5,0.5\n")
    table = read_posteriors(path)
    assert table.ids.tolist() == ["007", "010"]  # read as text: leading zeros stay
    assert table.columns == ["angry", "sad"]


def test_extra_text_columns_are_ignored_with_a_note(tmp_path):
    ids = dev_ids()[:N_DEV]
    labels = write_labels(tmp_path)
    a, t = write_systems(tmp_path, "baseline")
    frame = pd.read_csv(a)
    frame["prediction"] = frame[NAMINGS["baseline"]].idxmax(axis=1)
    frame["label"] = "Angry"
    frame.to_csv(a, index=False)
    out = tmp_path / "fused.csv"
    result = invoke(fuse, "mean", "--inputs", a, t, "--labels", labels, "--split", "Development",
                    "--classes", ",".join(NAMINGS["baseline"]), "--output", out)
    assert result.exit_code == 0, result.output
    assert f"note: {a}: ignoring non-numeric column(s) prediction, label (not scores)" in result.stderr
    assert pd.read_csv(out).columns.tolist() == ["id", *NAMINGS["baseline"]]
    assert len(pd.read_csv(out)) == len(ids)


def test_a_score_column_with_one_bad_value_is_still_an_error(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("id,angry,sad\nu1,0.5,0.5\nu2,oops,0.5\n")
    assert_one_line_error(invoke(data, "check", path),
                          f"{path}: line 3: column 'angry': non-numeric value 'oops'")


def test_a_posterior_file_with_a_label_column_is_still_a_posterior_file(tmp_path):
    """A ``label`` column beside class columns does not make a decision file (submit, report)."""
    labels = write_labels(tmp_path)
    ids = dev_ids()[:N_DEV]
    P = posteriors(1, ids)
    path = write_posteriors(tmp_path / "final.csv", P, ids, NAMINGS["baseline"])
    frame = pd.read_csv(path)
    frame.insert(1, "label", "Neutral")
    frame.to_csv(path, index=False)
    out = tmp_path / "submission.csv"
    result = invoke(submit, "--input", path, "--format", "msp-categorical", "--output", out)
    assert result.exit_code == 0, result.output
    by_id = pd.read_csv(out).set_index("FileName")["EmoClass"]
    assert [by_id[i] for i in ids] == [CODES[j] for j in P.argmax(axis=1)]
    scored = invoke(report, "--input", path, "--labels", labels, "--split", "Development",
                    "--classes", ",".join(CODES), "--n-boot", 10)
    assert scored.exit_code == 0, scored.output
    assert "| final | `" in scored.stdout and "| CE |" in scored.stdout  # scored as posteriors


def test_parquet_with_a_compression_suffix_is_refused(tmp_path):
    out = tmp_path / "fused.parquet.gz"
    result = invoke(fuse, "mean", "--inputs", GO / "words_dev.csv", GO / "chars_dev.csv", "--output", out)
    assert_one_line_error(result, f"{out}: Parquet files are compressed inside")


def test_label_columns_in_any_case(tmp_path):
    ids = dev_ids()[:8]
    a = write_posteriors(tmp_path / "a.csv", posteriors(1, ids), ids, NAMINGS["lower"])
    labels = tmp_path / "labels.csv"
    rows = zip(ids, NAMINGS["baseline"], strict=True)
    labels.write_text("ID,Label\n" + "".join(f"{i},{n}\n" for i, n in rows))
    result = invoke(data, "check", a, "--labels", labels)
    assert result.exit_code == 0, result.output
    msp = tmp_path / "msp.csv"
    rows = zip(ids, CODES, strict=True)
    msp.write_text("FileName,emoclass\n" + "".join(f"{i},{c.lower()}\n" for i, c in rows))
    assert invoke(data, "check", a, "--labels", msp).exit_code == 0
    baseline = tmp_path / "dev.csv"
    baseline.write_text('Filename,Label,Prediction\nu1,"0,0,1","0.1,0.2,0.3"\n')
    assert_one_line_error(invoke(data, "check", a, "--labels", baseline), "holds lists",
                          "sermm-data convert --from msp-baseline")


def test_broken_compressed_files_are_one_line_errors(tmp_path):
    ragged = tmp_path / "ragged.csv.gz"
    ragged.write_bytes(gzip.compress(b"id,a,b\nu1,0.5,0.5\nu2,0.5\n"))
    assert_one_line_error(invoke(data, "check", ragged), f"{ragged}: line 3: expected 3 fields")
    fake = tmp_path / "fake.csv.gz"
    fake.write_text("id,a,b\nu1,0.5,0.5\n")
    assert_one_line_error(invoke(data, "check", fake), f"{fake}: cannot read")
