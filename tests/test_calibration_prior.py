"""Prior rebalancing: Bayes' rule by hand, its exact inverse, and EM prior estimation."""

import numpy as np
import pytest
from scipy.special import softmax

from sermm.calibration.prior import PriorCalibrator, check_prior, estimate_prior_em, rebalance
from sermm.errors import SermmError

P = np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]])
TRAIN = np.array([0.5, 0.25, 0.25])


def test_rebalance_to_uniform_by_hand():
    # weights (1/3)/train = [2/3, 4/3, 4/3]; row 1: [1/3, 2/5, 4/15] sums to 1;
    # row 2: [1/15, 12/15, 6/15] / (19/15)
    expected = np.array([[1 / 3, 2 / 5, 4 / 15], [1 / 19, 12 / 19, 6 / 19]])
    np.testing.assert_allclose(rebalance(P, TRAIN, np.full(3, 1 / 3)), expected, rtol=1e-14)


def test_rebalance_there_and_back_restores_the_input():
    rng = np.random.default_rng(0)
    Q = rng.dirichlet(np.ones(5), size=200)
    train, target = rng.dirichlet(np.ones(5)), rng.dirichlet(np.ones(5))
    np.testing.assert_allclose(rebalance(rebalance(Q, train, target), target, train), Q, rtol=1e-12)


def test_calibrator_uniform_matches_rebalance_and_records_priors():
    calibrator = PriorCalibrator(TRAIN * 4, "uniform").fit(P, classes=["a", "b", "c"])
    np.testing.assert_allclose(calibrator.train_prior_, TRAIN)  # normalised
    np.testing.assert_allclose(calibrator.transform(P), rebalance(P, TRAIN, np.full(3, 1 / 3)))
    np.testing.assert_allclose(calibrator.output_prior(None), np.full(3, 1 / 3))
    assert calibrator.to_dict()["params"]["target"] == "uniform"


def test_calibrator_given_target_and_its_inverse():
    target = np.array([0.2, 0.2, 0.6])
    forward = PriorCalibrator(TRAIN, target).fit(P)
    back = PriorCalibrator(target, TRAIN).fit(P)
    np.testing.assert_allclose(back.transform(forward.transform(P)), P, rtol=1e-12)


def synthetic(prior, n, rng, train_prior):
    """Exact posteriors under ``train_prior`` of 2-D Gaussian classes, labels drawn from ``prior``."""
    means = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
    y = rng.choice(len(prior), size=n, p=prior)
    x = means[y] + rng.normal(size=(n, 2))
    loglik = -0.5 * ((x[:, None, :] - means[None]) ** 2).sum(axis=2)
    return softmax(loglik + np.log(train_prior), axis=1), y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_em_recovers_a_shifted_prior(seed):
    rng = np.random.default_rng(seed)
    train = np.array([0.55, 0.25, 0.15, 0.05])
    test = np.array([0.1, 0.2, 0.3, 0.4])
    Q, _ = synthetic(test, 20000, rng, train)
    result = estimate_prior_em(Q, train, tol=1e-8, max_iter=5000)
    assert result.converged
    assert np.abs(result.prior - test).max() < 0.02
    # the plain mean of the unadapted posteriors is far off: EM is doing the work
    assert np.abs(Q.mean(axis=0) - test).max() > 0.05
    np.testing.assert_allclose(result.posteriors.mean(axis=0), result.prior, atol=1e-6)


def test_em_keeps_an_unchanged_prior():
    rng = np.random.default_rng(3)
    train = np.array([0.4, 0.3, 0.2, 0.1])
    Q, _ = synthetic(train, 20000, rng, train)
    assert np.abs(estimate_prior_em(Q, train).prior - train).max() < 0.02


def test_calibrator_estimate_records_the_em_prior():
    rng = np.random.default_rng(4)
    train = np.array([0.55, 0.25, 0.15, 0.05])
    Q, _ = synthetic(np.full(4, 0.25), 8000, rng, train)
    calibrator = PriorCalibrator(train, "estimate", tol=1e-8).fit(Q)
    result = estimate_prior_em(Q, train, tol=1e-8)
    np.testing.assert_array_equal(calibrator.target_prior_, result.prior)
    np.testing.assert_allclose(calibrator.transform(Q), result.posteriors)
    doc = calibrator.to_dict()
    assert doc["params"]["target"] == "estimate" and doc["state"]["converged"]
    assert doc["state"]["n_iter"] == result.n_iter
    assert np.abs(calibrator.target_prior_ - 0.25).max() < 0.03


def test_em_stops_at_max_iter():
    rng = np.random.default_rng(5)
    Q, _ = synthetic(np.full(4, 0.25), 2000, rng, np.full(4, 0.25))
    result = estimate_prior_em(Q, np.array([0.7, 0.1, 0.1, 0.1]), tol=0.0, max_iter=3)
    assert result.n_iter == 3 and not result.converged


@pytest.mark.parametrize(
    ("prior", "message"),
    [([0.5, 0.5], "expected 3"), ([0.5, -0.1, 0.6], "non-negative"), ([0.5, 0.0, 0.5], "positive")],
)
def test_bad_training_priors_are_refused(prior, message):
    with pytest.raises(SermmError, match=message):
        PriorCalibrator(np.array(prior), "uniform").fit(P)


def test_check_prior_normalises():
    np.testing.assert_allclose(check_prior(np.array([2.0, 6.0]), 2), [0.25, 0.75])


def test_a_zero_target_prior_removing_all_mass_is_an_error():
    with pytest.raises(SermmError, match="row 1"):
        rebalance(np.array([[1.0, 0.0]]), np.array([0.5, 0.5]), np.array([0.0, 1.0]))
