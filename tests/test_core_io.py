"""Core I/O: round trips, alignment by id, class order, model files, multi-value options."""

from __future__ import annotations

import json

import click
import numpy as np
import pytest
from click.testing import CliRunner

from sermm.align import align_ids, load_aligned
from sermm.atomic import atomic_path
from sermm.cli.common import SermmCommand
from sermm.errors import SermmError
from sermm.modelfile import load_model, save_model
from sermm.sidecar import Sidecar
from sermm.tables import ScoreTable, read_posteriors, read_scores, write_scores


def _table(ids, values, columns):
    return ScoreTable(np.array(ids, dtype=object), np.asarray(values, dtype=float), columns)


@pytest.mark.parametrize("name", ["scores.csv", "scores.parquet"])
def test_write_then_read_round_trip_keeps_ids_values_and_class_order(tmp_path, name):
    rng = np.random.default_rng(0)
    values = rng.dirichlet(np.ones(3), size=50)
    table = _table([f"u{i}" for i in range(50)], values, ["sad", "angry", "happy"])
    write_scores(table, tmp_path / name, sidecar=Sidecar(system="audio"))
    back = read_posteriors(tmp_path / name)
    assert back.columns == ["sad", "angry", "happy"]
    assert list(back.ids) == list(table.ids)
    np.testing.assert_allclose(back.values, values / values.sum(1, keepdims=True), rtol=1e-12)
    assert back.system == "audio"


def test_alignment_matches_rows_by_id_not_position(tmp_path):
    (tmp_path / "a.csv").write_text("id,x,y\nu1,0.9,0.1\nu2,0.2,0.8\nu3,0.5,0.5\n")
    (tmp_path / "b.csv").write_text("id,y,x\nu3,0.6,0.4\nu1,0.3,0.7\nu2,1,0\n")
    (tmp_path / "l.csv").write_text("id,label\nu2,y\nu3,x\nu1,x\n")
    data = load_aligned([str(tmp_path / "a.csv"), str(tmp_path / "b.csv")], str(tmp_path / "l.csv"))
    assert list(data.ids) == ["u1", "u2", "u3"]
    assert data.columns == ["x", "y"]
    np.testing.assert_allclose(data.tables[1].values, [[0.7, 0.3], [0.0, 1.0], [0.4, 0.6]])
    np.testing.assert_array_equal(data.y(), [0, 1, 0])


def test_drop_keeps_only_common_ids_in_first_file_order():
    a = _table(["u1", "u2", "u3"], np.eye(3), ["a", "b", "c"])
    b = _table(["u3", "u1", "u9"], np.eye(3), ["a", "b", "c"])
    with pytest.raises(SermmError, match=r"1 id\(s\) of .* are missing"):
        align_ids([a, b])
    out = align_ids([a, b], on_missing="drop")
    assert list(out.ids) == ["u1", "u3"]
    np.testing.assert_array_equal(out.tables[1].values, [[0, 1, 0], [1, 0, 0]])


def test_declared_logits_are_softmaxed(tmp_path):
    path = tmp_path / "logits.csv"
    path.write_text("id,a,b\nu1,0,0\nu2,2,0\n")
    with pytest.raises(SermmError, match="sum to"):
        read_posteriors(path)
    table = read_posteriors(path, scores="logit")
    np.testing.assert_allclose(table.values[1], [np.e**2 / (np.e**2 + 1), 1 / (np.e**2 + 1)])
    (tmp_path / "logits.csv.meta.json").write_text(json.dumps({"values": "logit"}))
    np.testing.assert_allclose(read_posteriors(path).values, table.values)


def test_attribute_files_accept_msp_names(tmp_path):
    path = tmp_path / "attr.csv"
    path.write_text("FileName,EmoAct,EmoVal\nx.wav,3.5,4\n")
    table = read_scores(path)
    assert table.kind == "attribute"
    assert table.columns == ["arousal", "valence"]


def test_atomic_path_leaves_nothing_when_the_writer_fails(tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_model_files_are_checked_on_load(tmp_path):
    path = tmp_path / "m.json"
    save_model(path, {"layer": "fusion", "method": "mean", "weights": np.array([0.5, 0.5])})
    doc = load_model(path, "fusion")
    assert doc["weights"] == [0.5, 0.5] and doc["format"] == "sermm-model"
    with pytest.raises(SermmError, match="a fusion model, expected a calibration model"):
        load_model(path, "calibration")
    path.write_text('{"format": "sermm-model", "version": 99}')
    with pytest.raises(SermmError, match="version 99 is not supported"):
        load_model(path)


def test_multiple_option_takes_several_values_after_one_flag():
    @click.command(cls=SermmCommand)
    @click.option("--inputs", multiple=True)
    @click.option("--labels")
    def cmd(inputs, labels):
        click.echo(f"{list(inputs)} {labels}")

    result = CliRunner().invoke(cmd, ["--inputs", "a.csv", "t.csv", "--labels", "l.csv"])
    assert result.output.strip() == "['a.csv', 't.csv'] l.csv"
    result = CliRunner().invoke(cmd, ["--labels", "l.csv", "--inputs", "a", "--inputs", "b"])
    assert result.output.strip() == "['a', 'b'] l.csv"


def test_sermm_error_becomes_one_line_and_exit_code_one():
    @click.command(cls=SermmCommand)
    def cmd():
        raise SermmError("x.csv: line 3: bad")

    result = CliRunner().invoke(cmd, [])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: x.csv: line 3: bad"
