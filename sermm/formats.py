"""File formats by extension, the reading options a command sets, and notes on stderr.

sermm reads and writes CSV (``.csv``, also ``.txt``), TSV (``.tsv``, ``.tab``) and Parquet
(``.parquet``, ``.pq``); CSV and TSV may be compressed with any codec pyarrow has
(``.gz``, ``.bz2``, ``.zst``, ``.lz4``: ``scores.csv.gz``). A file without an extension is
read as CSV. Any other extension (``.xlsx``, ``.json``) is refused in one line that names
these formats, rather than parsed as CSV.

The options that change how every file of a command is read (``--delimiter``,
``--renormalise``, ``--group-column``) are held in :func:`reading_options`, which the
commands enter for the length of one invocation; library callers may enter it too.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

import pyarrow as pa

from sermm.errors import SermmError

#: Compression suffixes and the pyarrow codec each one names.
COMPRESSIONS = {".gz": "gzip", ".gzip": "gzip", ".bz2": "bz2", ".zst": "zstd", ".zstd": "zstd", ".lz4": "lz4"}
#: Text table suffixes and their field separator.
TEXT_SUFFIXES = {".csv": ",", ".txt": ",", ".tsv": "\t", ".tab": "\t"}
PARQUET_SUFFIXES = (".parquet", ".pq")
FORMATS_READ = (
    "CSV (.csv), TSV (.tsv) or Parquet (.parquet, .pq); CSV and TSV may be compressed "
    "(.csv.gz, .tsv.bz2, .csv.zst, .csv.lz4)"
)


@dataclass(frozen=True)
class FileFormat:
    """How a file is stored: ``parquet`` or ``text`` (with its ``delimiter``), and its compression codec."""

    kind: str
    delimiter: str = ","
    compression: str | None = None

    @property
    def parquet(self) -> bool:
        return self.kind == "parquet"

    @property
    def name(self) -> str:
        """``CSV``, ``TSV``, ``Parquet`` (``, gzip`` added when compressed), for messages."""
        base = "Parquet" if self.parquet else "TSV" if self.delimiter == "\t" else "CSV"
        return base + (f" ({self.compression})" if self.compression else "")


def _suffixes(path: str | Path) -> tuple[str, str | None]:
    """The format suffix and the compression suffix (or None) of a file name, lower case."""
    name = Path(path).name.lower()
    stem, dot, last = name.rpartition(".")
    if not dot or not stem:
        return "", None
    last = "." + last
    if last in COMPRESSIONS:
        _, dot2, inner = stem.rpartition(".")
        return ("." + inner if dot2 else ""), last
    return last, None


def file_format(path: str | Path, *, delimiter: str | None = None, writing: bool = False) -> FileFormat:
    """The format of ``path`` by its extension; an unknown extension is a one-line error naming
    the formats sermm reads.

    ``delimiter`` overrides a text file's separator. When reading, the ``--delimiter`` in force
    (:func:`reading_options`) does too, for each file whose header holds it; a file whose header
    holds only its extension's separator (the comma-separated labels beside semicolon-separated
    scores) keeps that one. Outputs are written with the extension's separator.
    """
    suffix, compression = _suffixes(path)
    codec = COMPRESSIONS[compression] if compression else None
    if codec is not None and not pa.Codec.is_available(codec):
        raise SermmError(f"{path}: this pyarrow has no {codec} codec; use .csv.gz or an uncompressed file")
    if suffix in PARQUET_SUFFIXES:
        if codec:
            raise SermmError(f"{path}: Parquet files are compressed inside; drop the '{compression}' suffix")
        return FileFormat("parquet")
    if suffix in TEXT_SUFFIXES or suffix == "" or _looks_like_id_suffix(suffix):
        default = TEXT_SUFFIXES.get(suffix, ",")
        sep = delimiter
        if sep is None and not writing and options().delimiter is not None:
            sep = _chosen_delimiter(path, options().delimiter, default, codec)
        return FileFormat("text", sep or default, codec)
    raise SermmError(f"{path}: unknown file type '{suffix}'; sermm reads {FORMATS_READ}")


def _chosen_delimiter(path: str | Path, given: str, default: str, codec: str | None) -> str:
    """``--delimiter`` for this file, unless its header holds only the extension's separator."""
    if given == default:
        return given
    try:
        if codec is None:
            with open(path, encoding="utf-8-sig", errors="replace") as handle:
                header = handle.readline()
        else:
            with pa.input_stream(str(path), compression=codec) as stream:
                header = stream.read(65536).decode("utf-8", errors="replace").split("\n", 1)[0]
    except (OSError, pa.ArrowException):
        return given  # the reader says what is wrong with the file
    return default if given not in header and default in header else given


