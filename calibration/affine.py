"""Affine calibration of log-posteriors by multiclass logistic regression (numpy + scipy).

The calibrated logits are ``z = a·log p + b`` (one shared scale ``a`` and one bias per
class, the psrcal ``AffineCalLogLoss`` model), ``z = a·log p`` (temperature scaling),
``z = d ⊙ log p + b`` (vector scaling) or ``z = W log p + b`` (matrix scaling), and the
calibrated posteriors are ``softmax(z)``. Parameters minimise the mean log loss on dev
data with L-BFGS-B and analytic gradients. With a target prior π the loss is
prior-weighted (each class's samples weigh π(c) in total, psrcal's ``priors=``) and the
outputs are posteriors under π.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import softmax
from threadpoolctl import threadpool_limits

from sermm.calibration.base import Calibrator
from sermm.errors import SermmError
from sermm.estimator import VECTOR, Interval, Options, register, state_array
from sermm.priors import check_prior
from sermm.tables import log_posteriors

SCALES = ("temperature", "shared", "vector", "matrix")


def class_weights(
    y: np.ndarray, k: int, prior: np.ndarray | None, classes: list[str] | None = None
) -> np.ndarray:
    """Per-sample loss weights: 1, or π(y)/freq(y) so that class c weighs π(c) in the mean loss."""
    if prior is None:
        return np.ones(y.shape[0])
    counts = np.bincount(y, minlength=k)
    missing = np.flatnonzero((counts == 0) & (prior > 0))
    if missing.size:
        name = classes[missing[0]] if classes else str(missing[0])
        raise SermmError(
            f"class {name} has no labelled samples but a positive target prior: "
            "cannot weight the loss by that prior"
        )
    freq = counts / y.shape[0]
    return prior[y] / freq[y]


class _Model:
    """One scale kind's parameter layout, logits, and loss with its gradient.

    The optimiser works on standardised log-posteriors ``X = (log p - shift) / spread``
    (``shift``: the per-class means when there is a bias; ``spread``: one overall standard
    deviation), which cuts L-BFGS iterations several-fold for the full matrix; parameters
    are mapped back to the ``log p`` scale with :meth:`to_original`.
    """

    def __init__(self, scale: str, k: int, l2: float, shift: np.ndarray | None = None,
                 spread: float = 1.0) -> None:
        self.scale, self.k, self.l2 = scale, k, l2
        self.shift = np.zeros(k) if shift is None else shift
        self.spread = spread

    def unpack(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scale, bias): scale is shape (1,), (k,) or (k, k); bias (k,)."""
        k = self.k
        if self.scale == "temperature":
            return theta[:1], np.zeros(k)
        if self.scale == "shared":
            return theta[:1], theta[1:]
        if self.scale == "vector":
            return theta[:k], theta[k:]
        return theta[: k * k].reshape(k, k), theta[k * k :]

    def pack(self, scale: np.ndarray, bias: np.ndarray) -> np.ndarray:
        """The flat parameter vector of (scale, bias)."""
        if self.scale == "temperature":
            return np.array(scale, dtype=np.float64).ravel()
        return np.concatenate([np.ravel(scale), bias])

    def scaled(self, scale: np.ndarray, X: np.ndarray) -> np.ndarray:
        """The scale applied to columns of ``X`` (k, ...): ``a X``, ``d ⊙ X`` or ``W X``."""
        if self.scale == "matrix":
            return scale @ X
        if self.scale == "vector":
            return scale.reshape((self.k,) + (1,) * (X.ndim - 1)) * X
        return scale[0] * X

    def logits(self, scale: np.ndarray, bias: np.ndarray, LT: np.ndarray) -> np.ndarray:
        """Calibrated logits, shape (k, n), of transposed log-posteriors ``LT`` (k, n)."""
        return self.scaled(scale, LT) + bias[:, None]

    def to_original(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scale, bias) on the ``log p`` scale from optimiser parameters."""
        scale, bias = self.unpack(theta)
        scale = scale / self.spread
        return scale, bias - self.scaled(scale, self.shift)

    def from_original(self, scale: np.ndarray, bias: np.ndarray) -> np.ndarray:
        """Optimiser parameters of (scale, bias) on the ``log p`` scale."""
        return self.pack(scale * self.spread, bias + self.scaled(scale, self.shift))

    def initial(self) -> np.ndarray:
        """The identity map, softmax(log p) = p."""
        k = self.k
        scale = {"temperature": np.ones(1), "shared": np.ones(1), "vector": np.ones(k), "matrix": np.eye(k)}
        return self.from_original(scale[self.scale], np.zeros(k))

    def objective(
        self, theta: np.ndarray, XT: np.ndarray, y: np.ndarray, w: np.ndarray
    ) -> tuple[float, np.ndarray]:
        """Weighted mean log loss (+ L2 of the scale's distance from the identity) and its gradient.

        Works on (k, n) arrays: numpy reduces over a few long rows much faster than over
        many rows of length k.
        """
        k, n = XT.shape
        scale, bias = self.unpack(theta)
        z = self.logits(scale, bias, XT)
        z -= z.max(axis=0)
        G = np.exp(z)
        total = G.sum(axis=0)
        cols = np.arange(n)
        loss = float(np.dot(w, np.log(total) - z[y, cols])) / n
        G *= w / (n * total)
        G[y, cols] -= w / n
        grad_bias = G.sum(axis=1)
        if self.scale in ("temperature", "shared"):
            grad_scale = np.array([np.sum(G * XT)])
        elif self.scale == "vector":
            grad_scale = np.sum(G * XT, axis=1)
        else:
            grad_scale = (G @ XT.T).ravel()
        if self.l2 and self.scale in ("vector", "matrix"):
            offset = (scale / self.spread - (1.0 if self.scale == "vector" else np.eye(k))).ravel()
            loss += self.l2 * float(offset @ offset)
            grad_scale = grad_scale + 2.0 * self.l2 * offset / self.spread
        if self.scale == "temperature":
            return loss, grad_scale
        return loss, np.concatenate([grad_scale, grad_bias])


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
        model = _Model(self.scale, k, float(self.l2), shift, spread)
        XT = np.ascontiguousarray(((L - shift) / spread).T)
        w = class_weights(y, k, prior, self.columns_)
        # one BLAS thread: on small problems, OpenBLAS threads cost more than they save
        with threadpool_limits(1, user_api="blas"):
            result = minimize(
                model.objective, model.initial(), args=(XT, y, w), jac=True, method="L-BFGS-B",
                options={"maxiter": self.max_iter, "ftol": self.tol, "gtol": 1e-8, "maxls": 50},
            )
        scale, bias = model.to_original(result.x)
        self.scale_ = np.array(scale, dtype=np.float64)
        self.bias_ = bias - bias.mean()
        self.target_prior_ = prior
        self.prior_ = prior if prior is not None else np.bincount(y, minlength=k) / n
        self.loss_ = float(result.fun)
        self.n_iter_ = int(result.nit)
        self.converged_ = bool(result.success)
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
        model = _Model(self.scale, len(self.columns_), 0.0)
        return softmax(model.logits(self.scale_, self.bias_, LT), axis=0).T

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
