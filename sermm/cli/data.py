"""``sermm-data``: convert other toolkits' outputs, balance label sets, check files against the contract."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import pandas as pd

from sermm.align import load_aligned
from sermm.cli.common import SermmGroup, check_outputs, labels_option, score_options
from sermm.errors import SermmError
from sermm.labels import LabelTable, is_label_file, read_labels
from sermm.msp import BASELINE_ORDER, CODE_TO_CLASS
from sermm.sidecar import Sidecar
from sermm.tables import (
    ScoreTable,
    check_ids,
    declared_values,
    find_id_column,
    parse_classes,
    read_arrow,
    read_scores,
    softmax,
    write_decisions,
    write_scores,
)

#: Header columns that make a file a label (or decision) file rather than a score file.
LABEL_COLUMNS = ("label", "EmoClass", "Split_Set")
BASELINE_ID_COLUMNS = ("Filename", "FileName", "id")


@click.group(cls=SermmGroup)
def main() -> None:
    """Data helpers: convert the MSP-Podcast baseline's outputs, balance a label set, check files.

    \b
    Examples:
      sermm-data convert --from msp-baseline results/dev.csv --output dev.csv \\
          --labels-output dev_labels.csv
      sermm-data balance --labels dev_labels.csv --per-class 300 --seed 0 --output dev_bal.csv
      sermm-data check a_dev.csv t_dev.csv --together --labels dev_labels.csv
    """


# ----------------------------------------------------------------------------------------- convert


def parse_vectors(raw: pd.Series, path: Path, column: str, width: int) -> np.ndarray:
    """Parse a column of quoted number lists (``"[0.1, -2.3]"``, ``"0.1,-2.3"``, ``"0.1 -2.3"``).

    One vectorised string split over the column; a row with the wrong count, a non-numeric
    or a non-finite value is an error naming the CSV line.
    """
    text = raw.astype("string").str.replace(r"^[\[\s,]+|[\]\s,]+$", "", regex=True)
    parts = text.str.split(r"[,\s]+", expand=True, regex=True)
    present = parts.notna() & parts.ne("")
    counts = present.sum(axis=1).to_numpy()
    bad = np.flatnonzero(counts != width)
    if bad.size:
        row = int(bad[0])
        raise SermmError(
            f"{path}: line {row + 2}: column '{column}': expected {width} numbers "
            f"({', '.join(BASELINE_ORDER)}), got {counts[row]} ({len(bad)} such row(s))"
        )
    numbers = parts.iloc[:, :width].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    broken = ~np.isfinite(numbers)
    if broken.any():
        row, col = np.argwhere(broken)[0]
        value = parts.iat[int(row), int(col)]
        if np.isinf(numbers[row, col]):
            what = "infinite value"
        else:
            what = "NaN value" if str(value).strip().lower() == "nan" else "non-numeric value"
        raise SermmError(
            f"{path}: line {row + 2}: column '{column}': {what} {value!r} (number {col + 1} of {width})"
        )
    return numbers


def read_msp_baseline(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Ids, logits (n, 8) and one-hot labels (n, 8) or None from the baseline's results CSV."""
    path = Path(path)
    table = read_arrow(path, id_columns=(*BASELINE_ID_COLUMNS, "Label", "Prediction"))
    id_col = find_id_column(table, path, BASELINE_ID_COLUMNS)
    if "Prediction" not in table.column_names:
        raise SermmError(
            f"{path}: no 'Prediction' column (columns are: {', '.join(table.column_names)}); "
            "expected the MSP-Podcast baseline's Filename,Label,Prediction"
        )
    ids = np.asarray(table.column(id_col).to_numpy(zero_copy_only=False), dtype=object)
    check_ids(ids, path)
    width = len(BASELINE_ORDER)
    logits = parse_vectors(table.column("Prediction").to_pandas(), path, "Prediction", width)
    onehot = None
    if "Label" in table.column_names:
        onehot = parse_vectors(table.column("Label").to_pandas(), path, "Label", width)
        empty = np.flatnonzero(onehot.max(axis=1) <= 0)
        if empty.size:
            row = int(empty[0]) + 2
            raise SermmError(f"{path}: line {row}: column 'Label': no class has a positive value")
    return ids, logits, onehot


