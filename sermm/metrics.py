"""Evaluation metrics for categorical emotions and emotional attributes.

Categorical labels are integer class indices in ``[0, n_classes)``; the
number of classes is always passed explicitly (keyword-only) so that classes
absent from a particular evaluation set still count in macro averages.

Every categorical metric is defined on the confusion matrix, and the
``*_from_confusion`` variants accept a stack of confusion matrices of shape
``(..., k, k)``. Together with :func:`confusion_matrices` (one
:func:`numpy.bincount` for many candidate predictions) this lets a fusion grid
search score thousands of candidates without a Python loop.

Undefined ratios (e.g. precision of a class that is never predicted) are 0,
as with scikit-learn's ``zero_division=0``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "METRICS",
    "Metric",
    "accuracy_from_confusion",
    "categorical_summary",
    "categorical_summary_from_confusion",
    "ccc",
    "confusion_matrices",
    "confusion_matrix",
    "macro_f1",
    "macro_f1_from_confusion",
    "micro_f1",
    "micro_f1_from_confusion",
    "per_class_scores",
    "per_class_scores_from_confusion",
    "ua_from_confusion",
    "unweighted_accuracy",
    "weighted_accuracy",
    "weighted_f1",
    "weighted_f1_from_confusion",
]

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _check_labels(y: ArrayLike, n_classes: int, name: str) -> np.ndarray:
    """Return ``y`` as an int64 array, checking dtype and range."""
    if int(n_classes) != n_classes or n_classes < 1:
        raise ValueError(f"n_classes must be a positive integer, got {n_classes!r}")
    arr = np.asarray(y)
    if arr.dtype.kind not in "iu":
        if arr.size == 0:
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        raise ValueError(f"{name} has values outside [0, {n_classes})")
    return arr.astype(np.int64, copy=False)


def _safe_div(num: ArrayLike, den: ArrayLike) -> np.ndarray:
    """Elementwise ``num / den`` with 0 where ``den == 0``."""
    num, den = np.broadcast_arrays(np.asarray(num, dtype=float), np.asarray(den, dtype=float))
    out = np.zeros(num.shape, dtype=float)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _scalar(x: np.ndarray) -> float | np.ndarray:
    """Return a Python float for 0-d results, the array otherwise."""
    x = np.asarray(x)
    return float(x) if x.ndim == 0 else x


# ---------------------------------------------------------------------------
# the metric table
# ---------------------------------------------------------------------------


def _f1(tp: np.ndarray, predicted: np.ndarray, support: np.ndarray) -> np.ndarray:
    """Per-class F1, ``2 TP / (S + P)``."""
    return _safe_div(2 * tp, support + predicted)


def _macro_f1(tp: np.ndarray, predicted: np.ndarray, support: np.ndarray) -> np.ndarray:
    return _f1(tp, predicted, support).mean(axis=-1)


def _weighted_f1(tp: np.ndarray, predicted: np.ndarray, support: np.ndarray) -> np.ndarray:
    return _safe_div((_f1(tp, predicted, support) * support).sum(axis=-1), support.sum(axis=-1))


def _ua(tp: np.ndarray, predicted: np.ndarray, support: np.ndarray) -> np.ndarray:
    return _safe_div(tp, support).mean(axis=-1)


def _accuracy(tp: np.ndarray, predicted: np.ndarray, support: np.ndarray) -> np.ndarray:
    return _safe_div(tp.sum(axis=-1), support.sum(axis=-1))


@dataclass(frozen=True)
class Metric:
    """One metric: its key (in reports and model files), its column ``title``, its ``option``
    spelling (``--metric``), what it scores (``decisions``, ``posteriors`` or ``attributes``),
    its direction and unit, and, for decision metrics, the formula on per-class counts
    (``of_counts(tp, predicted, support)``, on stacks with any leading axes)."""

    key: str
    title: str
    option: str
    scores: str
    higher_is_better: bool = True
    unit: str = ""
    of_counts: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None


#: The metrics sermm knows. The report, the fusion dev tables and
#: cross-validated estimates, ``interp``'s objective and its ``--metric`` choices all read it.
METRICS: dict[str, Metric] = {
    m.key: m
    for m in (
        Metric("macro_f1", "macro-F1", "macro-f1", "decisions", of_counts=_macro_f1),
        Metric("micro_f1", "micro-F1", "micro-f1", "decisions", of_counts=_accuracy),
        Metric("weighted_f1", "weighted-F1", "weighted-f1", "decisions", of_counts=_weighted_f1),
        Metric("ua", "UA", "ua", "decisions", of_counts=_ua),
        Metric("wa", "WA", "accuracy", "decisions", of_counts=_accuracy),
        Metric("cross_entropy", "CE", "cross-entropy", "posteriors", higher_is_better=False, unit="nats"),
        Metric("nce", "NCE", "nce", "posteriors", higher_is_better=False),
        Metric("ece", "ECE", "ece", "posteriors", higher_is_better=False),
        Metric("brier", "Brier", "brier", "posteriors", higher_is_better=False),
        Metric("ccc", "CCC", "ccc", "attributes"),
    )
}
#: The decision metrics, as :func:`categorical_summary` returns them.
CATEGORICAL_METRICS: tuple[str, ...] = tuple(k for k, m in METRICS.items() if m.scores == "decisions")
#: The columns of fusion's dev tables and cross-validated estimates for class posteriors.
DEV_METRICS: tuple[str, ...] = ("macro_f1", "ua", "wa")


def metric_by_option(option: str) -> Metric:
    """The metric an option names (``macro-f1``, ``accuracy``, ``cross-entropy``...)."""
    for metric in METRICS.values():
        if metric.option == option:
            return metric
    raise KeyError(option)


def _counts(conf: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True positives, predicted counts and support per class of confusion matrices ``(..., k, k)``."""
    conf = np.asarray(conf)
    if conf.ndim < 2 or conf.shape[-1] != conf.shape[-2]:
        raise ValueError(f"conf must have shape (..., k, k), got {conf.shape}")
    return np.diagonal(conf, axis1=-2, axis2=-1), conf.sum(axis=-2), conf.sum(axis=-1)