def _looks_like_id_suffix(suffix: str) -> bool:
    """A suffix that is part of a name rather than a file type (``dev.v2``, ``run.2024-01``)."""
    return any(ch.isdigit() for ch in suffix) or len(suffix) > 9


def is_parquet(path: str | Path) -> bool:
    """Parquet is chosen by the ``.parquet`` / ``.pq`` extension; everything else is text."""
    return _suffixes(path)[0] in PARQUET_SUFFIXES and _suffixes(path)[1] is None


def open_text(path: str | Path, *, errors: str = "strict") -> IO[str]:
    """Open a text table for reading as UTF-8 text (BOM skipped), decompressing it by extension."""
    fmt = file_format(path)
    if fmt.compression is None:
        return open(path, newline="", encoding="utf-8-sig", errors=errors)
    stream = pa.input_stream(str(path), compression=fmt.compression)
    return io.TextIOWrapper(stream, encoding="utf-8-sig", newline="", errors=errors)  # type: ignore[arg-type]


def unknown_separator(header: str) -> str | None:
    """A likely separator in a header line that parsed as one column, or None."""
    for sep, name in (("\t", "tabs"), (";", "semicolons"), ("|", "'|'"), (",", "commas"), (" ", "spaces")):
        if sep in header.strip():
            return name
    return None


# ---------------------------------------------------------------------------------- reading options


@dataclass(frozen=True)
class ReadOptions:
    """Options that change how the files of one command are read.

    ``delimiter``: the field separator of text tables (None: by extension); ``renormalise``:
    rescale posterior rows that do not sum to one (classes were dropped) instead of refusing
    them; ``group_column``: the column of a ``--groups`` file that holds the groups;
    ``quiet``: no notes on stderr.
    """

    delimiter: str | None = None
    renormalise: bool = False
    group_column: str | None = None
    quiet: bool = False


_DEFAULT = ReadOptions()
_OPTIONS: contextvars.ContextVar[ReadOptions | None] = contextvars.ContextVar(
    "sermm_read_options", default=None
)


def options() -> ReadOptions:
    """The reading options in force."""
    return _OPTIONS.get() or _DEFAULT


@contextlib.contextmanager
def reading_options(**changes: object) -> Iterator[ReadOptions]:
    """Read files under changed :class:`ReadOptions` for the length of the block."""
    token = _OPTIONS.set(replace(options(), **changes))  # type: ignore[arg-type]
    try:
        yield options()
    finally:
        _OPTIONS.reset(token)


def parse_delimiter(text: str | None) -> str | None:
    """``--delimiter``: one character, or a name (``tab``, ``comma``, ``semicolon``, ``pipe``, ``space``,
    or ``\\t``)."""
    if text is None:
        return None
    named = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|", "space": " "}
    sep = named.get(text.lower(), text)
    if len(sep) != 1:
        raise SermmError(
            f"--delimiter: expected one character or tab/comma/semicolon/pipe/space, got '{text}'"
        )
    return sep


_HELD: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("sermm_held_notes", default=None)


def note(message: str) -> None:
    """Tell the user something they should know that is not an error (one line on stderr).

    Inside :func:`held_notes` the line waits for the end of the command, so that a command that
    then fails says only its one-line error.
    """
    if options().quiet:
        return
    held = _HELD.get()
    if held is not None:
        if message not in held:
            held.append(message)
    else:
        print(f"note: {message}", file=sys.stderr)


@contextlib.contextmanager
def held_notes() -> Iterator[list[str]]:
    """Hold the notes of a block; they are printed when it ends well and dropped when it raises."""
    held: list[str] = []
    token = _HELD.set(held)
    try:
        yield held
    finally:
        _HELD.reset(token)
    for message in held:
        print(f"note: {message}", file=sys.stderr)
