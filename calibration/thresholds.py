"""Per-class decision thresholds tuned for macro-F1 (the BSC-UPC decision rule).

Rule: go down each utterance's class ranking and predict the first class whose score
reaches its threshold; if none does, predict the argmax. All-zero thresholds reproduce
the argmax. Tuning is coordinate ascent on dev macro-F1, one class at a time, scoring
every candidate threshold of that class in one vectorised pass.
"""

from __future__ import annotations

import numpy as np

from sermm.calibration.base import Calibrator
from sermm.estimator import Interval, register, state_array
from sermm.metrics import confusion_matrices, confusion_matrix, macro_f1_from_confusion

#: Candidate predictions scored per bincount pass (rows x candidates), to bound memory.
_CHUNK = 4_000_000


def threshold_decisions(P: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Class indices under the rule: highest-ranked class with score >= its threshold, else argmax.

    >>> P = np.array([[0.5, 0.3, 0.2], [0.6, 0.1, 0.3], [0.4, 0.35, 0.25]])
    >>> threshold_decisions(P, np.array([0.55, 0.3, 0.2])).tolist()
    [1, 0, 1]
    """
    order = np.argsort(-P, axis=1, kind="stable")
    passes = np.take_along_axis(P, order, axis=1) >= thresholds[order]
    first = np.argmax(passes, axis=1)
    rows = np.arange(P.shape[0])
    return np.where(passes[rows, first], order[rows, first], order[:, 0])


def _outcomes(P: np.ndarray, thresholds: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's decision when class ``c`` passes its threshold and when it does not.

    With the other thresholds fixed, a class ranked above ``c`` that passes decides
    regardless of ``c``; otherwise ``c`` decides if it passes, else the next passing class
    below it (or the argmax when none passes).
    """
    k = P.shape[1]
    order = np.argsort(-P, axis=1, kind="stable")
    passes = np.take_along_axis(P, order, axis=1) >= thresholds[order]
    is_c = order == c
    rank_c = np.argmax(is_c, axis=1)
    ranks = np.arange(k)
    rows = np.arange(P.shape[0])
    above = passes & (ranks < rank_c[:, None])
    below = passes & (ranks > rank_c[:, None])
    first_above = np.argmax(above, axis=1)
    first_below = np.argmax(below, axis=1)
    fallback = np.where(below[rows, first_below], order[rows, first_below], order[:, 0])
    decided_above = above[rows, first_above]
    when_pass = np.where(decided_above, order[rows, first_above], c)
    when_fail = np.where(decided_above, order[rows, first_above], fallback)
    return when_pass, when_fail


def candidate_thresholds(scores: np.ndarray, max_candidates: int) -> np.ndarray:
    """Candidate thresholds of one class: 0 plus its unique scores, or that many quantiles of them."""
    values = np.unique(scores)
    if values.size > max_candidates - 1:
        q = np.linspace(0.0, 1.0, max_candidates - 1)
        values = np.unique(np.quantile(scores, q, method="inverted_cdf"))
    return np.unique(np.concatenate([[0.0], values]))


def _macro_f1_for_candidates(
    y: np.ndarray, score: np.ndarray, when_pass: np.ndarray, when_fail: np.ndarray,
    candidates: np.ndarray, k: int,
) -> np.ndarray:
    """Macro-F1 for every candidate threshold of one class (rows whose decision can change only)."""
    changes = when_pass != when_fail
    fixed = confusion_matrix(y[~changes], when_pass[~changes], n_classes=k)
    y_c, s_c, p_c, f_c = y[changes], score[changes], when_pass[changes], when_fail[changes]
    out = np.empty(candidates.size)
    step = max(1, _CHUNK // max(1, y_c.size))
    for start in range(0, candidates.size, step):
        cand = candidates[start : start + step]
        preds = np.where(s_c[None, :] >= cand[:, None], p_c[None, :], f_c[None, :])
        conf = confusion_matrices(y_c, preds, n_classes=k) + fixed
        out[start : start + step] = macro_f1_from_confusion(conf)
    return out


@register
class ThresholdCalibrator(Calibrator):
    """Per-class thresholds maximising dev macro-F1; decisions by the BSC-UPC ranking rule.

    A decision step: ``predict`` gives the decisions, ``transform`` passes posteriors through.
    """

    method = "thresholds"
    decides = True
    keeps_prior = True
    _parameter_constraints = {
        "max_candidates": [Interval(int, 2, None)],
        "max_sweeps": [Interval(int, 1, None)],
    }

    def __init__(self, *, max_candidates: int = 200, max_sweeps: int = 10) -> None:
        self.max_candidates = max_candidates
        self.max_sweeps = max_sweeps

    def fit(self, P, y=None, *, classes=None) -> ThresholdCalibrator:
        """Coordinate ascent from all-zero thresholds (= argmax); a move must raise dev macro-F1."""
        P, y = self._start_fit(P, y, classes, need_labels=True)
        k = P.shape[1]
        thresholds = np.zeros(k)
        best = float(macro_f1_from_confusion(confusion_matrix(y, P.argmax(axis=1), n_classes=k)))
        self.dev_macro_f1_argmax_ = best
        candidates = [candidate_thresholds(P[:, c], self.max_candidates) for c in range(k)]
        self.n_sweeps_ = 0
        for _ in range(self.max_sweeps):
            self.n_sweeps_ += 1
            improved = False
            for c in range(k):
                when_pass, when_fail = _outcomes(P, thresholds, c)
                f1 = _macro_f1_for_candidates(y, P[:, c], when_pass, when_fail, candidates[c], k)
                j = int(np.argmax(f1))
                if f1[j] > best + 1e-12:
                    best, thresholds[c], improved = float(f1[j]), candidates[c][j], True
            if not improved:
                break
        self.thresholds_ = thresholds
        self.dev_macro_f1_ = best
        self.prior_ = None
        return self

    def transform(self, P: np.ndarray) -> np.ndarray:
        """Thresholds change decisions, not posteriors: ``P`` unchanged."""
        return self._checked(P)

    def predict(self, P: np.ndarray) -> np.ndarray:
        """Class indices by the threshold rule."""
        return threshold_decisions(self._checked(P), self.thresholds_)

    def _state(self) -> dict:
        return {
            "thresholds": self.thresholds_,
            "n_sweeps": int(self.n_sweeps_),
            "dev_macro_f1_argmax": float(self.dev_macro_f1_argmax_),
            "dev_macro_f1": float(self.dev_macro_f1_),
        }

    def _set_state(self, state: dict) -> None:
        self.thresholds_ = state_array(state, "thresholds", (len(self.columns_),))
        self.n_sweeps_ = int(state["n_sweeps"])
        self.dev_macro_f1_argmax_ = float(state["dev_macro_f1_argmax"])
        self.dev_macro_f1_ = float(state["dev_macro_f1"])
