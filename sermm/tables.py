"""Score files: read, validate and write posterior, attribute and embedding tables.

A score file is CSV, TSV or Parquet (by extension, compressed CSV/TSV too: :mod:`sermm.formats`)
with an ``id`` column and one numeric column per class, attribute or embedding dimension, plus
an optional sidecar ``<file>.meta.json`` (:mod:`sermm.sidecar`). Class names are compared by
:func:`sermm.classes.class_key` (aliases, any case). The README's "Files" section is the contract.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sermm.atomic import atomic_path
from sermm.classes import class_key, duplicate_alias, key_index
from sermm.errors import SermmError
from sermm.formats import file_format, is_parquet, note, open_text, options, unknown_separator
from sermm.sidecar import Sidecar, read_sidecar, sidecar_path, write_sidecar

Kind = Literal["posterior", "attribute", "embedding"]
ATTRIBUTES = ("arousal", "valence", "dominance")
MSP_ATTRIBUTE_NAMES = {"EmoAct": "arousal", "EmoVal": "valence", "EmoDom": "dominance"}
ID_COLUMNS = ("id", "FileName", "Filename", "filename", "file_name")
#: Id column names as compared (case-insensitively): ``ID``, ``Id``, ``FILENAME`` are ids too.
_ID_KEYS = {n.casefold() for n in ID_COLUMNS}
#: Text columns that are not scores: ignored (with a note) when a score file carries them.
EXTRA_COLUMNS = ("label", "prediction", "predicted", "pred", "emoclass", "split_set", "split", "spkrid",
                 "speaker", "gender", "text", "transcript", "path", "file", "system")
SUM_TOLERANCE = 1e-3
_EMBEDDING_COLUMN = re.compile(r"^e\d+$")


#: An id column as Arrow holds it (a CSV or Parquet column, cast to strings).
IdColumn = pa.ChunkedArray


class ScoreTable:
    """Per-utterance scores of one system: ``values[i, j]`` is column ``columns[j]`` of ``ids[i]``.

    The ids are kept as given, a numpy array or the Arrow column they were read from, and each
    form is made from the other only when asked for: turning a million ids into Python strings
    costs more time and memory than averaging three score files.
    """

    def __init__(
        self,
        ids: np.ndarray | pa.Array | pa.ChunkedArray,
        values: np.ndarray,
        columns: list[str],
        kind: Kind = "posterior",
        sidecar: Sidecar | dict | None = None,
        path: str | None = None,
    ) -> None:
        if isinstance(ids, (pa.Array, pa.ChunkedArray)):
            self._id_column: IdColumn | None = as_id_column(ids)
            self._ids: np.ndarray | None = None
        else:
            self._id_column, self._ids = None, np.asarray(ids)
        self.values = values
        self.columns = columns
        self.kind = kind
        self.sidecar = Sidecar.from_dict(sidecar) if isinstance(sidecar, dict) else sidecar
        self.path = path

    @property
    def ids(self) -> np.ndarray:
        """The ids as a numpy array (of Python strings when read from a file)."""
        if self._ids is None:
            self._ids = self._id_column.to_numpy(zero_copy_only=False)
        return self._ids

    @property
    def id_column(self) -> IdColumn:
        """The ids as an Arrow string column (what the writers take)."""
        if self._id_column is None:
            self._id_column = as_id_column(pa.array(self._ids, type=pa.string()))
        return self._id_column

    def same_ids(self, other: ScoreTable) -> bool:
        """Whether both tables list the same ids in the same order (compared in Arrow when both
        were read from files, without converting them)."""
        if self._id_column is not None and other._id_column is not None:
            return self._id_column is other._id_column or self._id_column.equals(other._id_column)
        return self.ids is other.ids or (len(self) == len(other) and np.array_equal(self.ids, other.ids))

    @property
    def system(self) -> str:
        """The system name: the sidecar's ``system``, else the file name without extension."""
        if self.sidecar is not None and self.sidecar.system:
            return self.sidecar.system
        if self.path:
            return _stem(self.path)
        return "scores"

    @property
    def classes(self) -> list[str]:
        """The class names of a posterior table (its columns)."""
        return self.columns

    def replace(self, **changes: object) -> ScoreTable:
        """A copy with some of ``ids``, ``values``, ``columns``, ``kind``, ``sidecar``, ``path`` changed."""
        fields = {
            "ids": self._ids if self._ids is not None else self._id_column,
            "values": self.values,
            "columns": self.columns,
            "kind": self.kind,
            "sidecar": self.sidecar,
            "path": self.path,
        }
        unknown = set(changes) - set(fields)
        if unknown:
            raise TypeError(f"ScoreTable has no field(s) {', '.join(sorted(unknown))}")
        table = ScoreTable(**{**fields, **changes})  # type: ignore[arg-type]
        if "ids" not in changes and self._ids is not None:
            table._id_column = self._id_column  # keep both forms when both are at hand
        return table

    def with_ids_of(self, other: ScoreTable) -> ScoreTable:
        """A copy holding ``other``'s ids (in whatever forms it has them): aligned tables share one."""
        table = self.replace(ids=other._ids if other._ids is not None else other._id_column)
        table._id_column = other._id_column
        return table

    def take(self, rows: np.ndarray) -> ScoreTable:
        """A table with only the given rows (indices or boolean mask), in that order."""
        rows = np.asarray(rows)
        if self._ids is not None:
            ids: np.ndarray | IdColumn = self._ids[rows]
        else:
            ids = self._id_column.take(np.flatnonzero(rows) if rows.dtype == bool else rows)
        return self.replace(ids=ids, values=self.values[rows])

    def with_columns(self, columns: list[str]) -> ScoreTable:
        """A table with its columns reordered (or subset) to ``columns``, and named as there.

        Columns are matched by :func:`~sermm.classes.class_key` (``Angry`` is ``angry`` is ``A``),
        so this also renames a table's classes to another file's spelling.
        """
        index = {c: j for j, c in enumerate(self.columns)}
        if not all(c in index for c in columns):
            index = key_index(self.columns) if self.kind == "posterior" else index
            picks = [index[class_key(c) if self.kind == "posterior" else c] for c in columns]
        else:
            picks = [index[c] for c in columns]
        return self.replace(values=self.values[:, picks], columns=list(columns))

    def __len__(self) -> int:
        return len(self.values)

    def __repr__(self) -> str:
        return f"ScoreTable({self.system!r}, {len(self)} rows, {self.kind}: {', '.join(self.columns[:8])})"


