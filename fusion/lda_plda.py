"""Embedding fusion: normalise, LDA, then logistic regression (``lda``) or a two-covariance PLDA (``plda``).

The systems' embeddings (``id,e0..eN``) are aligned by id and concatenated. They are
standardised (``standard``), or centred and scaled to unit length (``length``), then projected
by LDA: the leading generalised eigenvectors of the between-class scatter ``Sb`` against the
within-class scatter ``Sw`` (plus a small ridge), as in Kaldi. The projection ``V`` is
``Sw``-orthonormal (``V' Sw V = I``) and may keep any number of dimensions up to the feature
size, not only ``classes - 1``.

PLDA (two-covariance model): class means ``m_c ~ N(mu, B)`` and ``x | c ~ N(m_c, W)``. ``W``
is the pooled within-class covariance, ``B`` the covariance of the class means less their
sampling noise (closed form, eigenvalues floored). A class is scored by the *posterior
predictive* likelihood of ``x`` given that class's training examples:
``x | c, data ~ N(m_hat_c, W + S_c)`` with ``S_c = (B^-1 + n_c W^-1)^-1`` and
``m_hat_c = mu + B (B + W / n_c)^-1 (xbar_c - mu)``. The likelihoods do not depend on the
class frequencies of the training data; posteriors come from them under a chosen prior.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sermm.errors import SermmError
from sermm.estimator import BOOLEAN, TEXT, Interval, OfType, Options, ParamError, register, state_array
from sermm.fusion.base import Fuser
from sermm.fusion.logreg import (
    C_CONSTRAINT,
    CLASS_WEIGHTS,
    fit_multinomial,
    fitted_prior,
    learn_C,
    require_every_class,
    warm,
)
from sermm.priors import parse_prior as parse_class_prior
from sermm.tables import softmax

NORMS = ("standard", "length", "none")
#: Ridge added to ``Sw`` in the LDA eigenproblem, relative to its mean eigenvalue.
LDA_RIDGE = 1e-6
#: Floor of the between-class covariance's eigenvalues, relative to the mean within-class variance.
B_FLOOR = 1e-9


def class_means(Z: np.ndarray, y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class means ``(k, d)`` and counts ``(k,)``."""
    counts = np.bincount(y, minlength=k)
    sums = np.zeros((k, Z.shape[1]))
    np.add.at(sums, y, Z)
    return sums / np.maximum(counts, 1)[:, None], counts


def fit_norm(X: np.ndarray, norm: str) -> tuple[np.ndarray, np.ndarray]:
    """The centre and scale of a normalisation, learned on development embeddings."""
    if norm not in NORMS:
        raise ParamError("norm", f"{{name}} must be one of {', '.join(NORMS)}, got {norm!r}")
    mean = X.mean(axis=0) if norm != "none" else np.zeros(X.shape[1])
    scale = X.std(axis=0) if norm == "standard" else np.ones(X.shape[1])
    scale[scale == 0] = 1.0
    return mean, scale


