"""sermm-submit: MSP-Podcast submission files from posterior, decision and attribute files."""

import gzip
import io
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import assert_one_line_error

from sermm.cli.submit import main

POSTERIORS = (
    "id,neutral,angry,sad,happy\n"
    "MSP-PODCAST_0003.wav,0.1,0.6,0.2,0.1\n"
    "MSP-PODCAST_0001.wav,0.7,0.1,0.1,0.1\n"
    "MSP-PODCAST_0002.wav,0.2,0.1,0.3,0.4\n"
    "MSP-PODCAST_0010.wav,0.1,0.1,0.5,0.3\n"
)
POSTERIOR_SUBMISSION = (
    "FileName,EmoClass\n"
    "MSP-PODCAST_0001.wav,N\n"
    "MSP-PODCAST_0002.wav,H\n"
    "MSP-PODCAST_0003.wav,A\n"
    "MSP-PODCAST_0010.wav,S\n"
)


def submit(tmp_path, content, *args, name="final.csv", fmt="msp-categorical"):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    out = tmp_path / "submission.csv"
    argv = ["--input", str(path), "--format", fmt, "--output", str(out), *map(str, args)]
    return CliRunner().invoke(main, argv), out


def assert_error(result, out, *fragments):
    assert_one_line_error(result, *fragments)
    assert not out.exists()
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".submission")] == []


def test_posteriors_give_sorted_argmax_codes(tmp_path):
    result, out = submit(tmp_path, POSTERIORS)
    assert result.exit_code == 0, result.output
    assert out.read_text() == POSTERIOR_SUBMISSION
    assert result.output == f"{out}: 4 rows (msp-categorical); EmoClass counts: A=1 S=1 H=1 N=1\n"


