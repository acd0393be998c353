"""Align several systems' score tables and a label table by id, never by position."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from sermm.errors import SermmError
from sermm.labels import LabelTable, read_labels
from sermm.tables import IdColumn, Kind, ScoreTable, parse_classes, read_scores

OnMissing = Literal["error", "drop"]


@dataclass
class Aligned:
    """Score tables (and labels) sharing one id order and one column order."""

    tables: list[ScoreTable]
    labels: LabelTable | None

    @property
    def ids(self) -> np.ndarray:
        """The common ids, in order."""
        return self.tables[0].ids

    @property
    def id_column(self) -> IdColumn:
        """The common ids as an Arrow string column (what the writers take)."""
        return self.tables[0].id_column

    @property
    def columns(self) -> list[str]:
        """The common classes (or attributes, or the first table's embedding columns)."""
        return self.tables[0].columns

    @property
    def systems(self) -> list[str]:
        """The system names of the inputs, in order."""
        return [t.system for t in self.tables]

    def y(self) -> np.ndarray:
        """The categorical labels as indices into ``columns``."""
        if self.labels is None:
            raise SermmError("labels are needed here: pass --labels FILE")
        return self.labels.indices(self.columns)


def _describe_missing(ids: np.ndarray, source: str, where: str) -> str:
    shown = ", ".join(f"'{i}'" for i in ids[:3])
    more = " ..." if len(ids) > 3 else ""
    return f"{len(ids)} id(s) of {source} are missing from {where} (e.g. {shown}{more})"


def align_ids(
    tables: list[ScoreTable],
    labels: LabelTable | None = None,
    *,
    on_missing: OnMissing = "error",
) -> Aligned:
    """Put every table (and the labels) in the first table's id order.

    With ``on_missing="error"`` any id present in one input and absent from another is an
    error naming the count and the first few ids; with ``"drop"`` only the common ids stay.
    """
    first = tables[0]
    if all(first.same_ids(t) for t in tables[1:]) and (
        labels is None or (len(labels) == len(first) and np.array_equal(labels.ids, first.ids))
    ):
        return Aligned([first, *(t.with_ids_of(first) for t in tables[1:])], labels)
    import pandas as pd

    sources = [(t.path or t.system, t.ids) for t in tables]
    if labels is not None:
        sources.append((labels.path or "labels", labels.ids))

    keep = pd.Index(sources[0][1])
    for name, ids in sources[1:]:
        other = pd.Index(ids)
        if on_missing == "error":
            for a_name, a_ids, b_name, b_ids in (
                (name, other, sources[0][0], keep),
                (sources[0][0], keep, name, other),
            ):
                absent = a_ids[~a_ids.isin(b_ids)]
                if len(absent):
                    raise SermmError(
                        _describe_missing(np.asarray(absent), a_name, b_name)
                        + " (pass --on-missing drop to keep only the common ids)"
                    )
        keep = keep[keep.isin(other)]
    if len(keep) == 0:
        raise SermmError("the inputs share no ids")
    target = keep.to_numpy()
    aligned = [t.take(pd.Index(t.ids).get_indexer(target)) for t in tables]
    if labels is not None:
        labels = labels.take(pd.Index(labels.ids).get_indexer(target))
    return Aligned(aligned, labels)


def align_columns(tables: list[ScoreTable]) -> list[ScoreTable]:
    """Give every posterior/attribute table the first one's column order; the sets must agree."""
    first = tables[0]
    if any(t.kind != first.kind for t in tables):
        kinds = ", ".join(f"{t.path}: {t.kind}" for t in tables)
        raise SermmError(f"the inputs are not all of one kind ({kinds})")
    if first.kind == "embedding":
        return list(tables)
    out = [first]
    for table in tables[1:]:
        if set(table.columns) != set(first.columns):
            only_a = sorted(set(first.columns) - set(table.columns))
            only_b = sorted(set(table.columns) - set(first.columns))
            raise SermmError(
                f"class sets disagree: {first.path} has {', '.join(only_a) or 'nothing'} that "
                f"{table.path} lacks, which has {', '.join(only_b) or 'nothing'} extra "
                "(pick a common subset with --classes)"
            )
        out.append(table.with_columns(first.columns))
    return out


def load_aligned(
    inputs: list[str],
    labels: str | None = None,
    *,
    kind: Kind | Literal["auto"] = "auto",
    scores: Literal["auto", "probability", "logit"] = "auto",
    classes: str | list[str] | None = None,
    split: str | None = None,
    on_missing: OnMissing = "error",
) -> Aligned:
    """Read score files and an optional label file, check classes, and align them by id.

    When ``classes`` restricts the class set, labels outside it are dropped (that is how
    the O and X classes of MSP-Podcast leave the evaluation); otherwise they are an error.
    """
    if not inputs:
        raise SermmError("no input score files given (use --inputs FILE [FILE ...])")
    subset = parse_classes(classes) if isinstance(classes, str) else classes
    tables = [read_scores(p, kind=kind, scores=scores, classes=subset) for p in inputs]
    tables = align_columns(tables)
    label_table = read_labels(labels, split=split) if labels else None
    if label_table is not None and subset is not None:
        tables, label_table = _labels_within(tables, label_table, subset)
    aligned = align_ids(tables, label_table, on_missing=on_missing)
    if aligned.labels is not None and aligned.labels.labels is not None:
        if aligned.tables[0].kind == "posterior":
            aligned.y()
    return aligned


def _labels_within(
    tables: list[ScoreTable], labels: LabelTable, subset: list[str]
) -> tuple[list[ScoreTable], LabelTable]:
    """Leave out the labels of classes outside ``subset``, and the rows of the tables they label."""
    if labels.labels is None:
        return tables, labels
    inside = np.isin(labels.labels, subset)
    if not inside.any():
        raise SermmError(f"{labels.path}: no labels of the classes {', '.join(subset)}")
    if inside.all():
        return tables, labels
    dropped = labels.ids[~inside]
    kept = [t.take(np.flatnonzero(~np.isin(t.ids, dropped))) for t in tables]
    return kept, labels.take(np.flatnonzero(inside))


def labelled_rows(
    table: ScoreTable,
    labels: str,
    *,
    split: str | None = None,
    classes: list[str] | None = None,
    on_missing: OnMissing = "error",
) -> tuple[np.ndarray, LabelTable]:
    """The rows of ``table`` that the label file labels, and their labels in that order.

    Ids are matched as :func:`load_aligned` matches them (``on_missing``; with ``classes``,
    labels of other classes leave the evaluation), but ``table`` itself keeps every row: the
    labels only say which rows to score.
    """
    numbered = table.replace(values=np.arange(len(table), dtype=np.float64)[:, None], columns=["row"])
    label_table = read_labels(labels, split=split)
    tables = [numbered]
    if classes is not None:
        tables, label_table = _labels_within(tables, label_table, classes)
    aligned = align_ids(tables, label_table, on_missing=on_missing)
    return aligned.tables[0].values[:, 0].astype(np.int64), aligned.labels