# ---------------------------------------------------------------------------
# confusion matrices
# ---------------------------------------------------------------------------


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, *, n_classes: int) -> np.ndarray:
    r"""Confusion matrix with true classes in rows and predicted classes in columns.

    .. math::

        C_{ij} = |\{n : y_n = i, \hat y_n = j\}|

    Computed with a single :func:`numpy.bincount` of ``y_true * k + y_pred``.

    Args:
        y_true: true class indices, shape ``(n,)``
        y_pred: predicted class indices, shape ``(n,)``
        n_classes: number of classes ``k``

    Returns:
        integer array of shape ``(k, k)``

    Examples:
        >>> confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], n_classes=3)
        array([[1, 0, 0],
               [0, 1, 1],
               [0, 0, 1]])

    """
    y_true = _check_labels(y_true, n_classes, "y_true")
    y_pred = _check_labels(y_pred, n_classes, "y_pred")
    if y_true.ndim != 1 or y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true and y_pred must be 1-D of equal length, got {y_true.shape} and {y_pred.shape}"
        )
    k = n_classes
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)


def confusion_matrices(y_true: ArrayLike, y_pred_stack: ArrayLike, *, n_classes: int) -> np.ndarray:
    r"""Confusion matrices for a stack of predictions, with one :func:`numpy.bincount`.

    Row ``m`` of ``y_pred_stack`` is scored against ``y_true`` (which may
    itself be a stack, broadcast against ``y_pred_stack``); each row gets an
    offset of ``m * k * k`` so that all matrices come out of a single bincount.

    Args:
        y_true: true class indices, shape ``(n,)`` or broadcastable to
            ``y_pred_stack`` (e.g. ``(m, n)`` for bootstrap resamples)
        y_pred_stack: predicted class indices, shape ``(..., n)``
        n_classes: number of classes ``k``

    Returns:
        integer array of shape ``(..., k, k)``

    Examples:
        >>> conf = confusion_matrices([0, 1, 1], [[0, 1, 1], [1, 1, 0]], n_classes=2)
        >>> conf.shape
        (2, 2, 2)
        >>> conf[1]
        array([[0, 1],
               [1, 1]])

    """
    y_true = _check_labels(y_true, n_classes, "y_true")
    y_pred = _check_labels(y_pred_stack, n_classes, "y_pred_stack")
    if y_pred.ndim < 1:
        raise ValueError("y_pred_stack must have at least one dimension")
    try:
        y_true, y_pred = np.broadcast_arrays(y_true, y_pred)
    except ValueError as err:
        raise ValueError(
            f"y_true {y_true.shape} does not broadcast against y_pred_stack {y_pred.shape}"
        ) from err
    k = n_classes
    lead = y_pred.shape[:-1]
    m = int(np.prod(lead, dtype=np.int64))
    codes = (y_true * k + y_pred).reshape(m, -1)
    codes = codes + (np.arange(m, dtype=np.int64) * (k * k))[:, None]
    counts = np.bincount(codes.ravel(), minlength=m * k * k)
    return counts.reshape(*lead, k, k)


