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

from sermm.calibration.base import Calibrator, register, vector_param
from sermm.errors import SermmError
from sermm.priors import check_prior


def rebalance(P: np.ndarray, train_prior: np.ndarray, target_prior: np.ndarray) -> np.ndarray:
    """Posteriors ``P`` (n, k) under ``train_prior`` re-expressed under ``target_prior``.

    >>> rebalance(np.array([[0.5, 0.5]]), np.array([0.8, 0.2]), np.array([0.5, 0.5])).round(3)
    array([[0.2, 0.8]])
    """
    Q = P * (target_prior / train_prior)
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
    by EM; the learned target is ``target_prior_`` either way.
    """

    method = "prior"

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

    def fit(self, P: np.ndarray, y: np.ndarray | None = None, *, classes: list[str] | None = None):
        """Set the target prior; with ``target="estimate"``, estimate it from ``P`` by EM (y unused)."""
        P, _ = self._start_fit(P, y, classes, need_labels=False)
        k = P.shape[1]
        if self.train_prior is None:
            raise SermmError("prior: no training prior given")
        self.train_prior_ = check_prior(self.train_prior, k, "training prior", positive=True)
        self.n_iter_, self.converged_ = 0, True
        if isinstance(self.target, str) and self.target == "uniform":
            self.target_prior_ = np.full(k, 1.0 / k)
        elif isinstance(self.target, str) and self.target == "estimate":
            result = estimate_prior_em(P, self.train_prior_, tol=self.tol, max_iter=self.max_iter)
            self.target_prior_, self.n_iter_, self.converged_ = result.prior, result.n_iter, result.converged
        elif isinstance(self.target, str):
            raise ValueError(f"target must be 'uniform', 'estimate' or a prior, got {self.target!r}")
        else:
            self.target_prior_ = check_prior(self.target, k, "target prior")
        return self

    def transform(self, P: np.ndarray) -> np.ndarray:
        """Posteriors rebalanced from the training prior to the target prior."""
        return rebalance(np.asarray(P, dtype=np.float64), self.train_prior_, self.target_prior_)

    def output_prior(self, prior: np.ndarray | None) -> np.ndarray | None:
        """The outputs are under the target prior."""
        return self.target_prior_

    def _params(self) -> dict:
        target = self.target if isinstance(self.target, str) else "given"
        return {
            "target": target,
            "train_prior": self.train_prior_.tolist(),
            "target_prior": self.target_prior_.tolist(),
            "tol": float(self.tol),
            "max_iter": int(self.max_iter),
            "n_iter": int(self.n_iter_),
            "converged": bool(self.converged_),
        }

    @classmethod
    def _from_params(cls, params: dict, k: int) -> PriorCalibrator:
        train = vector_param(params, "train_prior", k)
        target_prior = vector_param(params, "target_prior", k)
        if np.any(train <= 0) or np.any(target_prior < 0):
            raise ValueError("priors must be positive (training) and non-negative (target)")
        target = params["target"]
        if target not in ("uniform", "estimate", "given"):
            raise ValueError(f"'target' must be uniform, estimate or given, got {target!r}")
        calibrator = cls(train, target if target != "given" else target_prior,
                         tol=float(params["tol"]), max_iter=int(params["max_iter"]))
        calibrator.train_prior_, calibrator.target_prior_ = train, target_prior
        calibrator.n_iter_, calibrator.converged_ = int(params["n_iter"]), bool(params["converged"])
        return calibrator