@pytest.mark.parametrize(
    ("name", "read"),
    [
        ("submission.csv.gz", lambda p: gzip.decompress(p.read_bytes()).decode()),
        ("submission.tsv", lambda p: p.read_text().replace("\t", ",")),
        ("submission.parquet", lambda p: pd.read_parquet(p).to_csv(index=False)),
    ],
)
def test_output_format_follows_the_extension(tmp_path, name, read):
    """A .csv.gz submission is gzip (not plain text under that name), .tsv is tab-separated."""
    path = tmp_path / "final.csv"
    path.write_text(POSTERIORS)
    out = tmp_path / name
    result = CliRunner().invoke(main, ["-i", str(path), "--format", "msp-categorical", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert read(out) == POSTERIOR_SUBMISSION


def test_parquet_posteriors(tmp_path):
    frame = pd.read_csv(io.StringIO(POSTERIORS))
    path = tmp_path / "final.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    out = tmp_path / "submission.csv"
    result = CliRunner().invoke(
        main, ["--input", str(path), "--format", "msp-categorical", "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.read_text() == POSTERIOR_SUBMISSION


def test_decision_file_is_taken_as_is(tmp_path):
    decisions = "id,label\nb.wav,contempt\nc.wav,no_agreement\na.wav,Fear\nd.wav,U\ne.wav,fear\n"
    result, out = submit(tmp_path, decisions)
    assert result.exit_code == 0, result.output
    assert out.read_text() == "FileName,EmoClass\na.wav,F\nb.wav,C\nc.wav,X\nd.wav,U\ne.wav,F\n"
    assert "EmoClass counts: U=1 F=2 C=1 X=1" in result.output


def test_decision_file_with_class_without_code(tmp_path):
    result, out = submit(tmp_path, "id,label\na,angry\nb,joy\n")
    assert_error(result, out, "final.csv: label 'joy': class 'joy' has no MSP-Podcast letter code", "A=angry")


def test_posterior_class_without_code(tmp_path):
    result, out = submit(tmp_path, "id,angry,joy\na,0.9,0.1\n")
    assert_error(result, out, "final.csv: column 'joy': class 'joy' has no MSP-Podcast letter code")


def test_logits_need_declaring(tmp_path):
    logits = "id,angry,sad\nb,-1.0,2.0\na,3.0,0.5\n"
    result, out = submit(tmp_path, logits)
    assert_error(result, out, "negative probability", "--scores logit")
    result, out = submit(tmp_path, logits, "--scores", "logit")
    assert result.exit_code == 0, result.output
    assert out.read_text() == "FileName,EmoClass\na,A\nb,S\n"


def test_attribute_file_with_categorical_format(tmp_path):
    result, out = submit(tmp_path, "id,arousal,valence,dominance\na,1,2,3\n")
    assert_error(result, out, "final.csv: is an attribute file", "--format msp-categorical needs a posterior")


def test_attributes_are_clipped_and_sorted(tmp_path):
    attributes = (
        "id,valence,dominance,arousal\n"
        "MSP-PODCAST_0002.wav,7.25,4,3.5\n"
        "MSP-PODCAST_0001.wav,2.5,0.5,-1\n"
        "MSP-PODCAST_0003.wav,6.999,1,7\n"
    )
    result, out = submit(tmp_path, attributes, fmt="msp-attributes")
    assert result.exit_code == 0, result.output
    assert out.read_text() == (
        "FileName,EmoAct,EmoVal,EmoDom\n"
        "MSP-PODCAST_0001.wav,1.0,2.5,1.0\n"
        "MSP-PODCAST_0002.wav,3.5,7.0,4.0\n"
        "MSP-PODCAST_0003.wav,7.0,6.999,1.0\n"
    )
    assert result.output == f"{out}: 3 rows (msp-attributes); 3 of 9 value(s) clipped to [1, 7]\n"


def test_msp_attribute_names_round_trip(tmp_path):
    first, out = submit(tmp_path, "FileName,EmoAct,EmoVal,EmoDom\nb,4,5,6\na,1.5,2,3\n", fmt="msp-attributes")
    assert first.exit_code == 0, first.output
    text = out.read_text()
    assert text == "FileName,EmoAct,EmoVal,EmoDom\na,1.5,2.0,3.0\nb,4.0,5.0,6.0\n"
    again, out = submit(tmp_path, text, name="again.csv", fmt="msp-attributes")
    assert again.exit_code == 0
    assert out.read_text() == text
    assert "0 of 6 value(s) clipped" in again.output


def test_attributes_must_be_complete(tmp_path):
    result, out = submit(tmp_path, "id,arousal,valence\na,1,2\n", fmt="msp-attributes")
    assert_error(
        result, out, "final.csv: --format msp-attributes needs arousal, valence and dominance", "dominance"
    )


def test_posteriors_with_attribute_format(tmp_path):
    result, out = submit(tmp_path, POSTERIORS, fmt="msp-attributes")
    assert_error(result, out, "final.csv: attribute columns must be arousal, valence, dominance")


IDS = ["MSP-PODCAST_0001.wav", "MSP-PODCAST_0002.wav", "MSP-PODCAST_0003.wav", "MSP-PODCAST_0010.wav"]


@pytest.mark.parametrize(
    "name, content",
    [
        ("ids.txt", "\n".join(IDS) + "\n"),
        ("ids_crlf_blank.txt", "\r\n".join(reversed(IDS)) + "\r\n\r\n"),
        ("ids_bom.txt", "\ufeff" + "\n".join(IDS)),
        ("test_set.csv", "FileName,Split_Set\n" + "".join(f"{i},Test3\n" for i in IDS)),
        ("ids.csv", "id\n" + "\n".join(IDS) + "\n"),
    ],
)
def test_expected_ids_present(tmp_path, name, content):
    (tmp_path / name).write_text(content, encoding="utf-8")
    result, out = submit(tmp_path, POSTERIORS, "--ids", tmp_path / name)
    assert result.exit_code == 0, result.output
    assert out.read_text() == POSTERIOR_SUBMISSION


def test_expected_ids_as_parquet(tmp_path):
    pq.write_table(pa.table({"FileName": IDS}), tmp_path / "ids.parquet")
    result, out = submit(tmp_path, POSTERIORS, "--ids", tmp_path / "ids.parquet")
    assert result.exit_code == 0, result.output


def test_missing_ids(tmp_path):
    expected = IDS + [f"MSP-PODCAST_01{i:02d}.wav" for i in range(5)]
    (tmp_path / "ids.txt").write_text("\n".join(expected))
    result, out = submit(tmp_path, POSTERIORS, "--ids", tmp_path / "ids.txt")
    assert_error(
        result,
        out,
        "final.csv: 5 id(s) of",
        "ids.txt are missing (e.g. 'MSP-PODCAST_0100.wav', 'MSP-PODCAST_0101.wav', "
        "'MSP-PODCAST_0102.wav' ...)",
    )
    assert "not in" not in result.stderr


def test_extra_ids(tmp_path):
    (tmp_path / "ids.txt").write_text("\n".join(IDS[:2]))
    result, out = submit(tmp_path, POSTERIORS, "--ids", tmp_path / "ids.txt")
    assert_error(result, out, "2 id(s) are not in", "(e.g. 'MSP-PODCAST_0003.wav', 'MSP-PODCAST_0010.wav')")
    assert "missing" not in result.stderr


def test_missing_and_extra_ids_in_one_line(tmp_path):
    (tmp_path / "ids.txt").write_text("\n".join([*IDS[1:], "MSP-PODCAST_0099.wav"]))
    result, out = submit(tmp_path, POSTERIORS, "--ids", tmp_path / "ids.txt")
    assert_error(
        result,
        out,
        "1 id(s) of",
        "are missing (e.g. 'MSP-PODCAST_0099.wav'); 1 id(s) are not in",
        "(e.g. 'MSP-PODCAST_0001.wav')",
    )


def test_ids_listed_twice(tmp_path):
    (tmp_path / "ids.txt").write_text("a\nb\n\na\n")
    result, out = submit(tmp_path, POSTERIORS, "--ids", tmp_path / "ids.txt")
    assert_error(result, out, "ids.txt: line 4: id 'a' is listed twice")


def test_duplicate_ids_in_input(tmp_path):
    result, out = submit(tmp_path, "id,label\na,angry\na,sad\n")
    assert_error(result, out, "final.csv: duplicate id 'a'")


def test_failed_submit_keeps_previous_output(tmp_path):
    result, out = submit(tmp_path, POSTERIORS)
    assert result.exit_code == 0
    (tmp_path / "ids.txt").write_text("nothing.wav\n")
    result, out = submit(tmp_path, POSTERIORS, "--ids", tmp_path / "ids.txt")
    assert result.exit_code == 1
    assert out.read_text() == POSTERIOR_SUBMISSION


def test_converted_baseline_submits(tmp_path):
    """A posterior file with a sidecar (as sermm writes them) submits like any other."""
    (tmp_path / "final.csv.meta.json").write_text(json.dumps({"system": "fused", "values": "probability"}))
    result, out = submit(tmp_path, POSTERIORS)
    assert result.exit_code == 0
    submitted = pd.read_csv(out)
    frame = pd.read_csv(tmp_path / "final.csv").sort_values("id")
    codes = {"angry": "A", "sad": "S", "happy": "H", "neutral": "N"}
    expected = [codes[c] for c in frame.columns[1:][np.argmax(frame.iloc[:, 1:].to_numpy(), axis=1)]]
    assert submitted["EmoClass"].tolist() == expected


def test_help_has_example():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "sermm-submit --input final.csv --format msp-categorical --output submission.csv" in result.output
