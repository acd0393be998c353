"""An honest comparison of fusion recipes: every applicable fuser, alone and chained with a
calibrator, under one (grouped) cross-validation, with the choice of recipe nested in the folds.

A *recipe* is a fuser of the registry (:mod:`sermm.fusion.methods`) with its default
parameters, alone or followed by ``prior --uniform`` (rebalance the fused posteriors to a
uniform prior, the TalTech system's conclusion: tune to the evaluation prior) or by per-class
``thresholds`` (tuned for macro-F1). Each recipe is fitted on the training part of every fold
(its calibrator on the fuser's outputs there, as ``sermm-calibrate`` on ``fused_dev.csv``
would be) and scored on the held-out part; the pooled out-of-fold predictions give one row of
the table, with a bootstrap interval.

The best row's number is optimistic: it is the maximum over many recipes, picked after seeing
every fold. The *nested* estimate repeats the whole choice inside each outer training fold
(an inner cross-validation over the same recipes), applies the recipe chosen there to the
held-out fold, and scores the pooled result: the honest estimate of "choose the best recipe,
then use it". The chosen recipe, refitted on all rows, is what :meth:`Comparison.save` writes,
as one chain model file for ``sermm-fuse apply``.

Example::

    from sermm.align import load_aligned
    from sermm.compare import compare

    dev = load_aligned(["a_dev.csv", "t_dev.csv"], "dev_labels.csv")
    result = compare(dev.tables, dev.y(), metric="macro-f1", cv=5)
    print(result.table())
    result.save("best.json")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sermm.errors import SermmError
from sermm.progress import progress
from sermm.tables import ScoreTable, shared_train_prior

#: The selection metrics: option -> (title, higher is better).
COMPARE_METRICS = {"macro-f1": ("macro-F1", True), "ua": ("UA", True), "ce": ("CE", False)}
#: The calibration steps a fuser is chained with (None: the fuser alone).
CALIBRATIONS = (None, "prior", "thresholds")
CALIBRATION_TITLES = {None: "", "prior": " + prior --uniform", "thresholds": " + thresholds"}


@dataclass(frozen=True)
class Recipe:
    """A fuser method (default parameters) and an optional calibration step after it."""

    fuser: str
    calibration: str | None = None

    @property
    def name(self) -> str:
        """``logreg``, ``logreg + prior --uniform``, ``logreg + thresholds``."""
        return self.fuser + CALIBRATION_TITLES[self.calibration]

    @property
    def decides(self) -> bool:
        """Whether the recipe's output is a decision, not posteriors (thresholds; a vote's one-hot
        rows), so that it has no cross-entropy."""
        return self.calibration == "thresholds" or self.fuser == "vote"


def applicable_fusers(kind: str = "posterior") -> list[str]:
    """The registered fusion methods that fuse ``kind`` files, in registry order."""
    import sermm.fusion.methods  # noqa: F401  (registers every fuser)
    from sermm.estimator import registered

    return [name for name, cls in registered("fusion").items() if kind in cls.kinds]


def recipes(fusers: list[str] | None = None) -> list[Recipe]:
    """Every fuser alone and with each calibration step."""
    return [Recipe(f, c) for f in (fusers or applicable_fusers()) for c in CALIBRATIONS]


@dataclass
class Fitted:
    """A recipe fitted on some rows: the fuser and its calibrator (None when alone or impossible)."""

    fuser: Any
    calibrator: Any | None

    def predict(self, tables: list[ScoreTable]) -> tuple[np.ndarray, np.ndarray]:
        """(posteriors, decisions) on aligned ``tables``."""
        P = self.fuser.transform(tables)
        if self.calibrator is None:
            return P, P.argmax(axis=1)
        if self.calibrator.decides:
            return P, self.calibrator.predict(P)
        Q = self.calibrator.transform(P)
        return Q, Q.argmax(axis=1)


def fit_recipes(todo: list[Recipe], tables: list[ScoreTable], y: np.ndarray,
                groups: np.ndarray | None = None) -> dict[Recipe, Fitted | None]:
    """Fit every recipe on ``tables`` / ``y``, each fuser once (its calibrators share its outputs).

    A ``prior`` recipe whose fuser's outputs are under no known prior (a mean of systems
    without ``train_prior`` sidecars) maps to None: it cannot be fitted.
    """
    from sermm.calibration.methods import PriorCalibrator, ThresholdCalibrator
    from sermm.estimator import registered

    out: dict[Recipe, Fitted | None] = {}
    for method in dict.fromkeys(r.fuser for r in todo):
        fuser = registered("fusion")[method]().fit(tables, y, groups)
        P = fuser.transform(tables)
        columns = list(fuser.columns_)
        for recipe in (r for r in todo if r.fuser == method):
            calibrator = None
            if recipe.calibration == "prior":
                prior = fuser.output_prior(shared_train_prior(tables, columns))
                if prior is None or np.any(prior <= 0):
                    out[recipe] = None
                    continue
                calibrator = PriorCalibrator(train_prior=prior, target="uniform").fit(P, classes=columns)
            elif recipe.calibration == "thresholds":
                calibrator = ThresholdCalibrator().fit(P, y, classes=columns)
            if calibrator is not None:
                calibrator.systems_ = [f"fusion-{method}"]
            out[recipe] = Fitted(fuser, calibrator)
    return out


def score(metric: str, y: np.ndarray, P: np.ndarray, decisions: np.ndarray) -> float:
    """The selection metric: macro-F1 or UA of the decisions, or the cross-entropy of the posteriors."""
    from sermm.calibration_metrics import cross_entropy
    from sermm.metrics import macro_f1, unweighted_accuracy

    k = P.shape[1]
    if metric == "macro-f1":
        return macro_f1(y, decisions, n_classes=k)
    if metric == "ua":
        return unweighted_accuracy(y, decisions, n_classes=k)
    return cross_entropy(P, y)


def candidates(todo: list[Recipe], metric: str) -> list[Recipe]:
    """The recipes that can be chosen under ``metric``: under cross-entropy, those that decide
    (thresholds, which change decisions and not posteriors; the vote's one-hot rows) are left out."""
    return [r for r in todo if not (metric == "ce" and r.decides)]


def best_of(scores: dict[Recipe, float], metric: str) -> Recipe:
    """The best-scoring recipe (ties: the first in recipe order, i.e. the simpler)."""
    higher = COMPARE_METRICS[metric][1]
    finite = {r: s for r, s in scores.items() if np.isfinite(s)}
    if not finite:
        raise SermmError("compare: no recipe could be scored")
    return (max if higher else min)(finite, key=lambda r: finite[r] if higher else finite[r])


def out_of_fold(todo: list[Recipe], tables: list[ScoreTable], y: np.ndarray,
                folds: list[tuple[np.ndarray, np.ndarray]], groups: np.ndarray | None) -> dict:
    """Out-of-fold (posteriors, decisions) of every recipe (None for one that cannot be fitted)."""
    n, k = len(y), len(tables[0].columns)
    P = {r: np.full((n, k), np.nan) for r in todo}
    D = {r: np.full(n, -1) for r in todo}
    dead: set[Recipe] = set()
    for train, test in folds:
        fitted = fit_recipes(todo, [t.take(train) for t in tables], y[train],
                             None if groups is None else groups[train])
        held_out = [t.take(test) for t in tables]
        for recipe, model in fitted.items():
            if model is None:
                dead.add(recipe)
                continue
            P[recipe][test], D[recipe][test] = model.predict(held_out)
    return {r: None if r in dead else (P[r], D[r]) for r in todo}


@dataclass
class Row:
    """One line of the table: a label, its pooled out-of-fold metrics, the CI of the selection metric."""

    label: str
    metrics: dict[str, float]
    interval: tuple[float, float]
    recipe: Recipe | None = None


@dataclass
class Comparison:
    """What :func:`compare` found: the table's rows, the best recipe, the nested estimate, the
    chosen recipe refitted on every row."""

    metric: str
    rows: list[Row]
    best: Recipe
    nested: Row
    chosen_per_fold: list[Recipe]
    final: Fitted
    how: str
    inner: int
    n: int
    extra: dict[str, Any] = field(default_factory=dict)

    def best_row(self) -> Row:
        """The row of the best recipe."""
        return next(row for row in self.rows if row.recipe == self.best)

    def table(self, markdown: bool = False) -> str:
        """The comparison table: one row per system and recipe, the best marked ``*``, the nested
        row, and a footer saying what the numbers are."""
        title, _ = COMPARE_METRICS[self.metric]
        heads = [f"{title} [95% CI]", *(h for h in ("macro-F1", "UA", "CE") if h != title)]
        keys = {"macro-F1": "macro-f1", "UA": "ua", "CE": "ce"}

        def cells(row: Row) -> list[str]:
            main = row.metrics.get(self.metric, float("nan"))
            first = ("–" if not np.isfinite(main)
                     else f"{main:.4f} [{row.interval[0]:.4f}, {row.interval[1]:.4f}]")
            rest = [row.metrics.get(keys[h], float("nan")) for h in heads[1:]]
            return [first, *("–" if not np.isfinite(v) else f"{v:.4f}" for v in rest)]

        body = [(("* " if row.recipe == self.best else "  ") + row.label, cells(row))
                for row in [*self.rows, self.nested]]
        footer = self.footer()
        if markdown:
            lines = ["| recipe | " + " | ".join(heads) + " |", "|---|" + "---|" * len(heads)]
            lines += [f"| {label.strip()} | " + " | ".join(c) + " |" for label, c in body]
            return "\n".join(lines) + "\n\n" + "\n".join(footer) + "\n"
        width = max(len(label) for label, _ in body) + 2
        widths = [max(len(h), *(len(c[j]) for _, c in body)) + 2 for j, h in enumerate(heads)]
        lines = [" " * width + "".join(f"{h:>{w}}" for h, w in zip(heads, widths, strict=True))]
        for label, c in body:
            lines.append(f"{label:<{width}}" + "".join(f"{v:>{w}}" for v, w in zip(c, widths, strict=True)))
        return "\n".join(lines) + "\n\n" + "\n".join(footer) + "\n"

    def footer(self) -> list[str]:
        """What the rows are, and why the nested row is the one to quote."""
        title, higher = COMPARE_METRICS[self.metric]
        counts: dict[str, int] = {}
        for recipe in self.chosen_per_fold:
            counts[recipe.name] = counts.get(recipe.name, 0) + 1
        chosen = ", ".join(f"{name} ({c}/{len(self.chosen_per_fold)} folds)" for name, c in counts.items())
        best = self.best_row().metrics[self.metric]
        nested = self.nested.metrics[self.metric]
        return [
            f"Every row is scored out of fold ({self.how}, {self.n:,} rows): each fold predicted by a "
            "recipe fitted on the other folds; [95% CI]: bootstrap over the rows.",
            f"* best by {title} ({'higher' if higher else 'lower'} is better): {self.best.name}, "
            f"{best:.4f}. That number is optimistic: it was picked after seeing every fold.",
            f"The nested row is honest: in each outer fold the recipe was chosen by an inner "
            f"{self.inner}-fold CV on the training part only, then scored on the held-out part "
            f"({nested:.4f}; chosen: {chosen}).",
        ]

    def save(self, path: str) -> None:
        """The best recipe, refitted on every row, as one chain model file (``sermm-fuse apply``)."""
        from sermm.chain import Chain

        steps = [self.final.fuser] + ([self.final.calibrator] if self.final.calibrator is not None else [])
        self.final.fuser.fit_info_ = {**self.final.fuser.fit_info_, "compare": {
            "metric": self.metric, "recipe": self.best.name, "cv": self.how,
            "cv_estimate": self.best_row().metrics[self.metric],
            "nested_estimate": self.nested.metrics[self.metric],
        }}
        Chain(steps).save(path)


def _metrics(y: np.ndarray, P: np.ndarray, D: np.ndarray, decides: bool) -> dict[str, float]:
    values = {m: score(m, y, P, D) for m in ("macro-f1", "ua")}
    values["ce"] = float("nan") if decides else score("ce", y, P, D)
    return values


def _interval(metric: str, y: np.ndarray, P: np.ndarray, D: np.ndarray, n_boot: int, seed: int
              ) -> tuple[float, float]:
    from sermm.bootstrap import bootstrap_categorical, bootstrap_ci

    k = P.shape[1]
    if metric == "ce":
        loss = -np.log(np.maximum(P[np.arange(len(y)), y], np.finfo(float).tiny))
        low, high = bootstrap_ci(lambda v: v.mean(axis=1), loss, n_boot=n_boot, seed=seed, vectorized=True)
        return float(low), float(high)
    key = "macro_f1" if metric == "macro-f1" else "ua"
    _, low, high = bootstrap_categorical(y, D, n_classes=k, n_boot=n_boot, seed=seed)[key]
    return float(low), float(high)


def compare(
    tables: list[ScoreTable],
    y: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    metric: str = "macro-f1",
    cv: int = 5,
    inner: int = 3,
    seed: int = 0,
    n_boot: int = 1000,
    fusers: list[str] | None = None,
) -> Comparison:
    """Compare every recipe under one (grouped) ``cv``-fold cross-validation, nest the choice in
    the folds (``inner``-fold CV on each training part), and refit the best recipe on all rows.

    ``tables`` are aligned posterior tables (one per system), ``y`` their label indices,
    ``groups`` (speaker or session per row) makes every fold split by group. The same ``seed``
    gives the same folds, hence the same table and the same choice.
    """
    from sermm.fusion.cv import make_folds

    if metric not in COMPARE_METRICS:
        raise SermmError(f"--metric {metric}: expected one of {', '.join(COMPARE_METRICS)}")
    if tables[0].kind != "posterior":
        raise SermmError(f"compare fuses posterior files, but {tables[0].path} holds {tables[0].kind}s")
    todo = recipes(fusers)
    pool = candidates(todo, metric)
    folds = make_folds(y, n_splits=cv, groups=groups, seed=seed)
    bar = progress(total=len(folds) * (1 + inner) + 1, desc="compare: folds")
    oof: dict[Recipe, Any] = {}
    n, k = len(y), len(tables[0].columns)
    P_nested, D_nested = np.empty((n, k)), np.empty(n, dtype=np.int64)
    chosen: list[Recipe] = []
    for i, (train, test) in enumerate(folds):
        bar.set_postfix_str(f"outer fold {i + 1}/{len(folds)}", refresh=False)
        part = out_of_fold(todo, tables, y, [(train, test)], groups)
        for recipe, got in part.items():
            if got is None:
                oof[recipe] = None
            elif oof.get(recipe, 0) is not None:
                P, D = oof.setdefault(recipe, (np.full((n, k), np.nan), np.full(n, -1)))
                P[test], D[test] = got[0][test], got[1][test]
        bar.update()
        # the nested choice: an inner CV on the training part only
        y_train = y[train]
        g_train = None if groups is None else groups[train]
        inner_folds = make_folds(y_train, n_splits=inner, groups=g_train, seed=seed,
                                 why=f"compare's inner {inner}-fold CV (on each outer training fold)")
        inner_tables = [t.take(train) for t in tables]
        inner_oof = {}
        for inner_fold in inner_folds:
            part_inner = out_of_fold(pool, inner_tables, y_train, [inner_fold], g_train)
            for recipe, got in part_inner.items():
                if got is None:
                    inner_oof[recipe] = None
                elif inner_oof.get(recipe, 0) is not None:
                    P, D = inner_oof.setdefault(recipe, (np.full((len(train), k), np.nan),
                                                         np.full(len(train), -1)))
                    rows = inner_fold[1]
                    P[rows], D[rows] = got[0][rows], got[1][rows]
            bar.update()
        inner_scores = {r: score(metric, y_train, *inner_oof[r])
                        for r in pool if inner_oof.get(r) is not None}
        pick = best_of(inner_scores, metric)
        chosen.append(pick)
        P_nested[test], D_nested[test] = part[pick][0][test], part[pick][1][test]

    rows = []
    for table in tables:  # the single systems, for reference (nothing fitted)
        P, D = table.values, table.values.argmax(axis=1)
        rows.append(Row(f"{table.system} (single system)", _metrics(y, P, D, False),
                        _interval(metric, y, P, D, n_boot, seed)))
    scores = {}
    for recipe in todo:
        got = oof.get(recipe)
        if got is None:
            continue
        P, D = got
        decides = recipe.decides
        row = Row(recipe.name, _metrics(y, P, D, decides), _interval(metric, y, P, D, n_boot, seed)
                  if not (decides and metric == "ce") else (float("nan"), float("nan")), recipe)
        rows.append(row)
        if recipe in pool:
            scores[recipe] = row.metrics[metric]
    best = best_of(scores, metric)
    nested_decides = all(r.decides for r in chosen)
    nested = Row("nested CV: the choice made inside each fold",
                 _metrics(y, P_nested, D_nested, nested_decides),
                 _interval(metric, y, P_nested, D_nested, n_boot, seed))
    final = fit_recipes([best], tables, y, groups)[best]
    bar.update()
    bar.close()
    how = f"{len(folds)}-fold {'grouped ' if groups is not None else 'stratified '}CV, seed {seed}"
    return Comparison(metric, rows, best, nested, chosen, final, how, inner, n)  # type: ignore[arg-type]
