"""Metrics for the quality and calibration of class posteriors.

Inputs are a posterior matrix ``P`` of shape ``(n, k)`` (rows are
probability distributions over ``k`` classes) and integer class indices
``y`` of shape ``(n,)`` in ``[0, k)``. Logarithms are natural (nats).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from sermm.metrics import _check_labels

__all__ = [
    "brier_score",
    "cross_entropy",
    "ece",
    "expected_cost",
    "normalized_cross_entropy",
    "normalized_expected_cost",
]

_TINY = np.finfo(float).tiny


def _check_inputs(P: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    P = np.asarray(P, dtype=float)
    if P.ndim != 2 or P.shape[1] < 1:
        raise ValueError(f"P must have shape (n, k), got {P.shape}")
    y = _check_labels(y, P.shape[1], "y")
    if y.shape != (P.shape[0],):
        raise ValueError(f"y must have shape ({P.shape[0]},), got {y.shape}")
    if P.shape[0] == 0:
        raise ValueError("need at least one sample")
    return P, y


def _prior(prior: ArrayLike | None, y: np.ndarray, k: int) -> np.ndarray:
    """Given prior (validated) or the empirical class frequencies of ``y``."""
    if prior is None:
        return np.bincount(y, minlength=k) / y.shape[0]
    prior = np.asarray(prior, dtype=float)
    if prior.shape != (k,) or np.any(prior < 0) or not np.isclose(prior.sum(), 1.0):
        raise ValueError(f"prior must be a probability vector of length {k}")
    return prior


def cross_entropy(P: ArrayLike, y: ArrayLike) -> float:
    r"""Mean cross-entropy (negative log-likelihood) of the true class, in nats.

    .. math::

        CE = -\frac{1}{n} \sum_{i=1}^{n} \log P_{i, y_i}

    Probabilities are clipped from below at the smallest positive float so
    that a zero posterior for the true class gives a large finite value.
    Equals ``sklearn.metrics.log_loss`` for normalised, non-degenerate ``P``.

    Examples:
        >>> round(cross_entropy([[0.5, 0.5], [0.25, 0.75]], [0, 1]), 4)
        0.4904

    """
    P, y = _check_inputs(P, y)
    p_true = P[np.arange(P.shape[0]), y]
    return float(-np.mean(np.log(np.clip(p_true, _TINY, None))))


def normalized_cross_entropy(
    P: ArrayLike, y: ArrayLike, *, prior: ArrayLike | None = None
) -> float:
    r"""Cross-entropy divided by the entropy of a prior.

    .. math::

        NCE = \frac{CE}{H(\pi)}, \quad H(\pi) = -\sum_k \pi_k \log \pi_k

    where :math:`CE` is :func:`cross_entropy` (the plain average over
    samples). With the default prior -- the empirical class frequencies of
    ``y`` -- :math:`H(\pi)` is exactly the cross-entropy of the naive system
    that outputs :math:`\pi` for every sample, so NCE < 1 means the posteriors
    are more informative than the class prior alone. With a uniform prior
    :math:`H(\pi) = \log k` and NCE is a multiclass Cllr-style normalisation,
    ``CE / log(k)`` (the same number in any log base). Note that the
    numerator is always weighted by the empirical class frequencies; ``prior``
    only sets the reference entropy.

    Raises:
        ValueError: if :math:`H(\pi) = 0` (a prior concentrated on one class)

    Examples:
        >>> P = [[0.5, 0.5], [0.25, 0.75]]
        >>> round(normalized_cross_entropy(P, [0, 1]), 4)  # CE / log 2
        0.7075

    """
    P, y = _check_inputs(P, y)
    pi = _prior(prior, y, P.shape[1])
    nz = pi[pi > 0]
    entropy = float(-np.sum(nz * np.log(nz)))
    if entropy <= 0:
        raise ValueError("the prior has zero entropy; normalised cross-entropy is undefined")
    return cross_entropy(P, y) / entropy


def brier_score(P: ArrayLike, y: ArrayLike) -> float:
    r"""Multiclass Brier score (Brier, 1950).

    .. math::

        BS = \frac{1}{n} \sum_{i=1}^{n} \sum_{c=1}^{k} (P_{ic} - [y_i = c])^2

    Ranges from 0 (perfect) to 2.

    Examples:
        >>> brier_score([[0.5, 0.5], [0.25, 0.75]], [0, 1])
        0.3125

    """
    P, y = _check_inputs(P, y)
    onehot = np.zeros_like(P)
    onehot[np.arange(P.shape[0]), y] = 1.0
    return float(np.mean(np.sum((P - onehot) ** 2, axis=1)))


def ece(P: ArrayLike, y: ArrayLike, *, n_bins: int = 15) -> float:
    r"""Top-label expected calibration error with equal-width bins (Guo et al., 2017).

    Confidence :math:`c_i = \max_k P_{ik}`, decision
    :math:`\hat y_i = \arg\max_k P_{ik}`. With bin edges
    :math:`e_b = b / B` and bins :math:`B_b = (e_{b-1}, e_b]` (the first bin
    also contains 0):

    .. math::

        ECE = \sum_{b=1}^{B} \frac{|B_b|}{n}
              \left| \mathrm{acc}(B_b) - \mathrm{conf}(B_b) \right|
            = \frac{1}{n} \sum_b \Big| \sum_{i \in B_b} ([\hat y_i = y_i] - c_i) \Big|

    Reference: C. Guo, G. Pleiss, Y. Sun, K. Q. Weinberger, "On calibration
    of modern neural networks", ICML 2017.

    Examples:
        >>> # bins (0.8, 0.9], (0.7, 0.8], (0.6, 0.7]: (|1 - 0.9| + |0 - 0.8| + |1 - 0.7|) / 3
        >>> round(ece([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]], [0, 1, 1], n_bins=10), 4)
        0.4

    """
    P, y = _check_inputs(P, y)
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    conf = P.max(axis=1)
    correct = (P.argmax(axis=1) == y).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # searchsorted(side="left") gives i with edges[i-1] < conf <= edges[i]
    bins = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    gap = np.bincount(bins, weights=correct - conf, minlength=n_bins)
    return float(np.abs(gap).sum() / P.shape[0])


def _cost_matrix(cost: ArrayLike | None, k: int) -> np.ndarray:
    if cost is None:
        return 1.0 - np.eye(k)
    C = np.asarray(cost, dtype=float)
    if C.ndim != 2 or C.shape[0] != k:
        raise ValueError(f"cost must have shape ({k}, n_decisions), got {C.shape}")
    return C


def expected_cost(
    P: ArrayLike,
    y: ArrayLike,
    *,
    cost: ArrayLike | None = None,
    prior: ArrayLike | None = None,
) -> float:
    r"""Average cost of Bayes decisions made from the posteriors.

    Decisions minimise the expected cost under ``P``:
    :math:`d_i = \arg\min_j \sum_k P_{ik} C_{kj}`, with cost matrix
    :math:`C_{kj}` = cost of deciding ``j`` when the true class is ``k``
    (default 0-1 cost, for which :math:`d_i = \arg\max_k P_{ik}` and the
    expected cost is the error rate). The cost is then averaged over the data:

    .. math::

        EC = \sum_k \pi_k \, \frac{1}{N_k} \sum_{i: y_i = k} C_{k, d_i}

    With ``prior=None``, :math:`\pi_k = N_k / n` and EC is the plain mean of
    :math:`C_{y_i, d_i}` (``average_cost`` of the expected-cost package with
    the empirical prior). A given ``prior`` re-weights the per-class average
    costs; every class with positive prior must then occur in ``y``. The
    decisions use ``P`` as is, i.e. ``P`` are assumed to be posteriors for
    the evaluation prior.

    Reference: L. Ferrer, "Analysis and comparison of classification metrics",
    arXiv:2209.05355, 2022.

    Examples:
        >>> P = [[0.7, 0.3], [0.4, 0.6], [0.6, 0.4], [0.2, 0.8]]
        >>> expected_cost(P, [0, 1, 1, 1])
        0.25
        >>> round(expected_cost(P, [0, 1, 1, 1], prior=[0.5, 0.5]), 4)
        0.1667

    """
    P, y = _check_inputs(P, y)
    k = P.shape[1]
    C = _cost_matrix(cost, k)
    decisions = np.argmin(P @ C, axis=1)
    costs = C[y, decisions]
    if prior is None:
        return float(costs.mean())
    pi = _prior(prior, y, k)
    counts = np.bincount(y, minlength=k)
    if np.any((pi > 0) & (counts == 0)):
        raise ValueError("every class with positive prior must occur in y")
    class_cost = np.bincount(y, weights=costs, minlength=k) / np.maximum(counts, 1)
    return float(np.sum(pi * class_cost))


def normalized_expected_cost(
    P: ArrayLike,
    y: ArrayLike,
    *,
    cost: ArrayLike | None = None,
    prior: ArrayLike | None = None,
) -> float:
    r"""Expected cost divided by the cost of the best naive (input-independent) decision.

    .. math::

        NEC = \frac{EC}{\min_j \sum_k \pi_k C_{kj}}

    with :math:`\pi` the given prior or the empirical class frequencies of
    ``y``. NEC < 1 means the system beats always deciding the best fixed
    class. See :func:`expected_cost`.

    Raises:
        ValueError: if the naive cost is 0

    Examples:
        >>> P = [[0.7, 0.3], [0.4, 0.6], [0.6, 0.4], [0.2, 0.8]]
        >>> normalized_expected_cost(P, [0, 1, 1, 1])  # 0.25 / 0.25
        1.0

    """
    P, y = _check_inputs(P, y)
    k = P.shape[1]
    C = _cost_matrix(cost, k)
    pi = _prior(prior, y, k)
    naive = float(np.min(pi @ C))
    if naive <= 0:
        raise ValueError("the best naive decision has zero cost; NEC is undefined")
    return expected_cost(P, y, cost=C, prior=prior) / naive
