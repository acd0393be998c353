"""Align several systems' score tables and a label table by id, never by position."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from sermm.classes import class_key, is_non_challenge, same_classes, spelled_as
from sermm.errors import SermmError
from sermm.formats import note
from sermm.labels import LabelTable, decision_classes, is_label_file, read_decisions_one_hot, read_labels
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
                        + _missing_hint(a_ids, b_ids, absent, a_name, b_name, labels, _n_common(sources),
                                        first.columns if first.kind == "posterior" else None)
                    )
        keep = keep[keep.isin(other)]
    if len(keep) == 0:
        first_name, first_ids = sources[0]
        for name, ids in sources[1:]:
            cause = _likely_cause(pd.Index(first_ids), pd.Index(ids), first_name, name, labels)
            if cause:
                raise SermmError(f"the inputs share no ids: {cause}")
        raise SermmError("the inputs share no ids (" + "; ".join(
            f"{name}: e.g. '{ids[0]}'" for name, ids in sources) + ")")
    target = keep.to_numpy()
    aligned = [t.take(pd.Index(t.ids).get_indexer(target)) for t in tables]
    if labels is not None:
        labels = labels.take(pd.Index(labels.ids).get_indexer(target))
    return Aligned(aligned, labels)


def _n_common(sources: list[tuple[str, np.ndarray]]) -> int:
    """How many ids every source holds (only for an error message: it costs a pass per source)."""
    import pandas as pd

    common = pd.Index(sources[0][1])
    for _, ids in sources[1:]:
        common = common[common.isin(pd.Index(ids))]
    return len(common)


def _normal_ids(ids: pd.Index) -> pd.Index:  # noqa: F821
    """Ids stripped of surrounding whitespace and a ``.wav`` suffix (to find why ids do not match)."""
    import pandas as pd

    text = pd.Series(np.asarray(ids, dtype=object), dtype=object).astype(str).str.strip()
    return pd.Index(text.str.replace(r"\.wav$", "", regex=True, case=False))


def _likely_cause(a_ids, b_ids, a_name: str, b_name: str, labels: LabelTable | None) -> str | None:
    """Why two id lists miss each other, when it is whitespace or a ``.wav`` suffix, or a label
    file with several Split_Set values read without --split; else None."""
    a_norm, b_norm = _normal_ids(a_ids), _normal_ids(b_ids)
    a_miss = ~a_ids.isin(b_ids)
    if a_miss.any() and a_norm[a_miss].isin(b_norm).any():
        j = int(np.flatnonzero(a_miss & a_norm.isin(b_norm))[0])
        other = b_ids[int(b_norm.get_indexer([a_norm[j]])[0])] if b_norm.is_unique else a_norm[j]
        how = "surrounding whitespace" if str(a_ids[j]).strip() == str(other).strip() else "a '.wav' suffix"
        return (
            f"the ids seem to differ only by {how} ('{a_ids[j]}' in {a_name}, '{other}' in {b_name}); "
            "write the ids the same way in both files"
        )
    if labels is not None and labels.splits and b_name == (labels.path or "labels"):
        return (
            f"{b_name} has a Split_Set column ({', '.join(labels.splits)}) and no --split was given: "
            "pass --split (e.g. --split Development) to use one split's labels"
        )
    return None


def _missing_hint(a_ids, b_ids, absent, a_name: str, b_name: str, labels: LabelTable | None,
                  n_common: int, classes: list[str] | None = None) -> str:
    """The hint after a missing-id error: the likely cause, or --on-missing drop when it would work."""
    cause = _likely_cause(a_ids, b_ids, a_name, b_name, labels) or _likely_cause(
        b_ids, a_ids, b_name, a_name, labels)
    if cause:
        return f"; {cause}"
    if labels is not None and labels.labels is not None and a_name == (labels.path or "labels"):
        rows = np.flatnonzero(np.isin(labels.ids, np.asarray(absent)))
        ox = [is_non_challenge(v) for v in labels.labels[rows]]
        if rows.size and all(ox):
            fix = (f"--classes {','.join(c for c in classes if not is_non_challenge(c))}"
                   if classes and classes != ["label"] else "--classes (the score files' classes)")
            return ("; they are all MSP-Podcast O/X rows (other, no_agreement), which the scores "
                    f"left out: leave them out here too with {fix}")
    if n_common == 0:
        return " (and the inputs share no ids at all, so --on-missing drop would not help)"
    return f" (pass --on-missing drop to keep only the {n_common:,} common ids)"


def align_columns(tables: list[ScoreTable]) -> list[ScoreTable]:
    """Give every posterior/attribute table the first one's column order and class names; the
    sets must agree (class names match by alias and case: ``Angry`` = ``angry`` = ``A``)."""
    first = tables[0]
    if any(t.kind != first.kind for t in tables):
        kinds = ", ".join(f"{t.path}: {t.kind}" for t in tables)
        raise SermmError(f"the inputs are not all of one kind ({kinds})")
    if first.kind == "embedding":
        return list(tables)
    out = [first]
    for table in tables[1:]:
        if first.kind == "posterior" and same_classes(table.columns, first.columns):
            out.append(table.with_columns(first.columns))
            continue
        if set(table.columns) != set(first.columns):
            keys_a = {class_key(c) for c in first.columns}
            keys_b = {class_key(c) for c in table.columns}
            only_a = sorted(c for c in first.columns if class_key(c) not in keys_b)
            only_b = sorted(c for c in table.columns if class_key(c) not in keys_a)
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
    decisions: bool = False,
) -> Aligned:
    """Read score files and an optional label file, check classes, and align them by id.

    When ``classes`` restricts the class set, labels outside it are dropped (that is how
    the O and X classes of MSP-Podcast leave the evaluation); otherwise they are an error.
    With ``decisions`` (a vote), decision files ``id,label`` among the inputs are read as one-hot
    posteriors over the score files' classes (or ``classes``, or the decisions' own).
    """
    if not inputs:
        raise SermmError("no input score files given (use --inputs FILE [FILE ...])")
    subset = parse_classes(classes) if isinstance(classes, str) else classes
    decided = {i for i, p in enumerate(inputs) if decisions and is_label_file(p)}
    scored = {i: read_scores(p, kind=kind, scores=scores, classes=subset)
              for i, p in enumerate(inputs) if i not in decided}
    if decided:
        first = [i for i in range(len(inputs)) if i in decided]
        columns = (scored[min(scored)].columns if scored else subset
                   or decision_classes([inputs[i] for i in first]))
        scored.update({i: read_decisions_one_hot(inputs[i], list(columns)) for i in first})
    tables = [scored[i] for i in range(len(inputs))]
    tables = align_columns(tables)
    label_table = read_labels(labels, split=split) if labels else None
    if label_table is not None and subset is not None:
        tables, label_table = _labels_within(tables, label_table, spelled_as(subset, tables[0].columns))
    elif label_table is not None and label_table.labels is not None and tables[0].kind == "posterior":
        check_label_classes(tables[0], label_table)
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
    inside = labels.within(subset)
    if not inside.any():
        raise SermmError(f"{labels.path}: no labels of the classes {', '.join(subset)}")
    if inside.all():
        return tables, labels
    dropped = labels.ids[~inside]
    outside = labels.labels[~inside]
    ox = int(np.count_nonzero([is_non_challenge(v) for v in outside]))
    what = f"{len(outside)} row(s)"
    if ox:
        rest = len(outside) - ox
        what = f"{ox} MSP-Podcast O/X row(s)" + (f" and {rest} of other classes" if rest else "")
    note(f"{labels.path}: leaving out {what} labelled outside --classes "
         f"({', '.join(sorted(set(map(str, outside)))[:5])})")
    kept = [t.take(np.flatnonzero(~np.isin(t.ids, dropped))) for t in tables]
    return kept, labels.take(np.flatnonzero(inside))


def check_label_classes(table: ScoreTable, labels: LabelTable) -> None:
    """Labels of classes the scores lack are an error, said before any id mismatch: for MSP's
    O/X rows the fix is --classes, not --on-missing. Only the labels of ids the scores hold count."""
    values = labels.require_categorical()
    keys = {class_key(c) for c in table.columns}
    uniq = np.unique(values)
    unknown = [u for u in uniq if class_key(u) not in keys]
    if not unknown:
        return
    held = np.isin(labels.ids, np.asarray(table.ids))
    if not held.any():
        return  # no id in common: align_ids says so
    if not held.all():
        present = set(np.unique(values[held]).tolist())
        if not any(u in present for u in unknown) and not all(is_non_challenge(u) for u in unknown):
            return  # the unknown labels belong to ids the scores do not hold: an id question
    raise SermmError(labels.unknown_class_message(unknown, table.columns))


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
        tables, label_table = _labels_within(tables, label_table, spelled_as(classes, table.columns))
    aligned = align_ids(tables, label_table, on_missing=on_missing)
    return aligned.tables[0].values[:, 0].astype(np.int64), aligned.labels
