"""Prior rebalancing: move posteriors from the training class prior to another one.

Bayes' rule gives p'(c|x) ∝ p(c|x) · π_target(c) / π_train(c). The target is uniform
(balanced challenge test sets, as TalTech did), a given prior, or the prior of unlabelled
evaluation data estimated by EM from its own posteriors (Saerens, Latinne and
Decaestecker, "Adjusting the outputs of a classifier to new a priori probabilities: a
simple procedure", Neural Computation 14(1), 2002).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from sermm.calibration.base import Calibrator
from sermm.errors import SermmError
from sermm.estimator import VECTOR, Interval, Options, register, state_array
from sermm.priors import check_prior


def rebalance(P: np.ndarray, train_prior: np.ndarray, target_prior: np.ndarray) -> np.ndarray:
    """Posteriors ``P`` (n, k) under ``train_prior`` re-expressed under ``target_prior``.

    When the two priors are the same (to within 1e-12, the rounding of a prior written to a
    file and read back), ``P`` comes back unchanged (a copy), so rebalancing posteriors to the
    prior they are already under changes nothing.

    >>> rebalance(np.array([[0.5, 0.5]]), np.array([0.8, 0.2]), np.array([0.5, 0.5])).round(3)
    array([[0.2, 0.8]])
    """
    ratio = target_prior / train_prior
    if np.abs(ratio - 1.0).max() <= 1e-12:
        return np.array(P, dtype=np.float64)
    Q = P * ratio
    sums = Q.sum(axis=1, keepdims=True)
    empty = np.flatnonzero(sums[:, 0] <= 0)
    if empty.size:
        raise SermmError(
            f"row {int(empty[0]) + 1}: all probability mass lies on classes whose target prior is 0"
        )
    return Q / sums


class EMResult(NamedTuple):
    """Outcome of :func:`estimate_prior_em`."""

    prior: np.ndarray
    posteriors: np.ndarray
    n_iter: int
    converged: bool


def estimate_prior_em(
    P: np.ndarray, train_prior: np.ndarray, *, tol: float = 1e-6, max_iter: int = 1000
) -> EMResult:
    """Estimate the class prior of unlabelled data from its posteriors (Saerens et al., 2002).

    Starting from the training prior, alternate: rebalance every posterior to the current
    prior estimate (E step), then take the mean rebalanced posterior as the new estimate
    (M step); stop when no class probability moves by more than ``tol``.
    """
    ratio = P / train_prior
    prior = train_prior.copy()
    Q = P
    for n_iter in range(1, max_iter + 1):
        Q = ratio * prior
        Q /= Q.sum(axis=1, keepdims=True)
        new = Q.mean(axis=0)
        delta = float(np.abs(new - prior).max())
        prior = new
        if delta < tol:
            return EMResult(prior, rebalance(P, train_prior, prior), n_iter, True)
    return EMResult(prior, rebalance(P, train_prior, prior), max_iter, False)


@register
class PriorCalibrator(Calibrator):
    """Rebalance posteriors from ``train_prior`` to ``target``: "uniform", "estimate" or a prior.

    ``train_prior`` and a given ``target`` are in the class order of the posteriors. With
    ``target="estimate"``, ``fit`` estimates the prior of the (unlabelled) data it is given
    by EM; the learned target is ``target_prior_`` either way, and the outputs are under it.
    """

    method = "prior"
    _parameter_constraints = {
        "train_prior": [Options(None), VECTOR],
        "target": [Options("uniform", "estimate"), VECTOR],
        "tol": [Interval(float, 0, None, closed="neither")],
        "max_iter": [Interval(int, 1, None)],
    }

    def __init__(
        self,
        train_prior: np.ndarray | None = None,
        target: str | np.ndarray = "uniform",
        *,
        tol: float = 1e-6,
        max_iter: int = 1000,
    ) -> None:
        self.train_prior = train_prior
        self.target = target
        self.tol = tol
        self.max_iter = max_iter

    def fit(self, P, y=None, *, classes=None) -> PriorCalibrator:
        """Set the target prior; with ``target="estimate"``, estimate it from ``P`` by EM (y unused)."""
        P, _ = self._start_fit(P, y, classes, need_labels=False)
        k = P.shape[1]
        if self.train_prior is None:
            raise SermmError("prior: no training prior given")
        self.train_prior_ = check_prior(self.train_prior, k, "training prior", positive=True)
        self.n_iter_, self.converged_ = 0, True
        if isinstance(self.target, str) and self.target == "uniform":
            self.target_prior_ = np.full(k, 1.0 / k)
        elif isinstance(self.target, str):
            result = estimate_prior_em(P, self.train_prior_, tol=self.tol, max_iter=self.max_iter)
            self.target_prior_, self.n_iter_, self.converged_ = result.prior, result.n_iter, result.converged
        else:
            self.target_prior_ = check_prior(self.target, k, "target prior")
        self.prior_ = self.target_prior_
        return self

    def transform(self, P: np.ndarray) -> np.ndarray:
        """Posteriors rebalanced from the training prior to the target prior."""
        return rebalance(self._checked(P), self.train_prior_, self.target_prior_)

    def _state(self) -> dict:
        return {
            "train_prior": self.train_prior_,
            "target_prior": self.target_prior_,
            "n_iter": int(self.n_iter_),
            "converged": bool(self.converged_),
        }

    def _set_state(self, state: dict) -> None:
        k = len(self.columns_)
        self.train_prior_ = state_array(state, "train_prior", (k,))
        self.target_prior_ = state_array(state, "target_prior", (k,))
        if np.any(self.train_prior_ <= 0) or np.any(self.target_prior_ < 0):
            raise ValueError("priors must be positive (training) and non-negative (target)")
        self.n_iter_, self.converged_ = int(state["n_iter"]), bool(state["converged"])