# ---------------------------------------------------------------------------
# metrics from (stacks of) confusion matrices
# ---------------------------------------------------------------------------


def per_class_scores_from_confusion(conf: ArrayLike) -> dict[str, np.ndarray]:
    r"""Per-class precision, recall, F1 and support from confusion matrices.

    With :math:`TP_c = C_{cc}`, support :math:`S_c = \sum_j C_{cj}` and
    predicted count :math:`P_c = \sum_i C_{ic}`:

    .. math::

        \text{precision}_c = TP_c / P_c, \quad
        \text{recall}_c = TP_c / S_c, \quad
        F1_c = 2 TP_c / (S_c + P_c)

    each 0 where its denominator is 0 (scikit-learn's ``zero_division=0``).

    Args:
        conf: confusion matrices, shape ``(..., k, k)``, rows true classes

    Returns:
        dict with float arrays ``precision``, ``recall``, ``f1`` and integer
        array ``support``, each of shape ``(..., k)``

    Examples:
        >>> s = per_class_scores_from_confusion([[2, 0], [1, 1]])
        >>> s["precision"].round(4).tolist(), s["recall"].tolist(), s["support"].tolist()
        ([0.6667, 1.0], [1.0, 0.5], [2, 2])

    """
    tp, predicted, support = _counts(conf)
    return {
        "precision": _safe_div(tp, predicted),
        "recall": _safe_div(tp, support),
        "f1": _f1(tp, predicted, support),
        "support": support,
    }


def macro_f1_from_confusion(conf: ArrayLike) -> np.ndarray:
    r"""Macro-averaged F1 of confusion matrices, shape ``(..., k, k)`` -> ``(...)``.

    .. math::

        \text{macro-F1} = \frac{1}{k} \sum_{c=1}^{k} \frac{2 TP_c}{S_c + P_c}

    All ``k`` classes count, including classes absent from the data (F1 = 0).

    Examples:
        >>> macro_f1_from_confusion([[[2, 0], [1, 1]], [[2, 0], [0, 2]]]).round(4)
        array([0.7333, 1.    ])

    """
    return _macro_f1(*_counts(conf))


def ua_from_confusion(conf: ArrayLike) -> np.ndarray:
    r"""Unweighted accuracy (macro-averaged recall) of confusion matrices.

    .. math::

        UA = \frac{1}{k} \sum_{c=1}^{k} \frac{TP_c}{S_c}

    Absent classes (:math:`S_c = 0`) count with recall 0.

    Examples:
        >>> float(ua_from_confusion([[2, 0], [1, 1]]))
        0.75

    """
    return _ua(*_counts(conf))


def accuracy_from_confusion(conf: ArrayLike) -> np.ndarray:
    r"""Accuracy (weighted accuracy, WA, micro recall) of confusion matrices.

    .. math::

        WA = \frac{\sum_c C_{cc}}{\sum_{i,j} C_{ij}}

    Examples:
        >>> float(accuracy_from_confusion([[2, 0], [1, 1]]))
        0.75

    """
    return _accuracy(*_counts(conf))


def micro_f1_from_confusion(conf: ArrayLike) -> np.ndarray:
    r"""Micro-averaged F1 of confusion matrices.

    For single-label multi-class data with all classes counted, micro-averaged
    precision, recall and F1 all equal the accuracy:
    :math:`\text{micro-F1} = \sum_c TP_c / n`.

    Examples:
        >>> float(micro_f1_from_confusion([[2, 0], [1, 1]]))
        0.75

    """
    return accuracy_from_confusion(conf)


def weighted_f1_from_confusion(conf: ArrayLike) -> np.ndarray:
    r"""Support-weighted F1 of confusion matrices.

    .. math::

        \text{weighted-F1} = \sum_c \frac{S_c}{n} F1_c

    Examples:
        >>> round(float(weighted_f1_from_confusion([[2, 0], [1, 1]])), 4)
        0.7333

    """
    return _weighted_f1(*_counts(conf))


