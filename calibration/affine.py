"""Affine calibration of log-posteriors by multiclass logistic regression (numpy + scipy).

The calibrated logits are ``z = a·log p + b`` (one shared scale ``a`` and one bias per
class, the psrcal ``AffineCalLogLoss`` model), ``z = a·log p`` (temperature scaling),
``z = d ⊙ log p + b`` (vector scaling) or ``z = W log p + b`` (matrix scaling), and the
calibrated posteriors are ``softmax(z)``. Parameters minimise the mean log loss on dev
data with L-BFGS-B and analytic gradients (:mod:`sermm.logistic`, the solver fusion's
logistic regression uses too). With a target prior π the loss is
prior-weighted (each class's samples weigh π(c) in total, psrcal's ``priors=``) and the
outputs are posteriors under π.
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from sermm.calibration.base import Calibrator
from sermm.estimator import VECTOR, Interval, Options, register, state_array
from sermm.logistic import ScaleMap, class_weights, fit_logistic
from sermm.priors import check_prior
from sermm.tables import log_posteriors, softmax


@register
class AffineCalibrator(Calibrator):
    """Logistic-regression calibration of log-posteriors: ``softmax(a·log p + b)`` by default.

    ``scale`` is "shared" (one scale, psrcal's affine model), "vector" (one scale per
    class) or "matrix" (full matrix, with ``l2`` pulling it towards the identity).
    ``prior`` ("uniform" or a prior in class order) makes the log loss prior-weighted and
    the outputs posteriors under that prior; otherwise they are under the dev label prior.
    """

    method = "affine"
    _parameter_constraints = {
        "scale": [Options("shared", "vector", "matrix")],
        "prior": [Options(None, "uniform"), VECTOR],
        "l2": [Interval(float, 0, None)],
        "max_iter": [Interval(int, 1, None)],
        "tol": [Interval(float, 0, None, closed="neither")],
    }

    def __init__(
        self,
        *,
        scale: str = "shared",
        prior: str | np.ndarray | None = None,
        l2: float = 0.0,
        max_iter: int = 1000,
        tol: float = 1e-10,
    ) -> None:
        self.scale = scale
        self.prior = prior
        self.l2 = l2
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, P, y=None, *, classes=None) -> AffineCalibrator:
        """Minimise the (prior-weighted) log loss of the calibrated posteriors on ``P``, ``y``."""
        P, y = self._start_fit(P, y, classes, need_labels=True)
        n, k = P.shape
        prior = self._target_prior(k)
        L = log_posteriors(P)
        shift = L.mean(axis=0) if self.scale != "temperature" else np.zeros(k)
        spread = float(np.std(L - shift)) or 1.0
        # the solver divides the summed loss and the penalty by n: l2 * n is l2 per row
        linear_map = ScaleMap(self.scale, k, float(self.l2) * n, shift, spread)
        XT = np.ascontiguousarray(((L - shift) / spread).T)
        w = class_weights(y, k, prior, self.columns_)
        # one BLAS thread: on small problems, OpenBLAS threads cost more than they save
        with threadpool_limits(1, user_api="blas"):
            result = fit_logistic(linear_map, XT, y, w, norm=n, max_iter=self.max_iter, ftol=self.tol,
                                  gtol=1e-8, maxls=50)
        scale, bias = linear_map.to_original(result.theta)
        self.scale_ = np.array(scale, dtype=np.float64)
        self.bias_ = bias - bias.mean()
        self.target_prior_ = prior
        self.prior_ = prior if prior is not None else np.bincount(y, minlength=k) / n
        self.loss_ = result.loss
        self.n_iter_ = result.n_iter
        self.converged_ = result.converged
        return self

    def _target_prior(self, k: int) -> np.ndarray | None:
        if self.prior is None:
            return None
        if isinstance(self.prior, str):
            return np.full(k, 1.0 / k)
        return check_prior(self.prior, k, "target prior")

    def transform(self, P: np.ndarray) -> np.ndarray:
        """Calibrated posteriors ``softmax(scale·log P + bias)``."""
        LT = np.ascontiguousarray(log_posteriors(self._checked(P)).T)
        logits = ScaleMap(self.scale, len(self.columns_)).apply(self.scale_, self.bias_, LT)
        return softmax(logits.T)

    def _state(self) -> dict:
        return {
            "scale_values": self.scale_,
            "bias": self.bias_,
            "target_prior": self.target_prior_,
            "loss": self.loss_,
            "n_iter": self.n_iter_,
            "converged": self.converged_,
        }

    def _set_state(self, state: dict) -> None:
        k = len(self.columns_)
        shape = {"temperature": (1,), "shared": (1,), "vector": (k,), "matrix": (k, k)}[self.scale]
        self.scale_ = state_array(state, "scale_values", shape)
        self.bias_ = state_array(state, "bias", (k,))
        given = state["target_prior"] is not None
        self.target_prior_ = state_array(state, "target_prior", (k,)) if given else None
        self.loss_ = float(state["loss"])
        self.n_iter_ = int(state["n_iter"])
        self.converged_ = bool(state["converged"])
        if self.prior_ is None:
            raise ValueError("'train_prior' is missing (the prior the outputs are under)")


@register
class TemperatureCalibrator(AffineCalibrator):
    """Temperature scaling: ``softmax(a·log p)``, one scale and no bias (Guo et al., 2017)."""

    method = "temperature"
    keeps_prior = True
    _parameter_constraints = {
        "max_iter": AffineCalibrator._parameter_constraints["max_iter"],
        "tol": AffineCalibrator._parameter_constraints["tol"],
    }

    def __init__(self, *, max_iter: int = 1000, tol: float = 1e-10) -> None:
        super().__init__(scale="temperature", prior=None, max_iter=max_iter, tol=tol)
