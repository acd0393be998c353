"""The fast paths fusion added to the core reader (sermm/tables.py) keep its results and messages."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sermm.errors import SermmError
from sermm.fusion.io import read_groups
from sermm.tables import check_ids, read_posteriors


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,a,b\nx,0.5,0.5\ny,0.5,0.5\nx,0.5,0.5\n", "duplicate id 'x' (line 2, line 4); 1 id(s)"),
        ("id,a,b\nx,0.5,0.5\nx,0.5,0.5\ny,0.5,0.5\n", "duplicate id 'x' (line 2, line 3); 1 id(s)"),
        ("id,a,b\nx,0.5,0.5\n,0.5,0.5\n", "line 3: empty id"),
        ("id,a,b\n,0.5,0.5\nx,0.5,0.5\n", "line 2: empty id"),
    ],
)
def test_id_errors_are_unchanged(tmp_path, text, message):
    path = write(tmp_path, "s.csv", text)
    with pytest.raises(SermmError, match=re.escape(message)):
        read_posteriors(path)


def test_sorted_unsorted_and_numeric_ids(tmp_path):
    sorted_ids = write(tmp_path, "a.csv", "id,p,q\na,0.5,0.5\nb,0.2,0.8\nc,1,0\n")
    unsorted = write(tmp_path, "b.csv", "id,p,q\nc,1,0\na,0.5,0.5\nb,0.2,0.8\n")
    assert read_posteriors(sorted_ids).ids.tolist() == ["a", "b", "c"]
    assert read_posteriors(unsorted).ids.tolist() == ["c", "a", "b"]
    path = tmp_path / "n.parquet"
    pq.write_table(pa.table({"id": [3, 1, 1], "p": [1.0, 0.5, 0.5], "q": [0.0, 0.5, 0.5]}), path)
    with pytest.raises(SermmError, match="duplicate id '1'"):
        read_posteriors(path)


def test_files_with_the_same_ids_share_nothing_mutable(tmp_path):
    text = "id,p,q\n" + "".join(f"u{i:03d},0.5,0.5\n" for i in range(50))
    a = read_posteriors(write(tmp_path, "a.csv", text))
    b = read_posteriors(write(tmp_path, "b.csv", text.replace("0.5,0.5", "0.25,0.75")))
    assert (a.ids == b.ids).all() and a.ids is not b.ids
    b.ids[0] = "changed"
    assert a.ids[0] == "u000"
    assert np.allclose(b.values, [0.25, 0.75])
    check_ids(a.ids, tmp_path / "a.csv")


def test_values_across_record_batches_and_types(tmp_path):
    n = 10_000
    rng = np.random.default_rng(0)
    p = rng.random(n)
    table = pa.table(
        {"id": [f"u{i:05d}" for i in range(n)], "a": p, "b": 1 - p, "c": np.zeros(n, dtype=np.int64)}
    )
    path = tmp_path / "s.parquet"
    pq.write_table(table, path, row_group_size=777)
    read = read_posteriors(path)
    assert np.array_equal(read.values, np.column_stack([p, 1 - p, np.zeros(n)]))
    broken = table.set_column(1, "a", pa.array(np.where(np.arange(n) == 5000, np.nan, p)))
    pq.write_table(broken, path, row_group_size=777)
    with pytest.raises(SermmError, match="row 5001: column 'a': missing or NaN value"):
        read_posteriors(path)


def test_group_files(tmp_path):
    path = write(tmp_path, "g.csv", "id,group\na,s1\nb,s2\nc,s1\n")
    assert read_groups(str(path), np.array(["c", "a"], dtype=object)).tolist() == ["s1", "s1"]
    with pytest.raises(SermmError, match="no group for 1 id"):
        read_groups(str(path), np.array(["d"], dtype=object))
    with pytest.raises(SermmError, match="no 'group' column"):
        read_groups(str(write(tmp_path, "h.csv", "id,speaker\na,s1\n")), np.array(["a"], dtype=object))
