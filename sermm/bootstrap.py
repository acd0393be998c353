"""Bootstrap confidence intervals and paired significance tests.

All functions resample utterances (rows) with replacement. Resample indices
are drawn from ``numpy.random.default_rng(seed)`` as an ``(n_boot, n)``
matrix, generated ``chunk_size`` rows at a time so that memory stays at
``O(chunk_size * n)`` (e.g. n = 100k, n_boot = 1000 never materialises the
full index matrix). The rows are drawn in order from one generator, so the
resamples -- and hence the results -- depend on ``seed`` but not on
``chunk_size``; different functions called with the same seed and data size
use the same resamples.

Fast paths:

* categorical metrics: each utterance gets one joint code (true class and
  the predicted class of every compared system); per chunk the codes are
  gathered once and the confusion matrices of all resamples come from one
  :func:`numpy.bincount`, then every metric is evaluated on the stack with
  :func:`sermm.metrics.categorical_summary_from_confusion`;
* CCC: each resample is turned into per-utterance counts and the required
  first and second moments are one matrix product ``counts @ features``.

Confidence intervals are percentile intervals
``[q(alpha/2), q(1 - alpha/2)]`` of the bootstrap distribution
(Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from sermm.metrics import (
    CATEGORICAL_METRICS,
    _check_labels,
    _scalar,
    categorical_summary_from_confusion,
    ccc,
    confusion_matrices,
    confusion_matrix,
)

__all__ = [
    "bootstrap_categorical",
    "bootstrap_ccc",
    "bootstrap_ci",
    "paired_bootstrap",
    "paired_bootstrap_ccc",
]


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _check_options(n: int, n_boot: int, alpha: float, chunk_size: int) -> None:
    if n < 1:
        raise ValueError("bootstrap needs at least one sample")
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")


def _resample_chunks(
    n: int, n_boot: int, seed: int | None, chunk_size: int
) -> Iterator[np.ndarray]:
    """Yield ``(c, n)`` index matrices, rows of the ``(n_boot, n)`` resample matrix."""
    rng = np.random.default_rng(seed)
    for start in range(0, n_boot, chunk_size):
        c = min(chunk_size, n_boot - start)
        yield rng.integers(0, n, size=(c, n))


def _resample_counts(idx: np.ndarray, n: int) -> np.ndarray:
    """How often each utterance occurs in each resample: ``(c, n)`` float counts."""
    c = idx.shape[0]
    offsets = (np.arange(c, dtype=np.int64) * n)[:, None]
    return np.bincount((idx + offsets).ravel(), minlength=c * n).reshape(c, n).astype(float)


def _percentiles(stats: np.ndarray, alpha: float) -> tuple[Any, Any]:
    low, high = np.quantile(stats, [alpha / 2.0, 1.0 - alpha / 2.0], axis=0)
    return _scalar(low), _scalar(high)


def _bootstrap_confusions(
    y_true: np.ndarray,
    preds: list[np.ndarray],
    k: int,
    n_boot: int,
    seed: int | None,
    chunk_size: int,
) -> np.ndarray:
    """Confusion matrices of ``s`` systems on all resamples: ``(n_boot, s, k, k)``.

    Each utterance gets one joint code ``(y_true, pred_1, ..., pred_s)`` in
    base ``k``; per chunk, the codes are gathered once and a single bincount
    gives the joint tables of all resamples, which are then summed down to
    each system's confusion matrix.
    """
    s = len(preds)
    n = y_true.shape[0]
    n_codes = k ** (s + 1)
    codes = y_true.astype(np.int64)
    for p in preds:
        codes = codes * k + p
    codes = codes.astype(np.min_scalar_type(n_codes - 1))  # small dtype: faster gather
    out = np.empty((n_boot, s, k, k), dtype=np.int64)
    start = 0
    for idx in _resample_chunks(n, n_boot, seed, chunk_size):
        c = idx.shape[0]
        flat = codes[idx].astype(np.int64)
        flat += (np.arange(c, dtype=np.int64) * n_codes)[:, None]
        joint = np.bincount(flat.ravel(), minlength=c * n_codes).reshape((c,) + (k,) * (s + 1))
        for j in range(s):
            # keep the true-class axis (1) and system j's axis (2 + j)
            other = tuple(2 + i for i in range(s) if i != j)
            out[start : start + c, j] = joint.sum(axis=other) if other else joint
        start += c
    return out


def _ccc_inputs(y_true: ArrayLike, *preds: ArrayLike) -> tuple[np.ndarray, list[np.ndarray]]:
    t = np.asarray(y_true, dtype=float)
    if t.ndim not in (1, 2):
        raise ValueError(f"y_true must be 1-D or 2-D, got shape {t.shape}")
    ps = [np.asarray(p, dtype=float) for p in preds]
    for p in ps:
        if p.shape != t.shape:
            raise ValueError(f"predictions of shape {p.shape} do not match y_true {t.shape}")
    return t, ps


def _bootstrap_ccc_values(
    y_true: np.ndarray,
    preds: list[np.ndarray],
    n_boot: int,
    seed: int | None,
    chunk_size: int,
) -> np.ndarray:
    """CCC of each prediction on every resample: ``(n_boot, len(preds), *y_true.shape[1:])``.

    Data are centred first (CCC is unchanged by shifting ``y_true`` and a
    prediction separately if the mean difference is carried along), then the
    resampled moments are ``counts @ features / n``.
    """
    n = y_true.shape[0]
    t = y_true.reshape(n, -1)  # (n, a)
    a = t.shape[1]
    mu_t = t.mean(axis=0)
    tc = t - mu_t
    ps = [p.reshape(n, -1) for p in preds]
    mus = [p.mean(axis=0) for p in ps]
    pcs = [p - mu for p, mu in zip(ps, mus, strict=True)]
    # features: t, t^2, then for each prediction p, p^2, t*p
    feats = [tc, tc * tc]
    for pc in pcs:
        feats += [pc, pc * pc, tc * pc]
    features = np.concatenate(feats, axis=1)  # (n, a * (2 + 3 * s))
    s = len(ps)
    out = np.empty((n_boot, s, a), dtype=float)
    start = 0
    for idx in _resample_chunks(n, n_boot, seed, chunk_size):
        c = idx.shape[0]
        moments = (_resample_counts(idx, n) @ features / n).reshape(c, 2 + 3 * s, a)
        mt, mtt = moments[:, 0], moments[:, 1]
        var_t = mtt - mt * mt
        for j in range(s):
            mp, mpp, mtp = moments[:, 2 + 3 * j], moments[:, 3 + 3 * j], moments[:, 4 + 3 * j]
            var_p = mpp - mp * mp
            cov = mtp - mt * mp
            diff = (mt + mu_t) - (mp + mus[j])
            den = var_t + var_p + diff * diff
            with np.errstate(divide="ignore", invalid="ignore"):
                out[start : start + c, j] = np.where(
                    den > 0, 2.0 * cov / np.where(den > 0, den, 1.0), np.nan
                )
        start += c
    return out.reshape(n_boot, s, *y_true.shape[1:])


# ---------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------


def bootstrap_ci(
    metric_fn: Callable[..., Any],
    *arrays: ArrayLike,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int | None = 0,
    vectorized: bool = False,
    chunk_size: int = 100,
) -> tuple[Any, Any]:
    r"""Percentile bootstrap confidence interval of an arbitrary metric.

    All ``arrays`` are resampled with the same utterance indices; the
    interval is :math:`[q_{\alpha/2}, q_{1-\alpha/2}]` of the metric over
    ``n_boot`` resamples.

    Args:
        metric_fn: ``metric_fn(*resampled_arrays)`` returning a float (or an
            array, giving elementwise intervals). With ``vectorized=True`` it
            receives arrays with a leading resample axis of length ``c``
            (shape ``(c, n, ...)``) and must return shape ``(c, ...)``.
        *arrays: arrays sharing the first dimension ``n``
        n_boot: number of resamples
        alpha: 1 - confidence level
        seed: seed for :func:`numpy.random.default_rng`
        vectorized: call ``metric_fn`` once per chunk of resamples instead
            of once per resample
        chunk_size: resamples processed at a time

    Returns:
        ``(low, high)``

    For categorical metrics or CCC prefer the much faster
    :func:`bootstrap_categorical` / :func:`bootstrap_ccc`, which use the
    same resamples for the same seed.

    Examples:
        >>> x = np.arange(100.0)
        >>> low, high = bootstrap_ci(np.mean, x, n_boot=200, seed=0)
        >>> bool(low < 49.5 < high)
        True

    """
    arrs = [np.asarray(a) for a in arrays]
    if not arrs:
        raise ValueError("bootstrap_ci needs at least one array")
    n = arrs[0].shape[0] if arrs[0].ndim else 0
    if any(a.ndim == 0 or a.shape[0] != n for a in arrs):
        raise ValueError("all arrays must share the same first dimension")
    _check_options(n, n_boot, alpha, chunk_size)
    stats = []
    for idx in _resample_chunks(n, n_boot, seed, chunk_size):
        if vectorized:
            stats.append(np.asarray(metric_fn(*[a[idx] for a in arrs]), dtype=float))
        else:
            stats.append(np.array([metric_fn(*[a[row] for a in arrs]) for row in idx], dtype=float))
    return _percentiles(np.concatenate(stats, axis=0), alpha)


def bootstrap_categorical(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    n_classes: int,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int | None = 0,
    chunk_size: int = 100,
) -> dict[str, tuple[float, float, float]]:
    """Point estimates and percentile CIs of all categorical summary metrics.

    Metrics: ``macro_f1``, ``micro_f1``, ``weighted_f1``, ``ua``, ``wa`` (see
    :mod:`sermm.metrics`). The confusion matrices of each chunk of resamples
    are computed with a single bincount.

    Returns:
        dict metric -> ``(point, low, high)``

    Examples:
        >>> y = np.array([0, 1, 2, 0, 1, 2] * 10)
        >>> res = bootstrap_categorical(y, y, n_classes=3, n_boot=50)
        >>> res["macro_f1"]
        (1.0, 1.0, 1.0)

    """
    yt = _check_labels(y_true, n_classes, "y_true")
    yp = _check_labels(y_pred, n_classes, "y_pred")
    if yt.ndim != 1 or yt.shape != yp.shape:
        raise ValueError("y_true and y_pred must be 1-D of equal length")
    _check_options(yt.shape[0], n_boot, alpha, chunk_size)
    k = n_classes
    point = categorical_summary_from_confusion(confusion_matrix(yt, yp, n_classes=k))
    boot = categorical_summary_from_confusion(
        _bootstrap_confusions(yt, [yp], k, n_boot, seed, chunk_size)[:, 0]
    )
    result = {}
    for name in CATEGORICAL_METRICS:
        low, high = _percentiles(boot[name], alpha)
        result[name] = (float(point[name]), low, high)
    return result


def bootstrap_ccc(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int | None = 0,
    chunk_size: int = 100,
) -> tuple[Any, Any, Any]:
    """Point estimate and percentile CI of the CCC (:func:`sermm.metrics.ccc`).

    Args:
        y_true: shape ``(n,)`` or ``(n, a)``
        y_pred: same shape as ``y_true``

    Returns:
        ``(point, low, high)``: floats for 1-D input, arrays of shape
        ``(a,)`` (one per attribute) for 2-D input

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> t = rng.normal(size=500)
        >>> point, low, high = bootstrap_ccc(t, t + 0.5 * rng.normal(size=500), n_boot=200)
        >>> bool(low < point < high)
        True

    """
    t, (p,) = _ccc_inputs(y_true, y_pred)
    _check_options(t.shape[0], n_boot, alpha, chunk_size)
    point = ccc(t, p)
    boot = _bootstrap_ccc_values(t, [p], n_boot, seed, chunk_size)[:, 0]
    low, high = _percentiles(boot, alpha)
    return point, low, high


def paired_bootstrap(
    y_true: ArrayLike,
    pred_a: ArrayLike,
    pred_b: ArrayLike,
    *,
    n_classes: int,
    metric: str = "macro_f1",
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int | None = 0,
    chunk_size: int = 100,
) -> dict[str, float]:
    r"""Paired bootstrap comparison of two categorical systems (Koehn, 2004).

    Both systems are scored on the same resamples, and the statistic is
    :math:`\Delta = M(b) - M(a)`.

    ``p_value`` is the one-sided bootstrap estimate of
    :math:`P(\Delta \le 0)`: the fraction of resamples in which system ``b``
    is *not* better than system ``a``. A small value supports "b is better
    than a"; for the opposite direction swap the systems. Ties count against
    ``b``, so identical systems give ``p_value = 1``.

    Args:
        y_true: true class indices, shape ``(n,)``
        pred_a: class indices predicted by the baseline system ``a``
        pred_b: class indices predicted by the candidate system ``b``
        n_classes: number of classes
        metric: one of ``macro_f1``, ``micro_f1``, ``weighted_f1``, ``ua``, ``wa``

    Returns:
        dict with ``diff`` (:math:`\Delta` on the full data), ``low``/``high``
        (percentile CI of :math:`\Delta`) and ``p_value``

    Reference: P. Koehn, "Statistical significance tests for machine
    translation evaluation", EMNLP 2004.

    Examples:
        >>> y = np.array([0, 1, 2] * 20)
        >>> res = paired_bootstrap(y, np.zeros(60, dtype=int), y, n_classes=3, n_boot=100)
        >>> res["p_value"]
        0.0

    """
    if metric not in CATEGORICAL_METRICS:
        raise ValueError(f"metric must be one of {CATEGORICAL_METRICS}, got {metric!r}")
    yt = _check_labels(y_true, n_classes, "y_true")
    pa = _check_labels(pred_a, n_classes, "pred_a")
    pb = _check_labels(pred_b, n_classes, "pred_b")
    if yt.ndim != 1 or yt.shape != pa.shape or yt.shape != pb.shape:
        raise ValueError("y_true, pred_a and pred_b must be 1-D of equal length")
    _check_options(yt.shape[0], n_boot, alpha, chunk_size)
    k = n_classes
    point_conf = confusion_matrices(yt, np.stack([pa, pb]), n_classes=k)
    point = categorical_summary_from_confusion(point_conf)[metric]
    boot = categorical_summary_from_confusion(
        _bootstrap_confusions(yt, [pa, pb], k, n_boot, seed, chunk_size)
    )[metric]  # (n_boot, 2)
    diffs = boot[:, 1] - boot[:, 0]
    low, high = _percentiles(diffs, alpha)
    return {
        "diff": float(point[1] - point[0]),
        "low": low,
        "high": high,
        "p_value": float(np.mean(diffs <= 0)),
    }


def paired_bootstrap_ccc(
    y_true: ArrayLike,
    pred_a: ArrayLike,
    pred_b: ArrayLike,
    *,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int | None = 0,
    chunk_size: int = 100,
) -> dict[str, Any]:
    r"""Paired bootstrap comparison of two attribute predictors by CCC.

    Same procedure as :func:`paired_bootstrap` with
    :math:`\Delta = \text{CCC}(b) - \text{CCC}(a)`; ``p_value`` is the
    fraction of resamples with :math:`\Delta \le 0` (one-sided, small when
    ``b`` is better).

    Args:
        y_true: shape ``(n,)`` or ``(n, a)``
        pred_a: baseline predictions, same shape
        pred_b: candidate predictions, same shape

    Returns:
        dict with ``diff``, ``low``, ``high``, ``p_value``: floats for 1-D
        input, arrays of shape ``(a,)`` for 2-D input

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> t = rng.normal(size=300)
        >>> good, bad = t + 0.3 * rng.normal(size=300), t + 2.0 * rng.normal(size=300)
        >>> paired_bootstrap_ccc(t, bad, good, n_boot=100)["p_value"]
        0.0

    """
    t, (pa, pb) = _ccc_inputs(y_true, pred_a, pred_b)
    _check_options(t.shape[0], n_boot, alpha, chunk_size)
    point = np.asarray(ccc(t, pb)) - np.asarray(ccc(t, pa))
    boot = _bootstrap_ccc_values(t, [pa, pb], n_boot, seed, chunk_size)
    diffs = boot[:, 1] - boot[:, 0]
    low, high = _percentiles(diffs, alpha)
    return {
        "diff": _scalar(point),
        "low": low,
        "high": high,
        "p_value": _scalar(np.mean(diffs <= 0, axis=0)),
    }
