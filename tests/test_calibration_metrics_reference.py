"""sermm.calibration_metrics against numbers computed once with psrcal 1.0.0 and expected-cost 1.0.

The constants were computed (torch 2.13.0 CPU, in a separate virtualenv, not a test
dependency) on the fixed arrays below with:

    lp = torch.tensor(np.log(P)); t = torch.tensor(Y)
    psrcal.losses.LogLoss(lp, t, norm=False), LogLoss(lp, t, norm=True), ECE(lp, t),
    Brier(lp, t, norm=False)
    expected_cost.ec.average_cost_for_bayes_decisions(Y, np.log(P)[, costs=CostMatrix(C)]
                                                      [, adjusted=True])
    expected_cost.ec.average_cost(Y, (P @ C).argmin(1), CostMatrix(C), PRIOR[:, None]
                                  [, adjusted=True])
"""

import numpy as np
import pytest

from sermm.calibration_metrics import (
    brier_score,
    cross_entropy,
    ece,
    expected_cost,
    normalized_cross_entropy,
    normalized_expected_cost,
)

P = np.array([
    [0.70, 0.20, 0.10], [0.10, 0.80, 0.10], [0.25, 0.25, 0.50], [0.60, 0.30, 0.10],
    [0.05, 0.15, 0.80], [0.40, 0.45, 0.15], [0.90, 0.05, 0.05], [0.30, 0.30, 0.40],
    [0.20, 0.70, 0.10], [0.55, 0.05, 0.40], [0.10, 0.30, 0.60], [0.35, 0.50, 0.15],
])
Y = np.array([0, 1, 2, 1, 2, 0, 0, 2, 1, 2, 0, 1])
COST = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 1.0], [4.0, 1.0, 0.0]])
PRIOR = np.array([0.5, 0.3, 0.2])

# psrcal 1.0.0
PSRCAL_LOGLOSS = 0.7422268300188373
PSRCAL_LOGLOSS_NORM = 0.6756040368499385
PSRCAL_ECE_PERCENT = 40.833333333333336
PSRCAL_BRIER = 0.14166666666666666  # mean over samples AND classes
# expected-cost 1.0
EC_AVERAGE_COST_01 = 0.3333333333333333
EC_AVERAGE_COST_01_ADJUSTED = 0.5
EC_AVERAGE_COST = 0.5833333333333333
EC_AVERAGE_COST_PRIOR = 0.6000000000000001
EC_AVERAGE_COST_PRIOR_ADJUSTED = 0.8571428571428573


def test_cross_entropy_matches_psrcal_logloss():
    assert cross_entropy(P, Y) == pytest.approx(PSRCAL_LOGLOSS, rel=1e-12)


def test_normalized_cross_entropy_matches_psrcal_normalised_logloss():
    # psrcal computes the data prior of the normaliser in float32 (bincount / float)
    assert normalized_cross_entropy(P, Y) == pytest.approx(PSRCAL_LOGLOSS_NORM, rel=1e-6)


def test_ece_matches_psrcal_ece():
    assert 100 * ece(P, Y) == pytest.approx(PSRCAL_ECE_PERCENT, rel=1e-12)


def test_brier_matches_psrcal_brier_up_to_the_class_average():
    assert brier_score(P, Y) / P.shape[1] == pytest.approx(PSRCAL_BRIER, rel=1e-12)


def test_expected_cost_matches_average_cost_zero_one():
    assert expected_cost(P, Y) == pytest.approx(EC_AVERAGE_COST_01, rel=1e-12)
    assert normalized_expected_cost(P, Y) == pytest.approx(EC_AVERAGE_COST_01_ADJUSTED, rel=1e-12)


def test_expected_cost_matches_average_cost_with_costs_and_prior():
    assert expected_cost(P, Y, cost=COST) == pytest.approx(EC_AVERAGE_COST, rel=1e-12)
    assert expected_cost(P, Y, cost=COST, prior=PRIOR) == pytest.approx(EC_AVERAGE_COST_PRIOR, rel=1e-12)
    assert normalized_expected_cost(P, Y, cost=COST, prior=PRIOR) == pytest.approx(
        EC_AVERAGE_COST_PRIOR_ADJUSTED, rel=1e-12
    )