def categorical_summary_from_confusion(conf: ArrayLike) -> dict[str, np.ndarray]:
    """All categorical summary metrics of (stacks of) confusion matrices.

    Returns:
        dict with the keys of :data:`CATEGORICAL_METRICS` (``macro_f1``, ``micro_f1``,
        ``weighted_f1``, ``ua``, ``wa``), each of shape ``conf.shape[:-2]``

    Examples:
        >>> s = categorical_summary_from_confusion([[2, 0], [1, 1]])
        >>> {key: round(float(v), 4) for key, v in s.items()}
        {'macro_f1': 0.7333, 'micro_f1': 0.75, 'weighted_f1': 0.7333, 'ua': 0.75, 'wa': 0.75}

    """
    counts = _counts(conf)
    return {key: METRICS[key].of_counts(*counts) for key in CATEGORICAL_METRICS}


# ---------------------------------------------------------------------------
# metrics from labels
# ---------------------------------------------------------------------------


def per_class_scores(
    y_true: ArrayLike, y_pred: ArrayLike, *, n_classes: int
) -> dict[str, np.ndarray]:
    """Per-class precision, recall, F1 and support.

    See :func:`per_class_scores_from_confusion` for the formulas.

    Args:
        y_true: true class indices, shape ``(n,)``
        y_pred: predicted class indices, shape ``(n,)``
        n_classes: number of classes ``k``

    Returns:
        dict of arrays of shape ``(k,)``: ``precision``, ``recall``, ``f1``,
        ``support``

    Examples:
        >>> s = per_class_scores([0, 0, 1, 1], [0, 0, 0, 1], n_classes=3)
        >>> s["f1"].round(4).tolist(), s["support"].tolist()
        ([0.8, 0.6667, 0.0], [2, 2, 0])

    """
    return per_class_scores_from_confusion(confusion_matrix(y_true, y_pred, n_classes=n_classes))


def macro_f1(y_true: ArrayLike, y_pred: ArrayLike, *, n_classes: int) -> float:
    r"""Macro-averaged F1 score over all ``n_classes`` classes.

    .. math::

        \text{macro-F1} = \frac{1}{k} \sum_{c=1}^{k} \frac{2 TP_c}{2 TP_c + FP_c + FN_c}

    Classes absent from both ``y_true`` and ``y_pred`` contribute F1 = 0.
    Equals ``sklearn.metrics.f1_score(..., labels=range(k), average="macro",
    zero_division=0)``.

    Examples:
        >>> round(macro_f1([0, 0, 1, 1], [0, 0, 0, 1], n_classes=2), 4)
        0.7333

    """
    return float(macro_f1_from_confusion(confusion_matrix(y_true, y_pred, n_classes=n_classes)))


def micro_f1(y_true: ArrayLike, y_pred: ArrayLike, *, n_classes: int) -> float:
    r"""Micro-averaged F1 score (equals accuracy for single-label data).

    .. math::

        \text{micro-F1} = \frac{\sum_c TP_c}{\sum_c TP_c + \frac{1}{2}\sum_c (FP_c + FN_c)}
        = \frac{\sum_c TP_c}{n}

    Examples:
        >>> micro_f1([0, 0, 1, 1], [0, 0, 0, 1], n_classes=2)
        0.75

    """
    return float(micro_f1_from_confusion(confusion_matrix(y_true, y_pred, n_classes=n_classes)))


def weighted_f1(y_true: ArrayLike, y_pred: ArrayLike, *, n_classes: int) -> float:
    r"""Support-weighted average of per-class F1 scores.

    .. math::

        \text{weighted-F1} = \sum_c \frac{S_c}{n} F1_c

    Examples:
        >>> round(weighted_f1([0, 0, 0, 1], [0, 0, 1, 1], n_classes=2), 4)
        0.7667

    """
    return float(weighted_f1_from_confusion(confusion_matrix(y_true, y_pred, n_classes=n_classes)))


def unweighted_accuracy(y_true: ArrayLike, y_pred: ArrayLike, *, n_classes: int) -> float:
    r"""Unweighted accuracy (UA), i.e. macro-averaged recall over all classes.

    .. math::

        UA = \frac{1}{k} \sum_{c=1}^{k} \frac{TP_c}{S_c}

    Classes absent from ``y_true`` contribute recall 0 (they still count in
    the average over ``k`` classes).

    Examples:
        >>> unweighted_accuracy([0, 0, 0, 1], [0, 0, 1, 1], n_classes=2)
        0.8333333333333333

    """
    return float(ua_from_confusion(confusion_matrix(y_true, y_pred, n_classes=n_classes)))


