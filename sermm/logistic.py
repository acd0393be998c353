"""One multinomial logistic-regression solver, parameterised by the linear map that makes the logits.

Every logistic model of fusion and calibration minimises the weighted log loss of
``softmax(z)`` plus a penalty, by L-BFGS with an analytic gradient (:func:`fit_logistic`). What
differs is the map from parameters ``theta`` to the logits ``z`` (``k x n``, one column per row
of data) and its penalty:

* :class:`FullMap`: ``z = W x + b``, a ``k x d`` matrix on any features (``logreg``, ``lda``;
  with two classes one logit against a fixed zero, scikit-learn's binary case);
* :class:`TiedMap`: ``z = sum_j a_j log P_j + b``, one weight per system (``logreg --tied``);
* :class:`ScaleMap`: ``z = a log p + b`` (shared), ``d * log p + b`` (vector), ``W log p + b``
  (matrix) or ``a log p`` (temperature), for calibration.

Sample weights (:func:`class_weights`) make each class weigh its share of a prior. The maps
work on standardised inputs, and their callers map the parameters back: the optimum is the
same, and L-BFGS needs fewer iterations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sermm.errors import SermmError


def class_weights(
    y: np.ndarray, k: int, prior: np.ndarray | None = None, classes: list[str] | None = None
) -> np.ndarray:
    """Per-sample loss weights: 1, or π(y)/freq(y) so that class c weighs π(c) in the mean loss
    (a uniform π is scikit-learn's ``class_weight="balanced"``)."""
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


@dataclass
class Solution:
    """What :func:`fit_logistic` found: the parameters, the objective there, iterations, success."""

    theta: np.ndarray
    loss: float
    n_iter: int
    converged: bool


def fit_logistic(
    linear_map: LinearMap,
    X: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    *,
    norm: float,
    C: float = 1.0,
    start: np.ndarray | None = None,
    max_iter: int = 1000,
    ftol: float = 64 * np.finfo(float).eps,
    gtol: float = 1e-6,
    maxls: int = 20,
) -> Solution:
    """Minimise ``(C * sum_i w_i CE_i + penalty(theta)) / norm`` over the parameters of ``linear_map``.

    scikit-learn's form of the objective: with ``norm = C * sum(w)`` it is the mean weighted loss
    plus the penalty per unit weight (what its ``tol`` is measured on), with ``C = 1`` and
    ``norm = n`` the mean loss plus ``penalty / n``. ``X`` is the input of the map (see each map),
    ``y`` the class indices, ``weights`` the sample weights; ``start`` is where L-BFGS begins
    (default: the map's ``initial()``).

    BLAS runs on one thread here: the matrices are small (rows x a few dozen features), and
    OpenBLAS threads cost far more than they save on them, on a loaded machine ~30x more.
    """
    from scipy.optimize import minimize  # imported before the limit, so that it covers scipy's BLAS too

    cols = np.arange(len(y))
    scaled = C * weights

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = linear_map.logits(theta, X)
        z -= z.max(axis=0)
        P = np.exp(z)
        total = P.sum(axis=0)
        penalty, penalty_grad = linear_map.penalty(theta)
        value = C * (weights @ (np.log(total) - z[y, cols])) + penalty
        P /= total  # the posteriors; then d(C * sum w CE) / d z
        P[y, cols] -= 1.0
        P *= scaled
        return float(value) / norm, (linear_map.backward(theta, X, P) + penalty_grad) / norm

    theta = linear_map.initial() if start is None else start
    options = {"maxiter": max_iter, "ftol": ftol, "gtol": gtol, "maxls": maxls}
    with one_blas_thread():
        result = minimize(objective, theta, jac=True, method="L-BFGS-B", options=options)
    return Solution(result.x, float(result.fun), int(result.nit), bool(result.success))


_CONTROLLER: list = []


def one_blas_thread() -> Any:
    """A context in which every BLAS library loaded so far (numpy's and scipy's) uses one thread.

    The threadpoolctl controller is made once per process (finding the libraries is not free);
    call this after scipy is imported, so that its BLAS is among them.
    """
    from threadpoolctl import ThreadpoolController

    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1, user_api="blas")


