"""Files around fusion: group files, inputs checked against a saved model, outputs, reports."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa

from sermm.align import Aligned, align_ids
from sermm.atomic import write_text
from sermm.classes import same_classes
from sermm.errors import SermmError
from sermm.formats import options
from sermm.fusion.base import Fuser
from sermm.labels import is_label_file, read_decisions_one_hot
from sermm.metrics import DEV_METRICS, METRICS
from sermm.tables import (
    _stem,
    check_ids,
    find_id_column,
    read_arrow,
    read_scores,
    sniff_kind,
)

#: Group columns looked for, in order, when ``--group-column`` names none: sermm's, MSP-Podcast's.
GROUP_COLUMNS = ("group", "SpkrID")


def read_groups(path: str, ids: np.ndarray, column: str | None = None) -> np.ndarray:
    """The group of every id in ``ids`` from an ``id,group`` file (speaker, session, ...).

    The groups are in ``column`` (default: the ``--group-column`` in force), else ``group``, else
    MSP-Podcast's ``SpkrID``, so ``labels_consensus.csv`` serves as a groups file as it is.
    """
    table = read_arrow(path)
    id_col = find_id_column(table, Path(path))
    column = column or options().group_column
    if column is not None:
        if column not in table.column_names:
            raise SermmError(f"{path}: no column '{column}' (--group-column; columns are: "
                             f"{', '.join(table.column_names[:10])})")
    else:
        found = [c for c in GROUP_COLUMNS if c in table.column_names]
        if not found:
            raise SermmError(
                f"{path}: no 'group' column (expected id,group, or MSP-Podcast's SpkrID; name another "
                f"column with --group-column; columns are: {', '.join(table.column_names[:10])})"
            )
        column = found[0]
    group_ids = table.column(id_col).to_numpy(zero_copy_only=False)
    check_ids(group_ids, Path(path))
    groups = np.asarray(table.column(column).cast("string").to_numpy(zero_copy_only=False), dtype=object)
    import pandas as pd

    where = pd.Index(group_ids).get_indexer(ids)
    if (where < 0).any():
        missing = ids[where < 0]
        shown = ", ".join(f"'{i}'" for i in missing[:3])
        raise SermmError(f"{path}: no group for {len(missing)} id(s) of the inputs (e.g. {shown})")
    chosen = groups[where]
    if any(g is None or g == "" for g in chosen):
        raise SermmError(f"{path}: empty group for some ids")
    return chosen


def metric_names(kind: str, columns: list[str]) -> dict[str, str]:
    """Metric keys and their headers (from the metric table): the dev metrics, or CCC per attribute."""
    if kind == "attribute":
        return {f"ccc_{j}": f"{METRICS['ccc'].title} {c}" for j, c in enumerate(columns)}
    return {key: METRICS[key].title for key in DEV_METRICS}


#: Split names a file name may carry beside the system's name (``words_dev.csv``, ``a-eval.csv``).
SPLIT_WORDS = ("dev", "development", "devel", "eval", "evaluation", "test", "test1", "test2", "test3",
               "train", "training", "valid", "validation", "val")


def bare_name(name: str) -> str:
    """A system or file name without a split word at its start or end: ``words_dev`` -> ``words``,
    ``dev.a`` -> ``a`` (case-insensitive)."""
    parts = re.split(r"([_.\-])", name.lower())
    if len(parts) >= 3 and parts[-1] in SPLIT_WORDS:
        parts = parts[:-2]
    elif len(parts) >= 3 and parts[0] in SPLIT_WORDS:
        parts = parts[2:]
    return "".join(parts)


def parse_systems(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``--systems name=file ...`` as ``{name: file}``; a malformed or repeated pair is an error."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise SermmError(f"--systems {pair}: expected NAME=FILE (e.g. --systems words=words_eval.csv)")
        if name.strip() in out:
            raise SermmError(f"--systems: system '{name.strip()}' is given twice")
        out[name.strip()] = path.strip()
    return out


def order_by_system(tables: list, systems: list[str], source: str, by_sidecar: bool) -> list:
    """Put ``tables`` in the order of the model's ``systems``, or refuse when that cannot be known.

    Every input is named by its sidecar's system (when the model was named by sidecars too),
    else by its file name; a name matches a system exactly, or once split words (``_dev``,
    ``_test``, ...) are left off both. Without a match for every input, order would be a guess,
    and a swapped guess fuses silently wrong scores: refuse, and point to ``--systems``.
    """
    if len(systems) == 1:
        return tables
    named = [t.sidecar.system if by_sidecar and t.sidecar is not None and t.sidecar.system else None
             for t in tables]
    if all(named):
        for table, name in zip(tables, named, strict=True):
            if name not in systems:
                raise SermmError(
                    f"{table.path}: system '{name}' is not one {source} was trained on ({', '.join(systems)})"
                )
        if sorted(named) != sorted(systems):
            raise SermmError(
                f"{source}: trained on systems {', '.join(systems)}, the inputs are {', '.join(named)}"
            )
        return [tables[named.index(s)] for s in systems]
    names = [name or _stem(t.path or t.system) for t, name in zip(tables, named, strict=True)]
    for key in (lambda x: x, bare_name):
        wanted = [key(s) for s in systems]
        found = [key(n) for n in names]
        if len(set(wanted)) == len(wanted) and sorted(found) == sorted(wanted):
            return [tables[found.index(w)] for w in wanted]
    pairs = " ".join(f"{s}=FILE" for s in systems)
    raise SermmError(
        f"{source}: cannot tell which input is which system: the inputs ({', '.join(names)}) carry no "
        f"sidecar naming them and their file names do not match the model's systems "
        f"({', '.join(systems)}); say it with --systems {pairs}"
    )


def read_for_fuser(
    paths: list[str], fuser: Fuser, source: str, *, scores: str = "auto", on_missing: str = "error",
    systems_by_name: dict[str, str] | None = None,
) -> Aligned:
    """Read evaluation inputs for a fitted fuser, check them against it, align them by id.

    The inputs must be the systems the fuser was trained on, in any order: ``systems_by_name``
    (``--systems name=file``) says which file is which; else each input is matched by its
    sidecar's system name, or by its file name (:func:`order_by_system`), and refused when
    neither tells. Their classes (or attributes, or embedding sizes) must be the fuser's.
    ``source`` names the model in errors.
    """
    systems = list(fuser.systems_)
    if systems_by_name is not None:
        unknown = [name for name in systems_by_name if name not in systems]
        if unknown:
            raise SermmError(
                f"--systems {unknown[0]}=...: {source} has no system '{unknown[0]}' "
                f"(its systems are: {', '.join(systems)})"
            )
        absent = [name for name in systems if name not in systems_by_name]
        if absent:
            raise SermmError(f"--systems: no file for system '{absent[0]}' of {source} "
                             f"(give one for each of: {', '.join(systems)})")
        paths = [systems_by_name[name] for name in systems]
    kind = fuser.input_kind_
    if len(paths) != len(systems):
        raise SermmError(
            f"{source}: trained on {len(systems)} system(s) ({', '.join(systems)}), "
            f"got {len(paths)} input file(s)"
        )
    columns = list(fuser.columns_)
    subset = columns if kind == "posterior" and fuser.class_subset_ else None
    tables = []
    for path in paths:
        if fuser.takes_decisions and is_label_file(path):
            tables.append(read_decisions_one_hot(path, columns))
            continue
        found = sniff_kind(path)
        if found != kind:
            raise SermmError(f"{path} holds {found}s, but {source} fuses {kind} files")
        tables.append(read_scores(path, kind=kind, scores=scores, classes=subset))  # type: ignore[arg-type]
        pa.default_memory_pool().release_unused()  # the reader's scratch memory, before the next file
    if systems_by_name is None:
        tables = order_by_system(tables, systems, source, fuser.named_by_sidecar_)
    for j, table in enumerate(tables):
        if kind == "embedding":
            if table.values.shape[1] != fuser.dims_[j]:
                raise SermmError(
                    f"{table.path}: {table.values.shape[1]} embedding columns, but {source} was trained "
                    f"on {fuser.dims_[j]} for system '{systems[j]}'"
                )
        elif set(table.columns) != set(columns) and not (
            kind == "posterior" and same_classes(table.columns, columns)
        ):
            what = "attributes" if kind == "attribute" else "classes"
            raise SermmError(
                f"{table.path}: {what} {', '.join(table.columns)} do not match the {what} of "
                f"{source} ({', '.join(columns)})"
            )
        elif table.columns != columns:
            tables[j] = table.with_columns(columns)
    return align_ids(tables, on_missing=on_missing)  # type: ignore[arg-type]


def metrics_table(rows: list[tuple[str, dict]], names: dict[str, str], *, markdown: bool) -> str:
    """Rows of (label, metrics) as an aligned text table, or a Markdown table."""
    keys = list(names)
    if markdown:
        lines = ["| system | " + " | ".join(names[k] for k in keys) + " |"]
        lines.append("|---|" + "---|" * len(keys))
        for label, metrics in rows:
            lines.append(f"| {label} | " + " | ".join(f"{metrics[k]:.4f}" for k in keys) + " |")
        return "\n".join(lines)
    width = max(len(label) for label, _ in rows) + 2
    cell = max(9, *(len(names[k]) + 2 for k in keys))
    lines = [" " * width + "".join(f"{names[k]:>{cell}}" for k in keys)]
    for label, metrics in rows:
        lines.append(f"{label:<{width}}" + "".join(f"{metrics[k]:>{cell}.4f}" for k in keys))
    return "\n".join(lines)


def write_report(path: str, title: str, description: list[str], table: str, notes: list[str]) -> None:
    """A short Markdown report of a fusion run."""
    text = "\n\n".join([f"# {title}", "\n".join(description), table, "\n".join(notes)]).rstrip() + "\n"
    write_text(path, text)
