"""Leave-one-group-out cross-validation: every speaker (or session) held out once, WA and UA per fold
and pooled, and the pooled posterior file in which each utterance is scored by the one model that
never saw its group.

This is how the papers the recipes follow report on IEMOCAP (five sessions, leave one session out:
Kang et al. 2023; Chen & Rudnicky 2023) and on EmoDB (leave speakers out). WA (weighted accuracy)
is plain accuracy, UA (unweighted accuracy) the mean of the per-class recalls.

The split and the metrics (:func:`group_folds`, :func:`fold_report`) are numpy only;
:func:`cross_validate` trains a recipe on each fold with the shared training loop and prediction
writer (``sermm-system <kind> train --folds COLUMN``).

::

    OUT/
      fold-<group>/       a run directory per fold (train: the other groups), with test.csv (+ sidecar)
      cv.csv              every utterance's posteriors from its fold's model (+ .meta.json)
      cv.json             per fold and pooled: n, WA, UA, macro-F1; the groups and the dev rule
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sermm.errors import SermmError
from sermm.metrics import categorical_summary


def group_folds(groups: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """One fold per distinct group, in sorted order: (group, training rows, held-out rows).

    >>> [(g, tr.tolist(), te.tolist()) for g, tr, te in group_folds(np.array(["b", "a", "b"]))]
    [('a', [0, 2], [1]), ('b', [1], [0, 2])]
    """
    groups = np.asarray(groups).astype(str)
    names = np.unique(groups)
    if len(names) < 2:
        raise SermmError(
            f"--folds: leave-one-group-out needs at least two groups, found {len(names)} "
            f"({', '.join(names) or 'none'})"
        )
    return [(str(g), np.flatnonzero(groups != g), np.flatnonzero(groups == g)) for g in names]


def dev_split(rows: np.ndarray, every: int) -> tuple[np.ndarray, np.ndarray]:
    """Training rows without every ``every``-th of them (from the first), and those held out as dev.

    >>> [a.tolist() for a in dev_split(np.arange(6), 3)]
    [[1, 2, 4, 5], [0, 3]]
    """
    if every < 2:
        raise SermmError(f"--fold-dev-every must be at least 2, got {every}")
    pick = np.zeros(len(rows), dtype=bool)
    pick[::every] = True
    return rows[~pick], rows[pick]


def _summary(y: np.ndarray, pred: np.ndarray, n_classes: int) -> dict[str, float]:
    s = categorical_summary(y, pred, n_classes=n_classes)
    return {"n": int(len(y)), "wa": float(s["wa"]), "ua": float(s["ua"]), "macro_f1": float(s["macro_f1"])}


def fold_report(y: np.ndarray, pred: np.ndarray, groups: np.ndarray, n_classes: int) -> dict[str, Any]:
    """WA, UA and macro-F1 per group (each fold's held-out rows), their mean over folds, and pooled
    (all rows at once: the number the papers give as "WA/UA" of the cross-validation).

    ``y`` and ``pred`` are class indices in [0, n_classes).

    >>> r = fold_report(np.array([0, 1, 0, 1]), np.array([0, 1, 1, 1]), np.array(["a", "a", "b", "b"]), 2)
    >>> r["folds"]["a"]["wa"], r["folds"]["b"]["ua"], r["pooled"]["wa"], r["mean"]["wa"]
    (1.0, 0.5, 0.75, 0.75)
    """
    y, pred, groups = np.asarray(y), np.asarray(pred), np.asarray(groups).astype(str)
    folds = {str(g): _summary(y[groups == g], pred[groups == g], n_classes) for g in np.unique(groups)}
    mean = {k: float(np.mean([f[k] for f in folds.values()])) for k in ("wa", "ua", "macro_f1")}
    return {"folds": folds, "mean": mean, "pooled": _summary(y, pred, n_classes)}


def read_groups(manifest: Any, column: str) -> np.ndarray:
    """The ``column`` value of every manifest row (``speaker``/``SpkrID`` as the manifest read them;
    any other column from the file, matched by its line), as strings; an empty one is an error."""
    if column in ("speaker", "SpkrID") and manifest.speakers is not None:
        values = np.asarray(manifest.speakers).astype(str)
    else:
        import pyarrow as pa
        import pyarrow.compute as pc

        from sermm.tables import read_arrow

        table = read_arrow(manifest.source)
        if column not in table.column_names:
            raise SermmError(
                f"{manifest.source}: --folds {column}: no such column "
                f"(found: {', '.join(table.column_names)})"
            )
        everything = np.asarray(
            pc.fill_null(table.column(column).cast(pa.string()), "").to_pylist(), dtype=object
        )
        # a manifest's line numbers count the file's rows (2 = the first, after the header), also
        # after a --split or --skip-bad took some of them
        values = everything[np.asarray(manifest.lines, dtype=np.int64) - 2].astype(str)
    empty = np.flatnonzero(np.char.strip(values.astype(str)) == "")
    if empty.size:
        raise SermmError(f"{manifest.where(int(empty[0]))}: empty --folds column '{column}'")
    return values


def fold_dir_name(group: str) -> str:
    """A folder name for a group: ``fold-<group>``, characters but letters, digits and ``.-_`` as ``_``."""
    return "fold-" + re.sub(r"[^A-Za-z0-9._-]", "_", group)


@dataclass
class CrossValidation:
    """What :func:`cross_validate` wrote and measured."""

    out: Path
    report: dict[str, Any]
    main_process: bool = True


def cross_validate(
    recipe: Any,
    config: Any,
    manifest: Any,
    groups: np.ndarray,
    out: str | Path,
    *,
    dev: Any | None = None,
    dev_every: int = 10,
    resume: bool = False,
    quiet: bool = False,
) -> CrossValidation:
    """Train ``recipe`` once per group of ``groups`` (the rest train, the group is scored), then pool.

    The epoch of each fold is chosen on ``dev`` when given (a fixed manifest outside the folds),
    else on every ``dev_every``-th training row of the fold, held out of its training (never on the
    held-out group, which would make the reported numbers optimistic). ``resume`` skips the folds
    that have their test.csv and continues an unfinished fold from its newest checkpoint.
    """
    from sermm.atomic import write_json
    from sermm.sidecar import Sidecar, write_sidecar
    from sermm.systems.manifest import Inventory
    from sermm.systems.prediction import predict_system
    from sermm.systems.training import train_system
    from sermm.tables import ScoreTable, read_posteriors, write_scores

    if config.task != "categorical":
        raise SermmError("--folds reports WA and UA: it needs the categorical task")
    out = Path(out)
    if out.exists() and not resume and (not out.is_dir() or any(out.iterdir())):
        raise SermmError(f"{out}: exists and is not an empty directory; choose another --out (or --resume)")
    inventory = Inventory.from_manifest(manifest, config.task)
    folds = group_folds(groups)
    labels = manifest.labels.astype(str)
    plans = []  # (training rows, dev manifest) of each fold, checked before anything is written
    for group, train_rows, _ in folds:
        fold_dev = dev
        if dev is None:
            train_rows, dev_rows = dev_split(train_rows, dev_every)
            fold_dev = manifest.take(dev_rows)
        missing = sorted(set(inventory.classes) - set(labels[train_rows]))
        if missing:
            raise SermmError(
                f"--folds: with group '{group}' held out, class(es) {', '.join(missing)} have no "
                "training rows; every class needs rows in at least two groups"
            )
        plans.append((train_rows, fold_dev))
    main = True
    for k, ((group, _, test_rows), (train_rows, fold_dev)) in enumerate(zip(folds, plans, strict=True)):
        run_dir = out / fold_dir_name(group)
        test_file = run_dir / "test.csv"
        if resume and test_file.exists():
            continue
        if not quiet:
            print(
                f"fold {k + 1}/{len(folds)}: {group} held out ({len(test_rows)} rows), "
                f"{len(train_rows)} training, {len(fold_dev)} dev",
                file=sys.stderr,
            )
        fold_train = manifest.take(train_rows)
        result = train_system(
            recipe,
            config,
            fold_train,
            fold_dev,
            str(run_dir),
            resume=resume and (run_dir / "run.json").exists(),
            quiet=quiet,
        )
        main = result.main_process
        predict_system(recipe, str(run_dir), manifest.take(test_rows), str(test_file), quiet=quiet)
    if not main:
        return CrossValidation(out, {}, main_process=False)

    columns = inventory.primary
    values = np.zeros((len(manifest), len(columns)))
    for group, _, test_rows in folds:
        table = read_posteriors(out / fold_dir_name(group) / "test.csv")
        if sorted(table.columns) != sorted(columns):
            raise SermmError(
                f"{out / fold_dir_name(group)}/test.csv: columns {table.columns}, expected {columns}"
            )
        order = [table.columns.index(c) for c in columns]
        values[test_rows] = table.values[:, order]
    keep = np.isin(manifest.labels.astype(str), columns)
    y = np.array([columns.index(c) if c in columns else -1 for c in manifest.labels.astype(str)])
    report = fold_report(y[keep], values[keep].argmax(axis=1), np.asarray(groups)[keep], len(columns))
    report.update(
        classes=list(columns),
        groups=[g for g, _, _ in folds],
        dev="the --dev manifest" if dev is not None else f"every {dev_every}th training row of each fold",
    )
    pooled = out / "cv.csv"
    write_scores(ScoreTable(manifest.ids, values, list(columns), "posterior"), pooled)
    write_sidecar(
        pooled,
        Sidecar(
            system=config.name or out.resolve().name,
            classes=list(columns),
            values="probability",
            train_prior=inventory.output_prior(list(columns), config.class_weighted),
            inputs=[manifest.source],
            models=[str(out / fold_dir_name(g)) for g, _, _ in folds],
            extra={"model_id": config.backbone, "cross_validation": "leave-one-group-out"},
        ),
    )
    write_json(out / "cv.json", report)
    return CrossValidation(out, report)
