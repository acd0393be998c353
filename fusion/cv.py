"""Honest development estimates: fit on the other folds, score each fold with a model that never saw it."""

from __future__ import annotations

from typing import Any

import numpy as np

from sermm.errors import SermmError
from sermm.fusion.base import Fuser, n_rows, take_rows
from sermm.progress import progress

#: Folds used inside ``fit`` when a hyper-parameter is chosen by cross-validation (``--C auto``).
INNER_FOLDS = 5


def make_folds(
    y: np.ndarray | None,
    *,
    n_splits: int = 5,
    groups: np.ndarray | None = None,
    seed: int = 0,
    n: int | None = None,
    why: str | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) row indices: grouped K-fold when ``groups`` is given, else stratified K-fold
    for class labels, else plain shuffled K-fold (attributes, or no labels).

    ``why`` names what asked for the folds in errors (default: the ``--cv`` option).
    """
    from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold

    n = len(y) if y is not None else n
    asked = why or f"--cv {n_splits}"
    remedy = "use fewer folds" if why is None else "give a number instead"
    if n_splits < 2:
        raise SermmError(f"--cv needs at least 2 folds, got {n_splits}")
    if groups is not None:
        n_groups = len(np.unique(groups))
        if n_groups < n_splits:
            of = "" if why is None else f" of {why}"
            raise SermmError(f"--groups: only {n_groups} groups, fewer than the {n_splits} folds{of}")
        splits = GroupKFold(n_splits=n_splits).split(np.zeros(n), y, groups)
    elif y is not None and y.ndim == 1:
        smallest = np.bincount(y)[np.bincount(y) > 0].min()
        if smallest < n_splits:
            raise SermmError(f"{asked}: a class has only {smallest} labelled row(s); {remedy}")
        splits = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(np.zeros(n), y)
    else:
        if n < n_splits:
            raise SermmError(f"{asked}: only {n} rows; {remedy}")
        splits = KFold(n_splits=n_splits, shuffle=True, random_state=seed).split(np.zeros(n))
    return [(np.asarray(train), np.asarray(test)) for train, test in splits]


def cross_val_fuse(
    fuser: Fuser,
    X: Any,
    y: np.ndarray | None,
    folds: list[tuple[np.ndarray, np.ndarray]],
    *,
    groups: np.ndarray | None = None,
    **params: Any,
) -> np.ndarray:
    """Out-of-fold fused scores: each fold scored by a copy of ``fuser`` fitted on the other folds."""
    parts = []
    for train, test in progress(folds, desc=f"{fuser.method}: cross-validation folds"):
        model = fuser.clone(**params).fit(
            take_rows(X, train),
            None if y is None else y[train],
            None if groups is None else groups[train],
        )
        parts.append((test, model.transform(take_rows(X, test))))
    out = np.empty((n_rows(X), parts[0][1].shape[1]))
    for test, fused in parts:
        out[test] = fused
    return out