def apply_norm(X: np.ndarray, norm: str, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Standardise, or centre and scale every row to unit length (a zero row stays zero)."""
    Z = (X - mean) / scale
    if norm == "length":
        length = np.linalg.norm(Z, axis=1, keepdims=True)
        Z /= np.where(length > 0, length, 1.0)
    return Z


def lda_directions(Z: np.ndarray, y: np.ndarray, k: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """LDA projection ``(d, dim)`` and its eigenvalues: ``eigh(Sb, Sw + ridge)``, largest first.

    Each direction's sign is fixed so that its largest-magnitude entry is positive.
    """
    from scipy.linalg import eigh

    d = Z.shape[1]
    if not 1 <= dim <= d:
        raise ParamError("lda_dim", f"{{name}} {dim}: must lie between 1 and the feature size {d}")
    means, counts = class_means(Z, y, k)
    centre = Z.mean(axis=0)
    between = means - centre
    Sb = (between.T * counts) @ between / len(Z)
    within = Z - means[y]
    Sw = within.T @ within / len(Z)
    Sw += LDA_RIDGE * max(np.trace(Sw) / d, np.finfo(float).tiny) * np.eye(d)
    values, vectors = eigh(Sb, Sw)
    order = np.argsort(values)[::-1][:dim]
    V = vectors[:, order]
    signs = np.sign(V[np.argmax(np.abs(V), axis=0), np.arange(dim)])
    return V * signs, values[order]


def fit_plda(Z: np.ndarray, y: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Two-covariance PLDA in closed form, and each class's posterior predictive Gaussian."""
    n, d = Z.shape
    means, counts = class_means(Z, y, k)
    mu = means.mean(axis=0)
    within = Z - means[y]
    W = within.T @ within / max(n - k, 1)
    spread = means - mu
    B = spread.T @ spread / max(k - 1, 1) - W * np.mean(1.0 / counts)
    values, vectors = np.linalg.eigh((B + B.T) / 2)
    values = np.maximum(values, B_FLOOR * np.trace(W) / d)
    B = (vectors * values) @ vectors.T
    gain = np.stack([B @ np.linalg.inv(B + W / c) for c in counts])
    means_hat = mu + np.einsum("cij,cj->ci", gain, means - mu)
    predictive = W + np.stack([B - g @ B for g in gain])
    predictive = (predictive + predictive.transpose(0, 2, 1)) / 2
    return {"mu": mu, "B": B, "W": W, "means": means_hat, "cov": predictive, "counts": counts}


def plda_log_likelihoods(Z: np.ndarray, means: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """``log N(z; m_c, S_c)`` for every row and class, ``(n, k)``."""
    n, d = Z.shape
    out = np.empty((n, len(means)))
    for c, (m, S) in enumerate(zip(means, cov, strict=True)):
        L = np.linalg.cholesky(S)
        white = (Z - m) @ np.linalg.inv(L).T  # L^-1 (z - m) per row: one d x d inverse, not n solves
        log_det = 2.0 * np.log(np.diag(L)).sum()
        out[:, c] = -0.5 * (np.einsum("ij,ij->i", white, white) + log_det + d * np.log(2 * np.pi))
    return out


def parse_prior(prior: str, classes: list[str], train: np.ndarray) -> np.ndarray:
    """``uniform``, ``train`` (label frequencies), or ``class=p,...`` / a JSON file naming every
    class with p > 0 (renormalised)."""
    if prior == "uniform":
        return np.full(len(classes), 1.0 / len(classes))
    if prior == "train":
        return np.asarray(train, dtype=np.float64)
    try:
        return parse_class_prior(prior, classes, "{name}", positive=True, only_classes=True)
    except SermmError as exc:
        raise ParamError("prior", str(exc)) from None


class EmbeddingFuser(Fuser):
    """Shared by ``lda`` and ``plda``: concatenate, normalise, project by LDA."""

    kinds = ("embedding",)
    _parameter_constraints = {
        "norm": [Options(*NORMS)],
        "lda_dim": [Interval(int, 1, None)],
        "classes": [Options(None), TEXT, OfType((list, tuple), "a list of class names")],
    }
    why_labels = "learns class structure from labelled development embeddings"

    def _project_fit(self, blocks: list[np.ndarray], y: np.ndarray) -> np.ndarray:
        require_every_class(y, self.columns_, self.method)
        X = np.hstack(blocks)
        self.norm_mean_, self.norm_scale_ = fit_norm(X, self.norm)
        Z = apply_norm(X, self.norm, self.norm_mean_, self.norm_scale_)
        self.lda_, self.lda_eigenvalues_ = lda_directions(Z, y, len(self.columns_), int(self.lda_dim))
        return Z @ self.lda_

    def _project(self, blocks: list[np.ndarray]) -> np.ndarray:
        X = np.hstack(blocks) if len(blocks) > 1 else blocks[0]
        return apply_norm(X, self.norm, self.norm_mean_, self.norm_scale_) @ self.lda_

    def _describe_projection(self) -> str:
        return f"{self.norm} norm, LDA {self.lda_.shape[0]} -> {self.lda_.shape[1]} dims"

    def _projection_state(self) -> dict:
        return {
            "norm_mean": self.norm_mean_,
            "norm_scale": self.norm_scale_,
            "lda": self.lda_,
            "lda_eigenvalues": self.lda_eigenvalues_,
        }

    def _set_projection_state(self, state: dict) -> None:
        width = sum(self.dims_)
        self.norm_mean_ = state_array(state, "norm_mean", (width,))
        self.norm_scale_ = state_array(state, "norm_scale", (width,))
        dim = len(np.asarray(state["lda_eigenvalues"], dtype=np.float64))
        self.lda_eigenvalues_ = state_array(state, "lda_eigenvalues", (dim,))
        self.lda_ = state_array(state, "lda", (width, dim))


@register
class LDAFuser(EmbeddingFuser):
    """Normalise, LDA, then multinomial logistic regression on the projected embeddings."""

    method = "lda"
    _parameter_constraints = {
        **EmbeddingFuser._parameter_constraints,
        "C": C_CONSTRAINT,
        "class_weight": CLASS_WEIGHTS,
        "max_iter": [Interval(int, 1, None)],
        "warm_start": [BOOLEAN],
    }

    def __init__(
        self,
        norm: str = "standard",
        lda_dim: int = 15,
        C: float | str = 1.0,
        class_weight: str | None = None,
        classes: str | None = None,
        max_iter: int = 1000,
        warm_start: bool = False,
    ) -> None:
        self.norm = norm
        self.lda_dim = lda_dim
        self.C = C
        self.class_weight = class_weight
        self.classes = classes
        self.max_iter = max_iter
        self.warm_start = warm_start

    def _fit(self, blocks: list[np.ndarray], y: np.ndarray, groups: np.ndarray | None) -> None:
        learn_C(self, blocks, y, groups)
        Z = self._project_fit(blocks, y)
        k = len(self.columns_)
        start = warm(self, "coef_", (k, Z.shape[1]))
        self.coef_, self.intercept_, self.n_iter_ = fit_multinomial(
            Z, y, k, self.C_, self.class_weight, self.max_iter, start
        )
        self.prior_ = fitted_prior(self)

    def describe(self) -> str:
        """Normalisation, LDA size and C."""
        chosen = " (chosen by CV cross-entropy)" if self.C_curve_ else ""
        return f"{self._describe_projection()}, logistic regression C={self.C_:g}{chosen}"

    def _fuse(self, blocks: list[np.ndarray]) -> np.ndarray:
        return softmax(self._project(blocks) @ self.coef_.T + self.intercept_)

    def _state(self) -> dict:
        state: dict[str, Any] = {
            **self._projection_state(),
            "C": self.C_,
            "coef": self.coef_,
            "intercept": self.intercept_,
            "n_iter": self.n_iter_,
        }
        if self.C_curve_:
            state["cv_cross_entropy_by_C"] = self.C_curve_
        return state

    def _set_state(self, state: dict) -> None:
        self._set_projection_state(state)
        self.C_ = float(state["C"])
        k, dim = len(self.columns_), self.lda_.shape[1]
        self.coef_ = state_array(state, "coef", (k, dim))
        self.intercept_ = state_array(state, "intercept", (k,))
        self.n_iter_ = int(state["n_iter"])
        self.C_curve_ = state.get("cv_cross_entropy_by_C")


@register
class PLDAFuser(EmbeddingFuser):
    """Normalise, LDA, then a two-covariance PLDA scoring each class by its posterior predictive."""

    method = "plda"
    _parameter_constraints = {**EmbeddingFuser._parameter_constraints, "prior": [TEXT]}

    def __init__(
        self, norm: str = "standard", lda_dim: int = 15, prior: str = "uniform", classes: str | None = None
    ) -> None:
        self.norm = norm
        self.lda_dim = lda_dim
        self.prior = prior
        self.classes = classes

    def _fit(self, blocks: list[np.ndarray], y: np.ndarray, groups: np.ndarray | None) -> None:
        Z = self._project_fit(blocks, y)
        model = fit_plda(Z, y, len(self.columns_))
        self.mu_, self.between_, self.within_ = model["mu"], model["B"], model["W"]
        self.means_, self.cov_ = model["means"], model["cov"]
        self.prior_ = parse_prior(self.prior, self.columns_, self.label_prior_)

    def describe(self) -> str:
        """Normalisation, LDA size and prior."""
        return f"{self._describe_projection()}, two-covariance PLDA, {self.prior} prior"

    def log_likelihoods(self, X: Any) -> np.ndarray:
        """Class log-likelihoods ``(n, k)`` (no prior): the PLDA scores."""
        return plda_log_likelihoods(self._project(self._check_inputs(X)), self.means_, self.cov_)

    def _fuse(self, blocks: list[np.ndarray]) -> np.ndarray:
        scores = plda_log_likelihoods(self._project(blocks), self.means_, self.cov_)
        return softmax(scores + np.log(self.prior_))

    def _state(self) -> dict:
        return {
            **self._projection_state(),
            "mu": self.mu_,
            "between": self.between_,
            "within": self.within_,
            "class_means": self.means_,
            "class_covariances": self.cov_,
            "prior": self.prior_,
        }

    def _set_state(self, state: dict) -> None:
        self._set_projection_state(state)
        k, dim = len(self.columns_), self.lda_.shape[1]
        self.mu_ = state_array(state, "mu", (dim,))
        self.between_ = state_array(state, "between", (dim, dim))
        self.within_ = state_array(state, "within", (dim, dim))
        self.means_ = state_array(state, "class_means", (k, dim))
        self.cov_ = state_array(state, "class_covariances", (k, dim, dim))
        self.prior_ = state_array(state, "prior", (k,))  # the prior posteriors are computed under
