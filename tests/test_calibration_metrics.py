import math

import numpy as np
import pytest
import sklearn.metrics

from sermm import calibration_metrics as cm

# 4 samples x 3 classes, used for all hand-computed values below
P = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.1, 0.6, 0.3],
        [0.2, 0.3, 0.5],
        [0.5, 0.4, 0.1],
    ]
)
Y = np.array([0, 1, 2, 1])
# argmax decisions: 0, 1, 2, 0 -> only the last sample is wrong
# empirical prior: [1/4, 1/2, 1/4]


def _random_posteriors(seed, n, k):
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.full(k, 0.7), size=n)
    y = rng.integers(0, k, size=n)
    return P, y


def test_cross_entropy_hand_computed():
    # p_true = 0.7, 0.6, 0.5, 0.4
    expected = -math.log(0.7 * 0.6 * 0.5 * 0.4) / 4
    assert cm.cross_entropy(P, Y) == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize("seed, n, k", [(0, 10, 2), (1, 100, 4), (2, 1000, 7)])
def test_cross_entropy_matches_sklearn(seed, n, k):
    P_, y = _random_posteriors(seed, n, k)
    expected = sklearn.metrics.log_loss(y, P_, labels=np.arange(k))
    assert cm.cross_entropy(P_, y) == pytest.approx(expected, rel=1e-12)


def test_cross_entropy_zero_probability_is_finite():
    value = cm.cross_entropy([[1.0, 0.0], [0.5, 0.5]], [1, 0])
    assert math.isfinite(value)
    assert value > 300


@pytest.mark.parametrize(
    "prior, entropy",
    [
        (None, 1.5 * math.log(2)),  # empirical [1/4, 1/2, 1/4]
        ([1 / 3, 1 / 3, 1 / 3], math.log(3)),
        ([0.5, 0.5, 0.0], math.log(2)),
    ],
)
def test_normalized_cross_entropy_hand_computed(prior, entropy):
    ce = -math.log(0.084) / 4
    assert cm.normalized_cross_entropy(P, Y, prior=prior) == pytest.approx(ce / entropy)


def test_normalized_cross_entropy_of_prior_is_one():
    _, y = _random_posteriors(3, 200, 5)
    prior = np.bincount(y, minlength=5) / len(y)
    assert cm.normalized_cross_entropy(np.tile(prior, (200, 1)), y) == pytest.approx(1.0)
    uniform = np.full((200, 5), 0.2)
    assert cm.normalized_cross_entropy(uniform, y, prior=np.full(5, 0.2)) == pytest.approx(1.0)


def test_normalized_cross_entropy_degenerate_prior():
    with pytest.raises(ValueError):
        cm.normalized_cross_entropy([[0.6, 0.4], [0.7, 0.3]], [0, 0])


def test_brier_score_hand_computed():
    # (0.3^2 + 0.2^2 + 0.1^2) + (0.1^2 + 0.4^2 + 0.3^2)
    # + (0.2^2 + 0.3^2 + 0.5^2) + (0.5^2 + 0.6^2 + 0.1^2)
    # = 0.14 + 0.26 + 0.38 + 0.62 = 1.40
    assert cm.brier_score(P, Y) == pytest.approx(1.40 / 4, rel=1e-14)


@pytest.mark.parametrize("seed, n, k", [(0, 10, 2), (1, 100, 4), (2, 1000, 7)])
def test_brier_score_matches_direct_formula(seed, n, k):
    P_, y = _random_posteriors(seed, n, k)
    # sum_k (p_k - onehot_k)^2 = 1 - 2 p_true + sum_k p_k^2
    direct = np.mean(1 - 2 * P_[np.arange(n), y] + (P_**2).sum(axis=1))
    assert cm.brier_score(P_, y) == pytest.approx(direct, rel=1e-12)
    expected = sklearn.metrics.brier_score_loss(y, P_, labels=np.arange(k), scale_by_half=False)
    assert cm.brier_score(P_, y) == pytest.approx(expected, rel=1e-12)