def weighted_accuracy(y_true: ArrayLike, y_pred: ArrayLike, *, n_classes: int) -> float:
    r"""Weighted accuracy (WA), i.e. plain accuracy.

    .. math::

        WA = \frac{1}{n} \sum_n [y_n = \hat y_n]

    Examples:
        >>> weighted_accuracy([0, 0, 0, 1], [0, 0, 1, 1], n_classes=2)
        0.75

    """
    return float(accuracy_from_confusion(confusion_matrix(y_true, y_pred, n_classes=n_classes)))


def categorical_summary(
    y_true: ArrayLike, y_pred: ArrayLike, *, n_classes: int
) -> dict[str, float]:
    """Macro/micro/weighted F1, UA and WA in one pass over the data.

    Returns:
        dict with float values for ``macro_f1``, ``micro_f1``,
        ``weighted_f1``, ``ua``, ``wa``

    Examples:
        >>> s = categorical_summary([0, 0, 0, 1], [0, 0, 1, 1], n_classes=2)
        >>> {key: round(v, 4) for key, v in s.items()}
        {'macro_f1': 0.7333, 'micro_f1': 0.75, 'weighted_f1': 0.7667, 'ua': 0.8333, 'wa': 0.75}

    """
    conf = confusion_matrix(y_true, y_pred, n_classes=n_classes)
    return {key: float(v) for key, v in categorical_summary_from_confusion(conf).items()}


# ---------------------------------------------------------------------------
# concordance correlation coefficient
# ---------------------------------------------------------------------------


def _ccc_along(y_true: np.ndarray, y_pred: np.ndarray, axis: int) -> np.ndarray:
    """CCC of broadcastable arrays along ``axis`` (population moments)."""
    mean_t = y_true.mean(axis=axis, keepdims=True)
    mean_p = y_pred.mean(axis=axis, keepdims=True)
    dt = y_true - mean_t
    dp = y_pred - mean_p
    var_t = (dt * dt).mean(axis=axis)
    var_p = (dp * dp).mean(axis=axis)
    cov = (dt * dp).mean(axis=axis)
    diff = np.squeeze(mean_t - mean_p, axis=axis)
    den = var_t + var_p + diff * diff
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, 2.0 * cov / np.where(den > 0, den, 1.0), np.nan)


def ccc(y_true: ArrayLike, y_pred: ArrayLike) -> float | np.ndarray:
    r"""Concordance correlation coefficient (Lin, 1989), population form.

    .. math::

        \text{CCC} = \frac{2 \sigma_{tp}}{\sigma_t^2 + \sigma_p^2 + (\mu_t - \mu_p)^2}

    with biased (``ddof=0``) moments, as computed by audmetric and the
    MSP-Podcast baselines. Undefined (``nan``) when both inputs are constant
    and equal.

    Reference: L. I. Lin, "A concordance correlation coefficient to evaluate
    reproducibility", Biometrics 45(1), 1989.

    Shapes: ``y_true`` is ``(n,)`` or ``(n, a)`` (``a`` attributes, one CCC per
    column). ``y_pred`` has shape ``(..., *y_true.shape)``: any leading axes
    are a stack of candidate predictions, each scored against ``y_true``
    (e.g. ``(m, n)`` vs ``(n,)`` gives ``(m,)``).

    Returns:
        float for 1-D inputs, otherwise an array of shape
        ``y_pred.shape[:-y_true.ndim] + y_true.shape[1:]``

    Examples:
        >>> ccc([1, 2, 3, 4], [1, 2, 3, 4])
        1.0
        >>> ccc([1, 2, 3, 4], [2, 2, 3, 5])
        0.8333333333333334
        >>> ccc([1, 2, 3, 4], [[1, 2, 3, 4], [4, 3, 2, 1]])
        array([ 1., -1.])

    """
    t = np.asarray(y_true, dtype=float)
    p = np.asarray(y_pred, dtype=float)
    if t.ndim not in (1, 2):
        raise ValueError(f"y_true must be 1-D or 2-D, got shape {t.shape}")
    if p.ndim < t.ndim or p.shape[p.ndim - t.ndim :] != t.shape:
        raise ValueError(f"y_pred shape {p.shape} must end with y_true shape {t.shape}")
    if t.shape[0] == 0:
        raise ValueError("ccc needs at least one sample")
    return _scalar(_ccc_along(t, p, axis=-t.ndim))
