"""Score tables read from files stay columnar: Arrow ids checked in Arrow, column-major values."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import EXAMPLES

from sermm.align import align_ids
from sermm.cli.fuse import main as fuse_main
from sermm.errors import SermmError
from sermm.tables import ScoreTable, numeric_matrix, read_posteriors, write_scores


def _arrow_table(ids: list[str], values: np.ndarray, columns: list[str]) -> ScoreTable:
    return ScoreTable(pa.array(ids), values, columns)


def test_ids_are_converted_to_python_strings_only_when_asked_for(tmp_path):
    path = tmp_path / "s.parquet"
    pq.write_table(pa.table({"id": ["u2", "u1"], "a": [0.5, 0.2], "b": [0.5, 0.8]}), path)
    table = read_posteriors(path)
    assert table._ids is None and table.id_column.to_pylist() == ["u2", "u1"]
    assert table.ids.tolist() == ["u2", "u1"]


def test_values_are_column_major_and_equal_to_the_file(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("id,a,b,c\nu1,0.1,0.2,0.7\nu2,0.3,0.3,0.4\n")
    table = read_posteriors(path)
    assert table.values.flags.f_contiguous
    np.testing.assert_array_equal(table.values, [[0.1, 0.2, 0.7], [0.3, 0.3, 0.4]])


@pytest.mark.parametrize(
    "column",
    [
        pa.array([1, 2, 3], pa.int8()),
        pa.array([1, 2, 3], pa.uint16()),
        pa.array([1.0, 2.0, 3.0], pa.float32()),
        pa.chunked_array([pa.array([9.0, 1.0]).slice(1), pa.array([], pa.float64()), pa.array([2.0, 3.0])]),
    ],
    ids=["int8", "uint16", "float32", "sliced-and-empty-chunks"],
)
def test_numeric_columns_of_any_width_and_chunking_become_float64(column):
    table = pa.table({"x": column})
    matrix = numeric_matrix(table, ["x"], Path("f.parquet"))
    assert matrix.dtype == np.float64
    np.testing.assert_array_equal(matrix[:, 0], [1.0, 2.0, 3.0])


def test_a_null_value_is_named_by_its_row():
    table = pa.table({"x": pa.array([1.0, None, 3.0])})
    with pytest.raises(SermmError, match=r"row 2: column 'x': missing or NaN value"):
        numeric_matrix(table, ["x"], Path("f.parquet"))


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        (["u3", "u1", "u3"], r"duplicate id 'u3' \(row 1, row 3\)"),
        (["u2", "", "u1"], r"row 2: empty id"),
        (["u2", None, "u1"], r"row 2: empty id"),
    ],
)
def test_bad_ids_are_found_in_arrow_and_named_by_row(tmp_path, ids, message):
    path = tmp_path / "s.parquet"
    pq.write_table(pa.table({"id": pa.array(ids, pa.string()), "a": [1.0, 1.0, 1.0]}), path)
    with pytest.raises(SermmError, match=message):
        read_posteriors(path)


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        (pa.array([b"a", b"\xff"], pa.binary()), r"column 'id' \(binary\) cannot be read as text ids"),
        (pa.array([[1], [2]]), r"column 'id' \(list<element: int64>\) cannot be read as text ids"),
    ],
    ids=["invalid-utf8", "list"],
)
def test_ids_that_are_not_text_get_one_clear_line(tmp_path, ids, message):
    path = tmp_path / "s.parquet"
    pq.write_table(pa.table({"id": ids, "a": [1.0, 1.0]}), path)
    with pytest.raises(SermmError, match=message):
        read_posteriors(path)


def test_unsorted_unique_ids_pass_and_numeric_ids_become_strings(tmp_path):
    path = tmp_path / "s.parquet"
    pq.write_table(pa.table({"id": [30, 10, 20], "a": [1.0, 1.0, 1.0]}), path)
    assert read_posteriors(path).ids.tolist() == ["30", "10", "20"]


def test_same_ids_compares_arrow_and_numpy_forms():
    values = np.eye(2)
    arrow = _arrow_table(["u1", "u2"], values, ["a", "b"])
    chunked = ScoreTable(pa.chunked_array([["u1"], ["u2"]]), values, ["a", "b"])
    numpy = ScoreTable(np.array(["u1", "u2"], dtype=object), values, ["a", "b"])
    swapped = _arrow_table(["u2", "u1"], values, ["a", "b"])
    assert arrow.same_ids(chunked) and arrow.same_ids(numpy) and numpy.same_ids(arrow)
    assert not arrow.same_ids(swapped) and not numpy.same_ids(swapped)


@pytest.mark.parametrize("rows", [np.array([2, 0]), np.array([True, False, True])], ids=["indices", "mask"])
def test_take_on_arrow_ids_matches_numpy(rows):
    values = np.arange(6.0).reshape(3, 2)
    arrow = _arrow_table(["u1", "u2", "u3"], values, ["a", "b"])
    numpy = ScoreTable(np.array(["u1", "u2", "u3"], dtype=object), values, ["a", "b"])
    a, b = arrow.take(rows), numpy.take(rows)
    assert a.ids.tolist() == b.ids.tolist()
    np.testing.assert_array_equal(a.values, b.values)


def test_aligned_tables_share_one_id_column():
    values = np.eye(2)
    a, b = _arrow_table(["u1", "u2"], values, ["a", "b"]), _arrow_table(["u1", "u2"], values, ["a", "b"])
    aligned = align_ids([a, b])
    assert aligned.tables[1].id_column is aligned.tables[0].id_column


@pytest.mark.parametrize("name", ["out.csv", "out.parquet"])
def test_written_ids_and_values_survive_a_round_trip_from_arrow_ids(tmp_path, name):
    values = np.asfortranarray([[0.25, 0.75], [1.0, 0.0]])
    write_scores(_arrow_table(["x,1", "u2"], values, ["a", "b"]), tmp_path / name)
    back = read_posteriors(tmp_path / name)
    assert back.ids.tolist() == ["x,1", "u2"]
    np.testing.assert_array_equal(back.values, values)


def test_fuse_apply_does_not_import_pandas(tmp_path):
    """pandas costs a command about half a second; apply must not need it."""
    inputs = [str(EXAMPLES / f"goemotions/{s}_test.csv") for s in ("words", "chars")]
    model = str(tmp_path / "mean.json")
    fit = CliRunner().invoke(fuse_main, ["mean", "--inputs", *inputs, "--save", model])
    assert fit.exit_code == 0, fit.output
    argv = ["sermm-fuse", "apply", model, "--inputs", *inputs, "--output", str(tmp_path / "out.csv")]
    code = (
        f"import sys\nfrom sermm.cli.fuse import main\nsys.argv = {argv!r}\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print('pandas' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    done, pandas_imported = out.stdout.strip().splitlines()
    assert "2 systems, 4,968 rows" in done and pandas_imported == "False"