@main.command()
@click.argument("input_path", metavar="FILE", type=click.Path(dir_okay=False))
@click.option(
    "--from",
    "source",
    required=True,
    type=click.Choice(["msp-baseline"]),
    help="The layout of FILE. msp-baseline: the MSP-Podcast challenge baseline's results CSV "
    "(Filename,Label,Prediction; 8 logits in the order A S H U F D C N).",
)
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="Posterior file.")
@click.option(
    "--labels-output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the reference labels (argmax of the Label column) as id,label.",
)
def convert(input_path: str, source: str, output: str, labels_output: str | None) -> None:
    """Turn another toolkit's output into a sermm posterior file (and label file).

    The MSP-Podcast baseline writes raw logits; they are softmaxed, the columns named
    angry, sad, happy, surprise, fear, disgust, contempt, neutral, and a sidecar
    (system msp-baseline, values probability, classes) is written beside the output.

    \b
    Example:
      sermm-data convert --from msp-baseline model/results/dev.csv --output base_dev.csv \\
          --labels-output dev_labels.csv
    """
    check_outputs([input_path], {"--output": output, "--labels-output": labels_output})
    ids, logits, onehot = read_msp_baseline(input_path)
    if labels_output is not None and onehot is None:
        raise SermmError(f"{input_path}: --labels-output needs a 'Label' column, and the file has none")
    classes = [CODE_TO_CLASS[c] for c in BASELINE_ORDER]
    table = ScoreTable(ids, softmax(logits), classes, "posterior")
    sidecar = Sidecar(system="msp-baseline", classes=classes, values="probability", inputs=[input_path])
    write_scores(table, output, sidecar=sidecar)
    written = f"{output}"
    if labels_output is not None:
        write_decisions(ids, np.asarray(classes, dtype=object)[onehot.argmax(axis=1)], labels_output)
        written += f" and {labels_output}"
    click.echo(f"{input_path}: {len(ids)} rows ({source}, {len(classes)} classes) -> {written}")


# ----------------------------------------------------------------------------------------- balance


def balanced_rows(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Row indices of up to ``per_class`` items per class, drawn without replacement, in file order."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(labels))
    _, codes = np.unique(labels, return_inverse=True)
    order = perm[np.argsort(codes[perm], kind="stable")]
    grouped = codes[order]
    starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    return np.sort(order[rank < per_class])


@main.command()
@labels_option(required=True, help="Categorical label file (id,label or MSP-Podcast labels_consensus.csv).")
@click.option("--per-class", required=True, type=click.IntRange(min=1), help="Most items kept per class.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the random draw.")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="Label file (id,label).")
@click.option(
    "--classes",
    default=None,
    metavar="A,B,...",
    help="Keep only these classes (comma separated), e.g. leave out MSP-Podcast's other/no_agreement.",
)
def balance(
    labels: str, split: str | None, per_class: int, seed: int, output: str, classes: str | None
) -> None:
    """Draw a class-balanced subset of a label file (to tune fusion on, as TalTech did).

    Up to --per-class ids of each class are drawn without replacement with a seeded
    generator; a class with fewer items keeps all of them, and the command says so.
    The output is id,label (class names, also for MSP-Podcast input) in the input's order.

    \b
    Example:
      sermm-data balance --labels labels_consensus.csv --split Development \\
          --classes angry,sad,happy,surprise,fear,disgust,contempt,neutral \\
          --per-class 300 --seed 0 --output dev_bal.csv
    """
    check_outputs([labels], {"--output": output})
    table = read_labels(labels, split=split)
    if table.labels is None:
        raise SermmError(f"{labels}: balance needs categorical labels (a 'label' or 'EmoClass' column)")
    subset = parse_classes(classes)
    if subset is not None:
        table = table.take(np.flatnonzero(table.within(subset)))
        if len(table) == 0:
            raise SermmError(f"{labels}: no labels of the classes {', '.join(subset)}")
    rows = balanced_rows(table.labels, per_class, seed)
    uniq, counts = np.unique(table.labels, return_counts=True)
    found = dict(zip(uniq.tolist(), counts.tolist(), strict=True))
    for name in sorted(set(found) | set(subset or ())):
        count = found.get(name, 0)
        if count == 0:
            click.echo(f"class '{name}': no items (named in --classes)")
        elif count < per_class:
            click.echo(f"class '{name}': only {count} item(s), keeping all of them")
    write_decisions(table.ids[rows], table.labels[rows], output)
    click.echo(f"{output}: {len(rows)} of {len(table)} ids, {len(found)} classes, up to {per_class} each")


