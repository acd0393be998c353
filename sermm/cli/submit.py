"""``sermm-submit``: turn a final score or decision file into an MSP-Podcast challenge submission."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import pandas as pd

from sermm.atomic import atomic_path
from sermm.cli.common import SermmCommand, check_outputs, scores_option, split_option
from sermm.errors import SermmError
from sermm.formats import file_format, open_text
from sermm.labels import is_label_file, read_labels
from sermm.msp import BASELINE_ORDER, class_to_code
from sermm.tables import (
    ATTRIBUTES,
    check_file,
    check_ids,
    find_id_column,
    is_id_name,
    is_parquet,
    read_arrow,
    read_attributes,
    read_posteriors,
    sniff_kind,
)

#: The submission's attribute columns, in the order the challenge wants them.
MSP_ATTRIBUTE_COLUMNS = {"arousal": "EmoAct", "valence": "EmoVal", "dominance": "EmoDom"}
ATTRIBUTE_RANGE = (1.0, 7.0)
_SHOWN = 3


def categorical_codes(path: str | Path, scores: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Ids and MSP letter codes from a posterior file (argmax) or a decision file ``id,label``."""
    if is_label_file(path):
        table = read_labels(path)
        labels = table.require_categorical()
        uniq, inverse = np.unique(labels, return_inverse=True)
        codes = np.array([_code(u, path, f"label '{u}'") for u in uniq], dtype=object)
        return table.ids, codes[inverse]
    kind = sniff_kind(path)
    if kind != "posterior":
        raise SermmError(
            f"{path}: is an {kind} file; --format msp-categorical needs a posterior file "
            "(id + one column per class) or a decision file (id,label)"
        )
    table = read_posteriors(path, scores=scores)
    codes = np.array([_code(c, path, f"column '{c}'") for c in table.columns], dtype=object)
    return table.ids, codes[table.values.argmax(axis=1)]


def _code(name: str, path: str | Path, where: str) -> str:
    try:
        return class_to_code(name)
    except SermmError as exc:
        raise SermmError(f"{path}: {where}: {exc}") from None


def attribute_values(path: str | Path) -> tuple[np.ndarray, np.ndarray, int]:
    """Ids, arousal/valence/dominance clipped to [1, 7], and how many values were clipped."""
    table = read_attributes(path)
    missing = [a for a in ATTRIBUTES if a not in table.columns]
    if missing:
        raise SermmError(
            f"{path}: --format msp-attributes needs arousal, valence and dominance "
            f"(or EmoAct, EmoVal, EmoDom); missing {', '.join(missing)}"
        )
    values = table.with_columns(list(ATTRIBUTES)).values
    low, high = ATTRIBUTE_RANGE
    clipped = int(np.count_nonzero((values < low) | (values > high)))
    return table.ids, np.clip(values, low, high), clipped


def read_expected_ids(path: str | Path, split: str | None = None) -> np.ndarray:
    """The expected ids: one per line, or a CSV/TSV/Parquet file with an id/FileName column
    (``split``: the rows of that Split_Set of an MSP-Podcast labels_consensus.csv)."""
    path = check_file(path)
    if split is not None:
        return np.asarray(read_labels_ids(path, split), dtype=object)
    if not is_parquet(path):
        try:
            with open_text(path) as handle:
                lines = pd.Series(handle.read().splitlines(), dtype=object)
        except (OSError, UnicodeDecodeError, EOFError) as exc:
            raise SermmError(f"{path}: cannot read ({exc})") from None
        first = lines.iloc[0].strip() if len(lines) else ""
        if "," not in first and "\t" not in first and not is_id_name(first):
            stripped = lines.str.strip()
            stripped = stripped[stripped != ""]
            if stripped.empty:
                raise SermmError(f"{path}: no ids")
            duplicated = stripped[stripped.duplicated()]
            if not duplicated.empty:
                raise SermmError(
                    f"{path}: line {duplicated.index[0] + 1}: id '{duplicated.iloc[0]}' is listed twice"
                )
            return stripped.to_numpy(dtype=object)
    table = read_arrow(path)
    ids = table.column(find_id_column(table, path)).to_numpy(zero_copy_only=False)
    check_ids(ids, path)
    return np.asarray(ids, dtype=object)


def read_labels_ids(path: Path, split: str) -> np.ndarray:
    """The ids of one Split_Set of an MSP-Podcast labels file (its labels need not be there)."""
    import pyarrow.compute as pc

    table = read_arrow(path)
    if "Split_Set" not in table.column_names:
        raise SermmError(f"{path}: --split needs a 'Split_Set' column (MSP-Podcast layout)")
    column = table.column("Split_Set").cast("string")
    found = sorted(set(column.to_pylist()) - {None})
    same = [v for v in found if v.casefold() == split.strip().casefold()]
    if not same:
        raise SermmError(f"{path}: no rows with Split_Set '{split}' (found: {', '.join(found)})")
    table = table.filter(pc.equal(column, same[0]))
    ids = table.column(find_id_column(table, path)).to_numpy(zero_copy_only=False)
    check_ids(ids, path)
    return ids