class LinearMap:
    """Parameters -> logits ``(k, n)``; the gradient through them; the penalty on the parameters."""

    def initial(self) -> np.ndarray:
        """Where the solver starts by default."""
        raise NotImplementedError

    def logits(self, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
        """The logits ``(k, n)`` of input ``X``."""
        raise NotImplementedError

    def backward(self, theta: np.ndarray, X: np.ndarray, G: np.ndarray) -> np.ndarray:
        """The gradient with respect to ``theta`` given ``G``, the gradient with respect to the logits."""
        raise NotImplementedError

    def penalty(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """The penalty on ``theta`` and its gradient (none by default)."""
        return 0.0, np.zeros_like(theta)


class FullMap(LinearMap):
    """``z = W x + b`` on standardised features ``X`` ``(n, d)``: ``W`` is ``free x d`` with
    ``free = k``, or one row against a zero logit for two classes; the penalty is
    ``sum_f weight_f ||W_f||^2 / 2`` with one weight per feature. The logits are the transpose of
    the ``(n, k)`` product, so every reduction runs over the rows of that product."""

    def __init__(self, k: int, d: int, weight: np.ndarray) -> None:
        self.k, self.d, self.weight = k, d, weight
        self.free = 1 if k == 2 else k

    def initial(self) -> np.ndarray:
        return np.zeros(self.free * (self.d + 1))

    def unpack(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(W ``(free, d)``, b ``(free,)``)."""
        return theta[: self.free * self.d].reshape(self.free, self.d), theta[self.free * self.d :]

    def logits(self, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
        W, b = self.unpack(theta)
        z = X @ W.T + b
        return (np.hstack([np.zeros((len(X), 1)), z]) if self.free == 1 else z).T

    def backward(self, theta: np.ndarray, X: np.ndarray, G: np.ndarray) -> np.ndarray:
        G = G[1:] if self.free == 1 else G
        return np.concatenate([(G @ X).ravel(), G.sum(axis=1)])

    def penalty(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        W, _ = self.unpack(theta)
        gradient = np.concatenate([(W * self.weight).ravel(), np.zeros(self.free)])
        return 0.5 * np.sum(W * W * self.weight), gradient

    def full(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(coef ``(k, d)``, intercept ``(k,)``): class 0 keeps a zero logit in the binary case."""
        W, b = self.unpack(theta)
        if self.free == 1:  # softmax([0, z]) = sigmoid(z)
            return np.vstack([np.zeros(self.d), W]), np.concatenate([[0.0], b])
        return W, b

    def pack(self, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
        """The parameters of ``(coef, intercept)`` (the rows the solver moves)."""
        return np.concatenate([coef[self.k - self.free :].ravel(), intercept[self.k - self.free :]])


class TiedMap(LinearMap):
    """``z = sum_j a_j L_j + b`` on the systems' transposed log-posteriors ``X`` ``(m, k, n)``,
    with the L2 penalty ``||a||^2 / 2``."""

    def __init__(self, m: int, k: int) -> None:
        self.m, self.k = m, k

    def initial(self) -> np.ndarray:
        return np.concatenate([np.full(self.m, 1.0 / self.m), np.zeros(self.k)])

    def logits(self, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
        return np.tensordot(theta[: self.m], X, axes=1) + theta[self.m :, None]

    def backward(self, theta: np.ndarray, X: np.ndarray, G: np.ndarray) -> np.ndarray:
        return np.concatenate([np.einsum("kn,mkn->m", G, X), G.sum(axis=1)])

    def penalty(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        a = theta[: self.m]
        return 0.5 * float(a @ a), np.concatenate([a, np.zeros(self.k)])


class ScaleMap(LinearMap):
    """A calibration map on standardised log-posteriors ``X = (log p - shift) / spread`` ``(k, n)``
    (``shift``: the per-class means when there is a bias; ``spread``: one overall standard
    deviation); with ``l2``, the penalty ``l2 ||scale - I||^2`` pulling a vector or matrix scale
    towards the identity (on the ``log p`` scale)."""

    def __init__(self, scale: str, k: int, l2: float = 0.0, shift: np.ndarray | None = None,
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

    def apply(self, scale: np.ndarray, bias: np.ndarray, LT: np.ndarray) -> np.ndarray:
        """Logits ``(k, n)`` of (scale, bias) on transposed log-posteriors ``LT`` ``(k, n)``."""
        return self.scaled(scale, LT) + bias[:, None]

    def logits(self, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
        return self.apply(*self.unpack(theta), X)

    def to_original(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scale, bias) on the ``log p`` scale from solver parameters."""
        scale, bias = self.unpack(theta)
        scale = scale / self.spread
        return scale, bias - self.scaled(scale, self.shift)

    def from_original(self, scale: np.ndarray, bias: np.ndarray) -> np.ndarray:
        """Solver parameters of (scale, bias) on the ``log p`` scale."""
        return self.pack(scale * self.spread, bias + self.scaled(scale, self.shift))

    def initial(self) -> np.ndarray:
        """The identity map, softmax(log p) = p."""
        k = self.k
        scale = {"temperature": np.ones(1), "shared": np.ones(1), "vector": np.ones(k), "matrix": np.eye(k)}
        return self.from_original(scale[self.scale], np.zeros(k))

    def backward(self, theta: np.ndarray, X: np.ndarray, G: np.ndarray) -> np.ndarray:
        if self.scale in ("temperature", "shared"):
            grad_scale = np.array([np.sum(G * X)])
        elif self.scale == "vector":
            grad_scale = np.sum(G * X, axis=1)
        else:
            grad_scale = (G @ X.T).ravel()
        if self.scale == "temperature":
            return grad_scale
        return np.concatenate([grad_scale, G.sum(axis=1)])

    def penalty(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        if not self.l2 or self.scale not in ("vector", "matrix"):
            return 0.0, np.zeros_like(theta)
        scale, _ = self.unpack(theta)
        offset = (scale / self.spread - (1.0 if self.scale == "vector" else np.eye(self.k))).ravel()
        grad = np.zeros_like(theta)
        grad[: offset.size] = 2.0 * self.l2 * offset / self.spread
        return self.l2 * float(offset @ offset), grad