# ------------------------------------------------------------------------------------------- check


def describe_scores(table: ScoreTable, softmaxed: bool) -> str:
    """One line on a score table: kind, rows, columns, system."""
    n = len(table.columns)
    if table.kind == "posterior":
        shape = f"{n} classes ({', '.join(table.columns)})" + (", logits softmaxed" if softmaxed else "")
    elif table.kind == "attribute":
        shape = f"columns {', '.join(table.columns)}"
    else:
        shape = f"{n} dimensions ({table.columns[0]}..{table.columns[-1]})"
    named = table.sidecar is not None and table.sidecar.system
    origin = "sidecar" if named else "file name, no sidecar system"
    return f"{table.kind}, {len(table)} rows, {shape}, system '{table.system}' ({origin})"


def describe_labels(table: LabelTable) -> str:
    """One line on a label table: rows, class counts and/or attribute names."""
    parts = [f"labels, {len(table)} rows"]
    if table.labels is not None:
        uniq, counts = np.unique(table.labels, return_counts=True)
        shown = ", ".join(f"{u} {c}" for u, c in zip(uniq, counts, strict=True))
        parts.append(f"{len(uniq)} classes ({shown})")
    if table.attributes is not None:
        parts.append(f"attributes {', '.join(table.attribute_names)}")
    return ", ".join(parts)


def _is_labels(path: str, kind: str) -> bool:
    if kind != "auto":
        return kind == "labels"
    return is_label_file(path)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--kind",
    type=click.Choice(["auto", "posterior", "attribute", "embedding", "labels"]),
    default="auto",
    show_default=True,
    help="What the files are; auto reads it from the header (label/EmoClass makes a label file).",
)
@score_options
@labels_option()
@click.option(
    "--together",
    is_flag=True,
    help="Also load all FILES (and --labels) as one aligned set, as fusion would: class sets must "
    "agree and every id must be in every file (see --on-missing). --labels implies it.",
)
def check(
    files: tuple[str, ...],
    kind: str,
    classes: str | None,
    scores: str,
    on_missing: str,
    labels: str | None,
    split: str | None,
    together: bool,
) -> None:
    """Check files against the sermm file contract; one line per file.

    A quick way to see whether a file another toolkit wrote is acceptable: each file is
    read and validated as fusion or calibration would read it. The first bad file stops
    the check with a one-line error and exit code 1.

    \b
    Examples:
      sermm-data check a_dev.csv t_dev.csv
      sermm-data check logits.csv --scores logit
      sermm-data check a_dev.csv t_dev.csv --together --labels labels_consensus.csv \\
          --split Development --classes angry,sad,happy,neutral
    """
    subset = parse_classes(classes)
    score_files = []
    for path in files:
        if _is_labels(path, kind):
            line = describe_labels(read_labels(path, split=split))
        else:
            table = read_scores(path, kind=kind, scores=scores, classes=subset)  # type: ignore[arg-type]
            declared = scores if scores != "auto" else declared_values(table.sidecar)
            line = describe_scores(table, table.kind == "posterior" and declared == "logit")
            score_files.append(path)
        click.echo(f"{path}: {line}")
    if not (together or labels):
        return
    if len(score_files) != len(files):
        raise SermmError("--together: give score files as FILES and the label file with --labels")
    aligned = load_aligned(
        score_files,
        labels,
        kind=kind,  # type: ignore[arg-type]
        scores=scores,  # type: ignore[arg-type]
        classes=subset,
        split=split,
        on_missing=on_missing,  # type: ignore[arg-type]
    )
    with_labels = f" and labels {labels}" if labels else ""
    click.echo(
        f"together: {len(aligned.tables[0])} aligned rows, {len(aligned.columns)} columns, "
        f"systems {', '.join(aligned.systems)}{with_labels}"
    )