def check_expected(ids: np.ndarray, expected: np.ndarray, source: str, ids_path: str) -> None:
    """Every expected id must be there (ids are already unique) and no other id may be."""
    have = pd.Index(ids)
    want = pd.Index(expected)
    missing = want[~want.isin(have)]
    extra = have[~have.isin(want)]
    problems = []
    if len(missing):
        problems.append(f"{len(missing)} id(s) of {ids_path} are missing ({_first_few(missing)})")
    if len(extra):
        problems.append(f"{len(extra)} id(s) are not in {ids_path} ({_first_few(extra)})")
    if problems:
        raise SermmError(f"{source}: " + "; ".join(problems))


def write_submission(path: str | Path, columns: dict[str, np.ndarray]) -> None:
    """Write the submission atomically, in the given column order: CSV as the challenge asks
    (unquoted unless a value needs it), or TSV, compressed (``.csv.gz``) or Parquet by extension."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = pd.DataFrame(columns)
    fmt = file_format(path, writing=True)
    with atomic_path(path) as tmp:
        if fmt.parquet:
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp)
        elif fmt.compression is None:
            frame.to_csv(tmp, index=False, sep=fmt.delimiter)
        else:
            with pa.CompressedOutputStream(str(tmp), fmt.compression) as stream:
                stream.write(frame.to_csv(index=False, sep=fmt.delimiter).encode())


def _first_few(ids: pd.Index) -> str:
    shown = ", ".join(f"'{i}'" for i in ids[:_SHOWN])
    return "e.g. " + shown + (" ..." if len(ids) > _SHOWN else "")


def _distribution(codes: np.ndarray) -> str:
    uniq, counts = np.unique(codes, return_counts=True)
    found = dict(zip(uniq.tolist(), counts.tolist(), strict=True))
    order = [c for c in BASELINE_ORDER if c in found] + sorted(set(found) - set(BASELINE_ORDER))
    return " ".join(f"{c}={found[c]}" for c in order)


@click.command(cls=SermmCommand)
@click.option(
    "--input",
    "--inputs",
    "-i",
    "input_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Final scores: a posterior file (argmax is taken), a decision file id,label, "
    "or an attribute file (id,arousal,valence,dominance or EmoAct/EmoVal/EmoDom).",
)
@click.option(
    "--format",
    "fmt",
    required=True,
    type=click.Choice(["msp-categorical", "msp-attributes"]),
    help="msp-categorical writes FileName,EmoClass (letter codes); msp-attributes writes "
    "FileName,EmoAct,EmoVal,EmoDom clipped to [1, 7].",
)
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="Submission file: CSV (the challenge's), or .tsv, .csv.gz, .parquet by extension.")
@click.option(
    "--ids",
    "ids_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Expected ids (e.g. the test-set file list): one per line, or a CSV with an id/FileName "
    "column. Every one must be present exactly once and no other id may appear.",
)
@split_option("With --ids labels_consensus.csv: the Split_Set whose ids are expected (e.g. Test1).")
@scores_option
def main(
    input_path: str, fmt: str, output: str, ids_path: str | None, split: str | None, scores: str
) -> None:
    """Write an MSP-Podcast challenge submission from a final score or decision file.

    Categorical: a posterior file gives its argmax class, a decision file (id,label) its
    label; class names become the challenge letter codes (angry=A, sad=S, happy=H,
    surprise=U, fear=F, disgust=D, contempt=C, neutral=N, other=O, no_agreement=X).
    Attributes: arousal/valence/dominance are clipped to the challenge range [1, 7].
    Rows are sorted by FileName; the file is written whole or not at all.

    \b
    Examples:
      sermm-submit --input final.csv --format msp-categorical --output submission.csv \\
          --ids test_files.txt
      sermm-submit --input attributes.csv --format msp-attributes --output submission.csv
    """
    check_outputs([input_path, ids_path], {"--output": output})
    if fmt == "msp-categorical":
        ids, codes = categorical_codes(input_path, scores)
        columns = {"FileName": ids, "EmoClass": codes}
        detail = f"EmoClass counts: {_distribution(codes)}"
    else:
        ids, values, clipped = attribute_values(input_path)
        columns = {"FileName": ids}
        columns.update({MSP_ATTRIBUTE_COLUMNS[a]: values[:, j] for j, a in enumerate(ATTRIBUTES)})
        detail = f"{clipped} of {values.size} value(s) clipped to [1, 7]"
    if split is not None and ids_path is None:
        raise SermmError(
            "--split picks the expected ids of an MSP-Podcast labels file: pass --ids labels_consensus.csv"
        )
    if ids_path is not None:
        check_expected(ids, read_expected_ids(ids_path, split), input_path, ids_path)
        detail += f"; every id of {ids_path}" + (f" (Split_Set {split})" if split else "") + " present once"
    order = np.argsort(np.asarray(ids, dtype=str), kind="stable")
    write_submission(output, {name: np.asarray(v)[order] for name, v in columns.items()})
    click.echo(f"{output}: {len(ids)} rows ({fmt}); {detail}")
