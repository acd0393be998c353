"""Per-class thresholds: the BSC-UPC decision rule, vectorised tuning, never below argmax on dev."""

import numpy as np
import pytest
from scipy.special import softmax
from sklearn.metrics import f1_score

from sermm.calibration.thresholds import (
    ThresholdCalibrator,
    _outcomes,
    candidate_thresholds,
    threshold_decisions,
)


def macro_f1(y, pred, k):
    return f1_score(y, pred, labels=list(range(k)), average="macro", zero_division=0)


def test_decision_rule_on_a_hand_built_example():
    P = np.array([
        [0.50, 0.30, 0.20],  # 0 misses 0.55; 1 passes 0.30 -> 1
        [0.60, 0.10, 0.30],  # 0 passes -> 0
        [0.40, 0.35, 0.25],  # 0 misses; 1 passes -> 1
        [0.45, 0.25, 0.30],  # 0 misses; 2 (ranked second) passes 0.30 -> 2
        [0.50, 0.28, 0.22],  # nobody passes -> argmax 0
    ])
    thresholds = np.array([0.55, 0.30, 0.30])
    assert threshold_decisions(P, thresholds).tolist() == [1, 0, 1, 2, 0]


def test_ranking_not_class_order_decides():
    # class 2 outranks class 1 here, and both pass: the higher-ranked one wins
    P = np.array([[0.40, 0.25, 0.35]])
    assert threshold_decisions(P, np.array([0.9, 0.2, 0.2])).tolist() == [2]


def test_zero_thresholds_reproduce_argmax():
    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.ones(6), size=500)
    np.testing.assert_array_equal(threshold_decisions(P, np.zeros(6)), P.argmax(axis=1))


def test_outcomes_agree_with_the_rule_for_every_threshold_of_a_class():
    rng = np.random.default_rng(1)
    P = rng.dirichlet(np.ones(5) * 0.7, size=300)
    thresholds = rng.uniform(0, 0.5, size=5)
    for c in range(5):
        when_pass, when_fail = _outcomes(P, thresholds, c)
        for t in (0.0, 0.1, 0.25, 0.4, 0.9):
            moved = thresholds.copy()
            moved[c] = t
            expected = threshold_decisions(P, moved)
            np.testing.assert_array_equal(np.where(P[:, c] >= t, when_pass, when_fail), expected)


def overconfident_imbalanced(seed, n=600, k=5):
    rng = np.random.default_rng(seed)
    y = rng.choice(k, size=n, p=np.array([0.5, 0.2, 0.15, 0.1, 0.05]))
    logits = rng.normal(size=(n, k)) * 2.0
    logits[np.arange(n), y] += rng.uniform(0.0, 2.5, size=n)
    logits += np.log([0.5, 0.2, 0.15, 0.1, 0.05]) * 2
    return softmax(logits, axis=1), y


@pytest.mark.parametrize("seed", range(8))
def test_thresholds_never_lower_dev_macro_f1(seed):
    P, y = overconfident_imbalanced(seed)
    calibrator = ThresholdCalibrator().fit(P, y)
    k = P.shape[1]
    argmax_f1 = macro_f1(y, P.argmax(axis=1), k)
    tuned_f1 = macro_f1(y, calibrator.predict(P), k)
    assert tuned_f1 >= argmax_f1
    assert calibrator.dev_macro_f1_ == pytest.approx(tuned_f1, abs=1e-12)
    assert calibrator.dev_macro_f1_argmax_ == pytest.approx(argmax_f1, abs=1e-12)


def test_thresholds_help_rare_classes_of_a_prior_skewed_system():
    P, y = overconfident_imbalanced(0, n=3000)
    calibrator = ThresholdCalibrator().fit(P, y)
    assert calibrator.dev_macro_f1_ > calibrator.dev_macro_f1_argmax_ + 0.02
    assert calibrator.n_sweeps_ >= 2  # the last sweep found nothing more


def test_no_threshold_moves_when_argmax_is_already_perfect():
    P = np.array([[0.8, 0.2], [0.3, 0.7], [0.9, 0.1], [0.4, 0.6]])
    calibrator = ThresholdCalibrator().fit(P, np.array([0, 1, 0, 1]))
    np.testing.assert_array_equal(calibrator.thresholds_, [0.0, 0.0])
    assert calibrator.n_sweeps_ == 1


def test_candidates_are_capped_and_include_zero():
    scores = np.random.default_rng(2).uniform(size=5000)
    candidates = candidate_thresholds(scores, 50)
    assert candidates[0] == 0.0 and 2 <= candidates.size <= 50
    assert np.isin(candidates[1:], scores).all()  # actual scores, so >= keeps that row
    small = candidate_thresholds(np.array([0.3, 0.1, 0.3]), 200)
    np.testing.assert_array_equal(small, [0.0, 0.1, 0.3])


def test_transform_leaves_posteriors_alone():
    P, y = overconfident_imbalanced(1)
    calibrator = ThresholdCalibrator().fit(P, y)
    np.testing.assert_array_equal(calibrator.transform(P), P)
    assert calibrator.decides