def shared_train_prior(tables: list[ScoreTable], classes: list[str]) -> np.ndarray | None:
    """The ``train_prior`` every table's sidecar gives, over ``classes`` (renormalised), or None
    when one has none or two disagree."""
    priors = [None if t.sidecar is None else t.sidecar.train_prior for t in tables]
    if not priors or priors[0] is None or any(p != priors[0] for p in priors[1:]):
        return None
    return tables[0].sidecar.prior_over(classes)


def as_id_column(ids: pa.Array | pa.ChunkedArray) -> IdColumn:
    """An Arrow id column as a chunked column of strings (numbers and large strings are cast)."""
    column = ids if isinstance(ids, pa.ChunkedArray) else pa.chunked_array([ids])
    return column if column.type == pa.string() else column.cast(pa.string())


def _stem(path: str) -> str:
    name = Path(path).name
    for ext in (".gz", ".gzip", ".bz2", ".zst", ".zstd", ".lz4"):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    for ext in (".csv", ".tsv", ".tab", ".txt", ".parquet", ".pq"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return Path(name).stem


def is_id_name(name: str) -> bool:
    """Whether a column name is an id column name (``id``, ``ID``, ``FileName``, ... any case)."""
    return name.strip().casefold() in _ID_KEYS


def _id_casings() -> tuple[str, ...]:
    names = set(ID_COLUMNS)
    for n in ID_COLUMNS:
        names |= {n.lower(), n.upper(), n.capitalize(), n.title()}
    return tuple(sorted(names))


#: Every spelling of an id column that the CSV reader keeps as text (leading zeros stay).
ID_CASINGS = _id_casings()


def _ragged_line(path: Path) -> str:
    """Find the first CSV line whose field count differs from the header's (error path only)."""
    with open_text(path, errors="replace") as handle:
        reader = csv.reader(handle, delimiter=file_format(path).delimiter)
        header = next(reader, [])
        for line_no, row in enumerate(reader, start=2):
            if len(row) != len(header):
                return (
                    f"line {line_no}: expected {len(header)} fields as in the header, "
                    f"got {len(row)} (ragged or truncated row)"
                )
    return "malformed CSV"


def check_file(path: str | Path) -> Path:
    """The path, if it names a non-empty file; else a clear error."""
    path = Path(path)
    if not path.exists():
        raise SermmError(f"{path}: no such file")
    if path.is_dir():
        raise SermmError(f"{path}: is a directory, expected a file")
    if path.stat().st_size == 0:
        raise SermmError(f"{path}: empty file")
    return path


def read_arrow(path: str | Path, *, id_columns: tuple[str, ...] = ID_CASINGS) -> pa.Table:
    """Read a CSV, TSV or Parquet file (by extension, compressed text too) into an Arrow table,
    id columns as strings; one-line errors."""
    path = check_file(path)
    fmt = file_format(path)
    if fmt.parquet:
        try:  # ParquetFile, not read_table: that imports pyarrow.dataset (and pandas), a slow start
            with pq.ParquetFile(path) as parquet:
                table = parquet.read()
        except (pa.ArrowException, OSError) as exc:
            raise SermmError(f"{path}: unreadable Parquet file ({_first_line(exc)})") from None
    else:
        types = {name: pa.string() for name in id_columns}
        try:
            table = pacsv.read_csv(
                pa.input_stream(str(path), compression=fmt.compression) if fmt.compression else path,
                parse_options=pacsv.ParseOptions(delimiter=fmt.delimiter),
                convert_options=pacsv.ConvertOptions(column_types=types),
            )
        except pa.ArrowInvalid as exc:
            message = _first_line(exc)
            if "Expected" in message and "columns" in message:
                message = _ragged_line(path)
            raise SermmError(f"{path}: {message}") from None
        except (pa.ArrowException, UnicodeDecodeError, OSError, EOFError) as exc:
            raise SermmError(f"{path}: unreadable {fmt.name} file ({_first_line(exc)})") from None
        _check_separator(table.column_names, path, fmt.delimiter)
    if table.num_rows == 0:
        raise SermmError(f"{path}: no data rows")
    return table


def _check_separator(names: list[str], path: Path, delimiter: str) -> None:
    """A header that parsed as one column holding another separator: the separator is wrong."""
    if len(names) != 1 or is_id_name(names[0]):
        return
    found = unknown_separator(names[0].replace(delimiter, ""))
    if found is None:
        return
    shown = names[0] if len(names[0]) <= 40 else names[0][:37] + "..."
    said = "tab" if delimiter == "\t" else f"'{delimiter}'"
    fix = {
        "tabs": "name a tab-separated file .tsv or pass --delimiter tab",
        "semicolons": "pass --delimiter ';'",
        "'|'": "pass --delimiter '|'",
        "commas": "name a comma-separated file .csv or pass --delimiter ,",
        "spaces": "pass --delimiter space",
    }[found]
    raise SermmError(
        f"{path}: the header parses into one column ({shown!r}) with {said} as separator, but it "
        f"holds {found}: the separator is probably wrong ({fix})"
    )


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _row_label(path: Path, row: int) -> str:
    """How to name data row ``row`` (0-based) of a file: CSV line number or Parquet row."""
    return f"row {row + 1}" if is_parquet(path) else f"line {row + 2}"


def find_id_column(table: pa.Table, path: Path, names: tuple[str, ...] = ID_COLUMNS) -> str:
    """The name of the id column (``names`` in order, then the same names in any case), or a clear error."""
    for name in names:
        if name in table.column_names:
            return name
    wanted = {n.casefold() for n in names}
    for name in table.column_names:
        if name.strip().casefold() in wanted:
            return name
    _check_separator(table.column_names, path, file_format(path).delimiter if not is_parquet(path) else ",")
    raise SermmError(
        f"{path}: no 'id' column (columns are: {', '.join(table.column_names[:10])}; ids may be "
        f"named {', '.join(names)}, in any case)"
    )


def check_ids(ids: np.ndarray, path: Path) -> None:
    """Ids must be non-empty and unique."""
    import pandas as pd

    empty = np.flatnonzero(pd.isna(ids) | (ids == ""))
    if empty.size:
        raise SermmError(f"{path}: {_row_label(path, int(empty[0]))}: empty id")
    index = pd.Index(ids)
    if not index.is_unique:
        dup = index[index.duplicated()].unique()
        first = np.flatnonzero(ids == dup[0])
        rows = ", ".join(_row_label(path, int(r)) for r in first[:2])
        raise SermmError(
            f"{path}: duplicate id '{dup[0]}' ({rows}); {len(dup)} id(s) appear more than once"
        )


def read_id_column(table: pa.Table, id_col: str, path: Path) -> IdColumn:
    """The id column of a table as Arrow strings, checked as :func:`check_ids` does, in Arrow.

    Only a column that fails (an empty or duplicate id) is converted to Python strings, to name
    the first offending row.
    """
    try:
        column = as_id_column(table.column(id_col))
    except pa.ArrowException as exc:
        raise SermmError(
            f"{path}: column '{id_col}' ({table.column(id_col).type}) cannot be read as text ids "
            f"({_first_line(exc)})"
        ) from None
    if not _unique_and_present(column):
        check_ids(column.to_numpy(zero_copy_only=False), path)
    return column


def _unique_and_present(column: IdColumn) -> bool:
    """No null or empty id and no id twice: strictly increasing order proves it without hashing."""
    if column.null_count or len(column) == 0:
        return False
    if pc.min(pc.binary_length(column)).as_py() == 0:  # (comparing with "" would import pandas)
        return False
    if len(column) > 1 and pc.all(pc.greater(column[1:], column[:-1])).as_py():
        return True
    return pc.count_distinct(column).as_py() == len(column)


def _is_plain_number(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind)


def _column_values(column: pa.ChunkedArray, name: str, path: Path) -> list[np.ndarray]:
    """A numeric column's values as numpy arrays that follow each other (one per chunk when it is
    plainly numeric), or a clear error naming the first value that is not a number."""
    kind = column.type
    if _is_plain_number(kind):
        return [_chunk_numbers(chunk) for chunk in column.chunks]
    if pa.types.is_decimal(kind) or pa.types.is_boolean(kind):
        return [column.cast(pa.float64()).to_numpy(zero_copy_only=False)]
    import pandas as pd

    raw = column.to_pandas()
    parsed = pd.to_numeric(raw, errors="coerce")
    bad = np.flatnonzero(parsed.isna() & raw.notna())
    if bad.size:
        row = int(bad[0])
        raise SermmError(
            f"{path}: {_row_label(path, row)}: column '{name}': non-numeric value {raw.iloc[row]!r}"
        )
    return [parsed.to_numpy(dtype=np.float64)]


def _chunk_numbers(chunk: pa.Array) -> np.ndarray:
    """A numeric Arrow chunk as numpy, nulls as NaN: a view of its data buffer when it has no
    nulls (pyarrow's own ``to_numpy`` imports pandas, which costs a command half a second)."""
    if chunk.null_count or pa.types.is_null(chunk.type):
        return pc.fill_null(chunk.cast(pa.float64()), np.nan).to_numpy(zero_copy_only=True)
    if len(chunk) == 0:
        return np.empty(0)
    kind = chunk.type
    code = "f" if pa.types.is_floating(kind) else "u" if pa.types.is_unsigned_integer(kind) else "i"
    dtype = np.dtype(f"{code}{kind.bit_width // 8}")
    data = chunk.buffers()[1]
    return np.frombuffer(data, dtype=dtype, count=len(chunk), offset=chunk.offset * dtype.itemsize)


def numeric_matrix(table: pa.Table, columns: list[str], path: Path) -> np.ndarray:
    """The given columns as a float64 matrix, naming the first bad value if any.

    The matrix is column-major (Fortran order): every column is one contiguous copy of the
    Arrow buffers, and writing it back to Arrow needs no transpose.
    """
    matrix = np.empty((table.num_rows, len(columns)), order="F")
    for j, name in enumerate(columns):
        start = 0
        for values in _column_values(table.column(name), name, path):
            matrix[start : start + len(values), j] = values
            start += len(values)
    if not np.isfinite(matrix.sum()):  # one pass; a finite sum means every value is finite
        finite = np.isfinite(matrix)
        if not finite.all():
            row, col = np.argwhere(~finite)[0]
            value = matrix[row, col]
            what = "missing or NaN value" if np.isnan(value) else f"infinite value ({value})"
            raise SermmError(f"{path}: {_row_label(path, int(row))}: column '{columns[col]}': {what}")
    return matrix


def row_max(x: np.ndarray) -> np.ndarray:
    """Row maxima as an ``(n, 1)`` column; for a few columns, a loop over them is several times
    faster than ``max(axis=1)`` (numpy reduces a short contiguous axis slowly)."""
    if x.ndim != 2 or x.shape[1] > 32 or x.shape[1] == 0:
        return x.max(axis=1, keepdims=True)
    top = x[:, :1].copy()
    for j in range(1, x.shape[1]):
        np.maximum(top, x[:, j : j + 1], out=top)
    return top


#: Probabilities are floored here before the log, so that an exact 0 stays finite.
LOG_FLOOR = 1e-12


def log_posteriors(P: np.ndarray) -> np.ndarray:
    """Natural log of posteriors floored at :data:`LOG_FLOOR` (fusion and calibration work on these)."""
    return np.log(np.maximum(np.asarray(P, dtype=np.float64), LOG_FLOOR))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, numerically stable."""
    shifted = logits - row_max(logits)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted


def check_probabilities(
    values: np.ndarray, columns: list[str], path: Path, *, at_most_one: bool = False
) -> None:
    """Values must be non-negative and each row must sum to one (within ``SUM_TOLERANCE``).

    With ``at_most_one`` (the rows will be renormalised: ``--classes`` or ``--renormalise``)
    a row may sum to less than one. Rows that sum to less than one everywhere are what a file
    looks like after classes were dropped without renormalising; the error says so.
    """
    if values.size and values.min() < 0:
        row, col = np.argwhere(values < 0)[0]
        raise SermmError(
            f"{path}: {_row_label(path, int(row))}: column '{columns[col]}': negative "
            f"probability {values[row, col]:g} (if these are logits, pass --scores logit)"
        )
    sums = values.sum(axis=1)
    if at_most_one:
        off = np.flatnonzero(sums - 1.0 > SUM_TOLERANCE)
    else:
        off = np.flatnonzero(np.abs(sums - 1.0) > SUM_TOLERANCE)
    dropped = off.size >= max(1, len(sums) // 2) and np.all(sums < 1.0 + SUM_TOLERANCE) and sums.max() > 0
    if off.size and not at_most_one and dropped:  # most rows short of 1, none over: classes were cut
        row = int(off[0])
        raise SermmError(
            f"{path}: {_row_label(path, row)}: probabilities sum to {sums[row]:.6g}, not 1 "
            f"({off.size} row(s) sum to less than 1, none to more): classes were probably dropped "
            "from this file without renormalising; pass --renormalise to rescale each row to sum to 1 "
            "(or --classes to keep a subset, which renormalises too)"
        )
    if off.size:
        row = int(off[0])
        raise SermmError(
            f"{path}: {_row_label(path, row)}: probabilities sum to {sums[row]:.6g}, not 1 "
            f"({off.size} such row(s); if these are logits, pass --scores logit)"
        )


def parse_classes(text: str | None) -> list[str] | None:
    """Parse ``--classes A,B,C`` (comma separated) into a list, or None."""
    if text is None:
        return None
    classes = [c.strip() for c in text.split(",") if c.strip()]
    if not classes:
        raise SermmError("--classes: no class names given")
    if len(set(classes)) != len(classes):
        raise SermmError(f"--classes: a class is named twice ({text})")
    return classes


def read_posteriors(
    path: str | Path,
    *,
    scores: Literal["auto", "probability", "logit"] = "auto",
    classes: list[str] | None = None,
) -> ScoreTable:
    """Read a posterior file; softmax declared logits; optionally keep and renormalise ``classes``.

    Logits are accepted only when declared, by ``scores="logit"`` or ``"values": "logit"``
    in the sidecar; otherwise every row must be a probability distribution.
    """
    path = Path(path)
    sidecar = read_sidecar(path)
    table = read_arrow(path)
    id_col = find_id_column(table, path)
    columns = score_columns(table, id_col, path)
    if not columns:
        raise SermmError(f"{path}: no class columns besides '{id_col}'")
    if len(set(columns)) != len(columns):
        raise SermmError(f"{path}: a class column appears twice in the header")
    twice = duplicate_alias(columns)
    if twice is not None:
        raise SermmError(f"{path}: columns '{twice[0]}' and '{twice[1]}' name one class (class names are "
                         "aliases of one another in any case: A = Angry = angry)")
    ids = read_id_column(table, id_col, path)
    values = numeric_matrix(table, columns, path)
    declared = scores if scores != "auto" else declared_values(sidecar)
    renormalise = options().renormalise
    if declared == "logit":
        values = softmax(values)
    elif declared == "probability":
        check_probabilities(values, columns, path, at_most_one=renormalise or classes is not None)
        if renormalise and classes is None:
            values = _renormalised(values, path)
    else:
        raise SermmError(
            f"{sidecar_path(path)}: 'values' must be 'probability' or 'logit' for a posterior file, "
            f"got '{declared}'"
        )
    result = ScoreTable(ids, values, columns, "posterior", sidecar, str(path))
    if classes is not None:
        result = subset_classes(result, classes)
    return result


def _renormalised(values: np.ndarray, path: Path) -> np.ndarray:
    """Rows rescaled to sum to one (``--renormalise``); a row of zeros is an error."""
    sums = values.sum(axis=1, keepdims=True)
    zero = np.flatnonzero(sums[:, 0] <= 0)
    if zero.size:
        raise SermmError(
            f"{path}: {_row_label(path, int(zero[0]))}: every probability is 0, nothing to renormalise"
        )
    return values / sums


def score_columns(table: pa.Table, id_col: str, path: Path) -> list[str]:
    """The score columns of a table: every column but the id and the text columns that are not
    scores (``prediction``, ``label``, ``text``...), which are left out with a note.

    A text column counts as extra when it is named like one, or when none of its values reads
    as a number; a score column with a few bad values is kept, for the reader to name the row.
    """
    columns, extra = [], []
    for i, name in enumerate(table.column_names):
        if name == id_col:
            continue
        column = table.column(i)
        kind = column.type
        textual = pa.types.is_string(kind) or pa.types.is_large_string(kind)
        if textual and (name.strip().casefold() in EXTRA_COLUMNS or not _any_number(column)):
            extra.append(name)
        else:
            columns.append(name)
    if extra:
        note(f"{path}: ignoring non-numeric column(s) {', '.join(extra)} (not scores)")
    return columns


def _any_number(column: pa.ChunkedArray) -> bool:
    """Whether some value of a text column (its first thousand) reads as a number."""
    values = column.slice(0, 1000).drop_null().to_pylist()
    for value in values:
        try:
            float(value)
            return True
        except (TypeError, ValueError):
            continue
    return not values


def declared_values(sidecar: Sidecar | None) -> str:
    """What a score file's columns hold by its sidecar: ``probability`` unless it says otherwise."""
    return "probability" if sidecar is None else sidecar.values


def subset_classes(table: ScoreTable, classes: list[str]) -> ScoreTable:
    """Keep only ``classes`` (in that order, matched by alias and case, named as the file names
    them) and renormalise each row over them."""
    index = key_index(table.columns)
    missing = [c for c in classes if class_key(c) not in index]
    if missing:
        raise SermmError(
            f"{table.path}: --classes names {', '.join(missing)}, not a column of this file "
            f"(its classes: {', '.join(table.columns)})"
        )
    sub = table.with_columns([table.columns[index[class_key(c)]] for c in classes])
    sums = sub.values.sum(axis=1, keepdims=True)
    zero = np.flatnonzero(sums[:, 0] <= 0)
    if zero.size:
        raise SermmError(
            f"{table.path}: {_row_label(Path(table.path or ''), int(zero[0]))}: "
            "all probability mass lies outside --classes"
        )
    sub.values = sub.values / sums
    return sub


def read_attributes(path: str | Path) -> ScoreTable:
    """Read an attribute file: ``id`` then any of arousal, valence, dominance (or EmoAct/Val/Dom)."""
    path = Path(path)
    table = read_arrow(path)
    id_col = find_id_column(table, path)
    names = score_columns(table, id_col, path)
    renamed = [MSP_ATTRIBUTE_NAMES.get(c, c) for c in names]
    unknown = [c for c in renamed if c not in ATTRIBUTES]
    if unknown or not renamed:
        raise SermmError(
            f"{path}: attribute columns must be arousal, valence, dominance "
            f"(or EmoAct, EmoVal, EmoDom); got {', '.join(unknown) or 'none'}"
        )
    if len(set(renamed)) != len(renamed):
        raise SermmError(f"{path}: an attribute column appears twice")
    ids = read_id_column(table, id_col, path)
    values = numeric_matrix(table, names, path)
    return ScoreTable(ids, values, renamed, "attribute", read_sidecar(path), str(path))


def read_embeddings(path: str | Path) -> ScoreTable:
    """Read an embedding file: ``id`` then ``e0..eN``."""
    path = Path(path)
    table = read_arrow(path)
    id_col = find_id_column(table, path)
    names = [c for c in table.column_names if c != id_col]
    bad = [c for c in names if not _EMBEDDING_COLUMN.match(c)]
    if bad or not names:
        raise SermmError(
            f"{path}: embedding columns must be named e0..eN; got {', '.join(bad[:5]) or 'none'}"
        )
    ids = read_id_column(table, id_col, path)
    values = numeric_matrix(table, names, path)
    return ScoreTable(ids, values, names, "embedding", read_sidecar(path), str(path))


def header_names(path: str | Path) -> list[str]:
    """The column names of a CSV or Parquet file, read from its header only."""
    path = check_file(path)
    fmt = file_format(path)
    try:
        if fmt.parquet:
            return list(pq.read_schema(path).names)
        with open_text(path) as handle:
            return next(csv.reader(handle, delimiter=fmt.delimiter), [])
    except (pa.ArrowException, OSError, EOFError) as exc:
        what = "unreadable Parquet file" if is_parquet(path) else "cannot read"
        raise SermmError(f"{path}: {what} ({_first_line(exc)})") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise SermmError(f"{path}: unreadable {fmt.name} file ({_first_line(exc)})") from None


def sniff_kind(path: str | Path) -> Kind:
    """Guess a score file's kind from its header: attributes, embeddings, else posteriors."""
    names = header_names(path)
    rest = [n for n in names if not is_id_name(n) and n.strip().casefold() not in EXTRA_COLUMNS]
    if rest and all(MSP_ATTRIBUTE_NAMES.get(n, n) in ATTRIBUTES for n in rest):
        return "attribute"
    if rest and all(_EMBEDDING_COLUMN.match(n) for n in rest):
        return "embedding"
    return "posterior"


def read_scores(
    path: str | Path,
    *,
    kind: Kind | Literal["auto"] = "auto",
    scores: Literal["auto", "probability", "logit"] = "auto",
    classes: list[str] | None = None,
) -> ScoreTable:
    """Read any score file, its kind given or sniffed from the header."""
    kind = sniff_kind(path) if kind == "auto" else kind
    if kind == "attribute":
        return read_attributes(path)
    if kind == "embedding":
        return read_embeddings(path)
    return read_posteriors(path, scores=scores, classes=classes)


def write_scores(table: ScoreTable, path: str | Path, *, sidecar: Sidecar | None = None) -> None:
    """Write a score table (CSV or Parquet by extension) atomically, plus its sidecar if given."""
    values = np.asfortranarray(table.values, dtype=np.float64)  # columns contiguous: no copy to Arrow
    arrays = [table.id_column, *(_arrow_floats(values[:, j]) for j in range(values.shape[1]))]
    _write_arrow(pa.table(arrays, names=["id", *table.columns]), Path(path))
    if sidecar is not None:
        write_sidecar(path, sidecar)


def _arrow_floats(column: np.ndarray) -> pa.Array:
    """A contiguous float64 numpy column as an Arrow array over the same memory (``pa.array``
    would import pandas, a slow start for a command)."""
    return pa.Array.from_buffers(pa.float64(), len(column), [None, pa.py_buffer(column)])


def write_decisions(ids: np.ndarray | IdColumn, labels: np.ndarray, path: str | Path) -> None:
    """Write a decision file ``id,label`` (CSV or Parquet by extension) atomically."""
    id_column = ids if isinstance(ids, pa.ChunkedArray) else pa.array(ids, type=pa.string())
    _write_arrow(pa.table([id_column, pa.array(labels, type=pa.string())], names=["id", "label"]), Path(path))


def _write_arrow(table: pa.Table, path: Path) -> None:
    """Write an Arrow table as Parquet, CSV or TSV (by extension, compressed by a ``.gz``,
    ``.bz2``, ``.zst`` or ``.lz4`` suffix) through a temporary file."""
    fmt = file_format(path, writing=True)
    with atomic_path(path) as tmp:
        if fmt.parquet:
            pq.write_table(table, tmp)
            return
        options_ = pacsv.WriteOptions(quoting_style="needed", delimiter=fmt.delimiter)
        if fmt.compression is None:
            pacsv.write_csv(table, tmp, write_options=options_)
        else:
            with pa.CompressedOutputStream(str(tmp), fmt.compression) as stream:
                pacsv.write_csv(table, stream, write_options=options_)
