"""Logistic-regression fusion on the systems' log-posteriors: full multinomial, or tied (FoCal style).

Full: ``logits = b + sum_j W_j log P_j`` with a ``k x k`` matrix per system (the model of
scikit-learn's ``LogisticRegression``, L2, solved by L-BFGS in numpy). Tied:
``logits = b + sum_j a_j log P_j`` with one weight per system and one bias per class, the
linear fusion of the FoCal toolkit (Brummer): ``m + k`` parameters instead of ``m k^2 + k``,
so it hardly overfits with many systems.

Both minimise ``C * sum_i s_i CE_i + ||w||^2 / 2`` (the biases are not penalised; ``s_i`` are the
``class_weight`` sample weights), scikit-learn's convention. The coefficients are kept as plain
arrays and ``transform`` is numpy only, so a model loaded from JSON gives bit-identical output.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sermm.calibration_metrics import cross_entropy
from sermm.errors import SermmError
from sermm.estimator import BOOLEAN, Interval, Options, register, state_array
from sermm.fusion.base import Fuser, n_rows, take_rows
from sermm.logistic import FullMap, TiedMap, class_weights, fit_logistic
from sermm.progress import progress
from sermm.tables import LOG_FLOOR, log_posteriors, softmax

#: Convergence tolerance of the solvers (scikit-learn's default 1e-4 stops visibly short here).
TOL = 1e-6
#: Relative decrease of the objective below which L-BFGS stops (scikit-learn's setting for lbfgs).
FTOL = 64 * np.finfo(float).eps
#: The log grid ``--C auto`` chooses from (by cross-validated cross-entropy).
C_GRID = tuple(10.0**e for e in range(-3, 4))


#: What ``C`` may be: a positive number, or ``auto`` (chosen by cross-validation).
C_CONSTRAINT = [Interval(float, 0, None, closed="neither"), Options("auto")]
#: What ``class_weight`` may be.
CLASS_WEIGHTS = [Options(None, "balanced")]


def sample_weights(y: np.ndarray, k: int, class_weight: str | None) -> np.ndarray:
    """Per-row weights: ones, or for ``balanced`` the weights that give every class the same
    total (scikit-learn's ``n / (k * count[y])``, up to rounding)."""
    return class_weights(y, k, None if class_weight is None else np.full(k, 1.0 / k))


def require_every_class(y: np.ndarray, classes: list[str], method: str) -> None:
    """A discriminative fuser cannot learn a class it never sees: name the first missing one."""
    if len(classes) < 2:
        raise SermmError(
            f"labels: only one class ({', '.join(classes)}), so {method} has nothing to tell apart "
            "(it needs at least two classes)"
        )
    counts = np.bincount(y, minlength=len(classes))
    missing = [c for c, n in zip(classes, counts, strict=True) if n == 0]
    if missing:
        raise SermmError(
            f"labels: class '{missing[0]}' has no development examples, so {method} cannot learn it "
            "(keep only the classes present with --classes)"
        )


def fit_multinomial(
    F: np.ndarray,
    y: np.ndarray,
    k: int,
    C: float,
    class_weight: str | None,
    max_iter: int,
    start: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Multinomial logistic regression (L2, L-BFGS): coef ``(k, d)``, intercept ``(k,)``, iterations.

    scikit-learn's ``LogisticRegression(solver="lbfgs")`` model and objective, with its binary
    case (one logit against a fixed zero for two classes), solved by :func:`sermm.logistic.fit_logistic`
    on standardised features with the penalty rescaled to match (the optimum is the same, and
    L-BFGS needs far fewer iterations); the coefficients are mapped back to the raw features.
    ``start``, a previous ``(coef, intercept)`` of the same shapes, is where the solver begins
    (a warm start); else it begins at zero.
    """
    centre = F.mean(axis=0)
    scale = F.std(axis=0)
    scale[scale == 0] = 1.0
    X = np.ascontiguousarray((F - centre) / scale)
    weights = sample_weights(y, k, class_weight)
    linear_map = FullMap(k, F.shape[1], 1.0 / scale**2)  # ||W_raw||^2 = sum (W_std / scale)^2
    theta = None
    if start is not None:  # the same model in the solver's standardised coordinates
        coef, intercept = start
        theta = linear_map.pack(coef * scale, intercept + coef @ centre)
    # per unit weight, as scikit-learn (its tol means the same)
    found = fit_logistic(linear_map, X, y, weights, C=C, norm=C * weights.sum(), start=theta,
                         max_iter=max_iter, ftol=FTOL, gtol=TOL)
    coef, intercept = linear_map.full(found.theta)
    coef = coef / scale
    return coef, intercept - coef @ centre, found.n_iter


def fit_tied(
    L: list[np.ndarray],
    y: np.ndarray,
    C: float,
    weights: np.ndarray,
    max_iter: int,
    start: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """One weight per system, one bias per class, by L-BFGS on the weighted multinomial log loss;
    from ``start`` (previous system weights and biases) if given, else from equal weights."""
    m, k = len(L), L[0].shape[1]
    X = np.stack([np.ascontiguousarray(block.T) for block in L])  # (m, k, n)
    theta = None if start is None else np.concatenate(start)
    found = fit_logistic(TiedMap(m, k), X, y, weights, C=C, norm=weights.sum(), start=theta,
                         max_iter=max_iter, ftol=FTOL, gtol=TOL)
    return found.theta[:m], found.theta[m:], found.n_iter


def warm(fuser: Fuser, name: str, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray] | None:
    """A warm start, ``(fuser.<name>, fuser.intercept_)``, when ``warm_start`` is on and the last
    fit left weights of this shape (scikit-learn's ``warm_start`` convention); else None."""
    weights = getattr(fuser, name, None)
    if not fuser.warm_start or weights is None or np.shape(weights) != shape:
        return None
    return weights, fuser.intercept_


def choose_C(fuser: Fuser, X: Any, y: np.ndarray, groups: np.ndarray | None) -> tuple[float, dict]:
    """Pick C from :data:`C_GRID` by (grouped) cross-validated cross-entropy; also the curve."""
    from sermm.fusion.cv import INNER_FOLDS, make_folds

    folds = make_folds(y, n_splits=INNER_FOLDS, groups=groups,
                       why=f"--C auto (picks C by {INNER_FOLDS}-fold inner cross-validation)")
    total = dict.fromkeys(C_GRID, 0.0)  # summed out-of-fold cross-entropy, per C
    bar = progress(total=len(folds) * len(C_GRID), desc=f"{fuser.method}: choosing C")
    for i, (train, test) in enumerate(folds):
        # Along the grid from the most regularised C, each fit starts where the last one ended.
        model = fuser.clone(warm_start=True)
        X_train, X_test = take_rows(X, train), take_rows(X, test)
        for C in C_GRID:
            bar.set_postfix_str(f"fold {i + 1}/{len(folds)}, C={C:g}", refresh=False)
            model.set_params(C=C).fit(X_train, y[train], None if groups is None else groups[train])
            total[C] += cross_entropy(model.transform(X_test), y[test]) * len(test)
            bar.update()
    bar.close()
    curve = {f"{C:g}": total[C] / n_rows(X) for C in C_GRID}
    best = min(C_GRID, key=lambda C: curve[f"{C:g}"])
    return best, curve


def learn_C(fuser: Fuser, blocks: list[np.ndarray], y: np.ndarray, groups: np.ndarray | None) -> None:
    """Set ``C_``: the ``C`` parameter, or the one ``auto`` chooses (then also ``C_curve_``)."""
    C, fuser.C_curve_ = fuser.C, None
    if C == "auto":
        C, fuser.C_curve_ = choose_C(fuser, blocks, y, groups)
    fuser.C_ = float(C)


def fitted_prior(fuser: Fuser) -> np.ndarray:
    """The prior a logistic regression's posteriors are under: the dev label frequencies, or
    uniform with balanced class weights."""
    k = len(fuser.columns_)
    return np.full(k, 1.0 / k) if fuser.class_weight == "balanced" else fuser.label_prior_


@register
class LogRegFuser(Fuser):
    """Multinomial logistic regression on the concatenated log-posteriors of all systems."""

    method = "logreg"
    _parameter_constraints = {
        "C": C_CONSTRAINT,
        "class_weight": CLASS_WEIGHTS,
        "tied": [BOOLEAN],
        "max_iter": [Interval(int, 1, None)],
        "warm_start": [BOOLEAN],
    }
    why_labels = "learns how far to trust each system and class from labelled development scores"

    def __init__(
        self,
        C: float | str = 1.0,
        class_weight: str | None = None,
        tied: bool = False,
        max_iter: int = 1000,
        warm_start: bool = False,
    ) -> None:
        self.C = C
        self.class_weight = class_weight
        self.tied = tied
        self.max_iter = max_iter
        self.warm_start = warm_start

    def _fit(self, blocks: list[np.ndarray], y: np.ndarray, groups: np.ndarray | None) -> None:
        k = len(self.columns_)
        require_every_class(y, self.columns_, self.method)
        learn_C(self, blocks, y, groups)
        weights = sample_weights(y, k, self.class_weight)
        L = [log_posteriors(b) for b in blocks]
        if self.tied:
            start = warm(self, "system_weights_", (len(L),))
            self.system_weights_, self.intercept_, self.n_iter_ = fit_tied(
                L, y, self.C_, weights, self.max_iter, start
            )
        else:
            start = warm(self, "coef_", (k, len(L) * k))
            self.coef_, self.intercept_, self.n_iter_ = fit_multinomial(
                np.hstack(L), y, k, self.C_, self.class_weight, self.max_iter, start
            )
        self.prior_ = fitted_prior(self)

    def describe(self) -> str:
        """C, the weighting, and the learned system weights (tied) or coefficient shape."""
        chosen = " (chosen by CV cross-entropy)" if self.C_curve_ else ""
        weighting = ", balanced class weights" if self.class_weight == "balanced" else ""
        if self.tied:
            pairs = zip(self.systems_, self.system_weights_, strict=True)
            weights = " ".join(f"{s}={w:.3f}" for s, w in pairs)
            biases = f"{len(self.intercept_)} class biases"
            return f"tied weights {weights}, {biases}; C={self.C_:g}{chosen}{weighting}"
        k, d = self.coef_.shape
        return f"{k}x{d} coefficients + {k} biases on log-posteriors; C={self.C_:g}{chosen}{weighting}"

    def _fuse(self, blocks: list[np.ndarray]) -> np.ndarray:
        k = len(self.columns_)
        # The concatenated log-posteriors, built in place. Column-major like the score tables:
        # every step then runs down contiguous columns instead of across short rows.
        L = np.empty((len(blocks[0]), len(blocks) * k), order="F")
        for j, block in enumerate(blocks):
            np.maximum(block, LOG_FLOOR, out=L[:, j * k : (j + 1) * k])
        np.log(L, out=L)
        if self.tied:
            logits = np.empty((len(L), k), order="F")
            logits[:] = self.intercept_
            for j, weight in enumerate(self.system_weights_):
                logits += weight * L[:, j * k : (j + 1) * k]
        else:
            logits = (self.coef_ @ L.T).T  # one product (several thin ones cost more), column-major
            logits += self.intercept_
        return softmax(logits)

    def _state(self) -> dict:
        state: dict[str, Any] = {"C": self.C_, "intercept": self.intercept_, "n_iter": self.n_iter_}
        if self.tied:
            state["system_weights"] = self.system_weights_
        else:
            state["coef"] = self.coef_
        if self.C_curve_:
            state["cv_cross_entropy_by_C"] = self.C_curve_
        return state

    def _set_state(self, state: dict) -> None:
        self.C_ = float(state["C"])
        k, m = len(self.columns_), len(self.systems_)
        self.intercept_ = state_array(state, "intercept", (k,))
        self.n_iter_ = int(state["n_iter"])
        self.C_curve_ = state.get("cv_cross_entropy_by_C")
        if self.tied:
            self.system_weights_ = state_array(state, "system_weights", (m,))
        else:
            self.coef_ = state_array(state, "coef", (k, k * m))