def _ece_loop(P_, y, n_bins):
    """Straightforward reference (Guo et al., 2017): bins (lo, hi], first bin includes 0."""
    conf = P_.max(axis=1)
    correct = P_.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    total = 0.0
    for b in range(n_bins):
        lo, hi = edges[b], edges[b + 1]
        in_bin = (conf > lo) & (conf <= hi)
        if b == 0:
            in_bin |= conf == 0.0
        if in_bin.any():
            total += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return total


@pytest.mark.parametrize("n_bins", [1, 2, 10])
def test_ece_hand_computed(n_bins):
    # confidences 0.7 (right), 0.6 (right), 0.5 (right), 0.5 (wrong)
    # 10 bins: (0.6, 0.7]: |1 - 0.7|; (0.5, 0.6]: |1 - 0.6|; (0.4, 0.5]: |0.5 - 0.5| = 0
    # -> (0.3 + 0.4) / 4; with 1 or 2 bins the gaps have the same sign, same value
    assert cm.ece(P, Y, n_bins=n_bins) == pytest.approx(0.175, abs=1e-12)


def test_ece_hand_computed_cancellation():
    # one bin: |acc - conf| = |2/4 - (0.9 + 0.8 + 0.6 + 0.7)/4| = |0.5 - 0.75| = 0.25
    # two bins (0.5, 1] only: same; 10 bins: 0.9 wrong, 0.8 right, 0.6 wrong, 0.7 right
    # -> (0.9 + 0.2 + 0.6 + 0.3) / 4 = 0.5
    P_ = [[0.9, 0.1], [0.8, 0.2], [0.4, 0.6], [0.3, 0.7]]
    y = [1, 0, 0, 1]
    assert cm.ece(P_, y, n_bins=1) == pytest.approx(0.25)
    assert cm.ece(P_, y, n_bins=10) == pytest.approx(0.5)


@pytest.mark.parametrize("n_bins", [1, 5, 10, 15, 20])
@pytest.mark.parametrize("seed, n, k", [(0, 50, 2), (1, 500, 4), (2, 2000, 6)])
def test_ece_matches_loop_reference(n_bins, seed, n, k):
    P_, y = _random_posteriors(seed, n, k)
    assert cm.ece(P_, y, n_bins=n_bins) == pytest.approx(_ece_loop(P_, y, n_bins), abs=1e-12)


def test_ece_confidence_on_edge_goes_to_lower_bin():
    # 2 bins (0, 0.5], (0.5, 1]: conf 0.5 right (gap +0.5), conf 0.9 wrong (gap -0.9)
    # -> (0.5 + 0.9) / 2 = 0.7; putting 0.5 in the upper bin would give |0.5 - 0.9| / 2 = 0.2
    assert cm.ece([[0.5, 0.5], [0.9, 0.1]], [0, 1], n_bins=2) == pytest.approx(0.7)


def test_ece_confidences_on_bin_edges():
    # quantised confidences hit the edges of 4 / 10 / 20 bins exactly; the top class is
    # always class 0, right for confidences 0.5 and 0.75, mostly wrong otherwise, so that
    # neighbouring bins have gaps of opposite sign and misbinning changes the value
    rng = np.random.default_rng(5)
    top = rng.choice([0.5, 0.6, 0.75, 0.8, 1.0], size=300)
    P_ = np.stack([top, 1 - top], axis=1)
    y = np.where(np.isin(top, [0.5, 0.75]), 0, (rng.random(300) < 0.9).astype(int))
    for n_bins in (4, 10, 20):
        assert cm.ece(P_, y, n_bins=n_bins) == pytest.approx(_ece_loop(P_, y, n_bins), abs=1e-12)


def test_expected_cost_hand_computed_01():
    # argmax decisions 0, 1, 2, 0 vs Y = 0, 1, 2, 1 -> one error in four
    assert cm.expected_cost(P, Y) == pytest.approx(0.25)
    # uniform prior: class costs 0, 1/2, 0 -> (1/2) / 3
    assert cm.expected_cost(P, Y, prior=[1 / 3, 1 / 3, 1 / 3]) == pytest.approx(1 / 6)
    # naive cost with empirical prior: 1 - max(prior) = 1/2
    assert cm.normalized_expected_cost(P, Y) == pytest.approx(0.5)
    # naive cost with uniform prior: 2/3
    assert cm.normalized_expected_cost(P, Y, prior=[1 / 3, 1 / 3, 1 / 3]) == pytest.approx(0.25)


def test_expected_cost_hand_computed_custom_cost():
    # missing class 2 costs 10: expected costs P @ C per row
    # row 0: [0.2 + 1.0, 0.7 + 1.0, 0.7 + 0.2] = [1.2, 1.7, 0.9] -> decide 2
    # row 1: [0.6 + 3.0, 0.1 + 3.0, 0.1 + 0.6] = [3.6, 3.1, 0.7] -> decide 2
    # row 2: [0.3 + 5.0, 0.2 + 5.0, 0.2 + 0.3] = [5.3, 5.2, 0.5] -> decide 2
    # row 3: [0.4 + 1.0, 0.5 + 1.0, 0.5 + 0.4] = [1.4, 1.5, 0.9] -> decide 2
    # costs C[y, 2] = 1, 1, 0, 1 -> 3/4
    C = np.array([[0, 1, 1], [1, 0, 1], [10, 10, 0]])
    assert cm.expected_cost(P, Y, cost=C) == pytest.approx(0.75)
    # naive: prior @ C = [0.5 + 2.5, 0.25 + 2.5, 0.25 + 0.5] -> min 0.75
    assert cm.normalized_expected_cost(P, Y, cost=C) == pytest.approx(1.0)


def test_expected_cost_with_abstention_column():
    # 3 classes, 4 decisions (last = abstain at cost 0.35 whatever the class)
    # risk of deciding the top class: 1 - p_max = 0.3, 0.4, 0.5, 0.5
    # -> row 0 decides class 0 (cost 0), rows 1-3 abstain (cost 0.35 each)
    C = np.hstack([1 - np.eye(3), np.full((3, 1), 0.35)])
    assert cm.expected_cost(P, Y, cost=C) == pytest.approx(3 * 0.35 / 4)


def _expected_cost_loop(P_, y, C, prior):
    n, k = P_.shape
    costs = []
    for i in range(n):
        risks = [sum(P_[i, c] * C[c, j] for c in range(k)) for j in range(C.shape[1])]
        costs.append(C[y[i], int(np.argmin(risks))])
    costs = np.array(costs)
    if prior is None:
        return costs.mean()
    return sum(prior[c] * costs[y == c].mean() for c in range(k) if prior[c] > 0)


@pytest.mark.parametrize("with_prior", [False, True])
@pytest.mark.parametrize("seed, n, k", [(0, 50, 2), (1, 300, 4), (2, 1000, 5)])
def test_expected_cost_matches_loop_reference(seed, n, k, with_prior):
    P_, y = _random_posteriors(seed, n, k)
    rng = np.random.default_rng(seed + 100)
    C = rng.uniform(0.5, 3.0, size=(k, k))
    np.fill_diagonal(C, 0.0)
    prior = rng.dirichlet(np.ones(k)) if with_prior else None
    expected = _expected_cost_loop(P_, y, C, prior)
    assert cm.expected_cost(P_, y, cost=C, prior=prior) == pytest.approx(expected, rel=1e-12)
    pi = prior if with_prior else np.bincount(y, minlength=k) / n
    naive = min(sum(pi[c] * C[c, j] for c in range(k)) for j in range(k))
    assert cm.normalized_expected_cost(P_, y, cost=C, prior=prior) == pytest.approx(
        expected / naive, rel=1e-12
    )


def test_expected_cost_prior_on_absent_class():
    with pytest.raises(ValueError):
        cm.expected_cost(P, [0, 1, 1, 1], prior=[0.2, 0.3, 0.5])


@pytest.mark.parametrize(
    "func",
    [cm.cross_entropy, cm.brier_score, cm.ece, cm.expected_cost, cm.normalized_expected_cost],
)
def test_input_validation(func):
    with pytest.raises(ValueError):
        func(P, [0, 1, 3, 1])  # label out of range
    with pytest.raises(ValueError):
        func(P, [0, 1, 2])  # wrong length
    with pytest.raises(ValueError):
        func(P[0], [0])  # not 2-D
