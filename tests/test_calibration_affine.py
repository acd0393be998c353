"""Affine, temperature, prior-weighted and matrix calibration against direct minimisations."""

import numpy as np
import pytest
from scipy.optimize import minimize, minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.linear_model import LogisticRegression

from sermm.calibration.affine import AffineCalibrator, TemperatureCalibrator
from sermm.calibration_metrics import cross_entropy
from sermm.errors import SermmError
from sermm.logistic import class_weights

K = 4


def overconfident(seed=0, n=800, shift=True):
    """Posteriors sharpened by 2.5 and biased towards class 0: miscalibrated on purpose."""
    rng = np.random.default_rng(seed)
    y = rng.choice(K, size=n, p=[0.4, 0.3, 0.2, 0.1])
    logits = rng.normal(size=(n, K))
    logits[np.arange(n), y] += 1.5
    if shift:
        logits[:, 0] += 0.7
    return softmax(2.5 * logits, axis=1), y


def weighted_log_loss(z, y, w):
    return -np.mean(w * log_softmax(z, axis=1)[np.arange(len(y)), y])


def reference_fit(P, y, w, make_logits, x0):
    """Derivative-free-gradient reference: BFGS with finite differences on the plain loss."""
    L = np.log(P)
    result = minimize(lambda t: weighted_log_loss(make_logits(t, L), y, w), x0, method="BFGS",
                      options={"gtol": 1e-9})
    return result.x, result.fun


def test_affine_reaches_the_direct_scipy_optimum():
    P, y = overconfident()
    calibrator = AffineCalibrator().fit(P, y)
    x, fun = reference_fit(P, y, np.ones(len(y)), lambda t, L: t[0] * L + t[1:],
                           np.concatenate([[1.0], np.zeros(K)]))
    assert calibrator.loss_ == pytest.approx(fun, rel=1e-7)
    assert calibrator.scale_[0] == pytest.approx(x[0], rel=1e-4)
    np.testing.assert_allclose(calibrator.bias_, x[1:] - x[1:].mean(), atol=1e-4)
    assert cross_entropy(calibrator.transform(P), y) == pytest.approx(fun, rel=1e-9)
    assert calibrator.scale_[0] < 0.7  # it undid much of the 2.5x sharpening
    np.testing.assert_allclose(calibrator.prior_, np.bincount(y, minlength=K) / len(y))


def test_temperature_reaches_the_direct_scalar_optimum():
    P, y = overconfident(1, shift=False)
    calibrator = TemperatureCalibrator().fit(P, y)
    L = np.log(P)
    ref = minimize_scalar(lambda a: weighted_log_loss(a * L, y, 1.0), bounds=(0.01, 5), method="bounded",
                          options={"xatol": 1e-10})
    assert calibrator.scale_[0] == pytest.approx(ref.x, rel=1e-5)
    assert calibrator.loss_ == pytest.approx(ref.fun, rel=1e-9)
    np.testing.assert_array_equal(calibrator.bias_, np.zeros(K))
    assert calibrator.output_prior(np.full(K, 0.25)).tolist() == [0.25] * K


def test_prior_weighted_affine_reaches_the_direct_weighted_optimum():
    P, y = overconfident(2)
    target = np.array([0.25, 0.25, 0.25, 0.25])
    calibrator = AffineCalibrator(prior="uniform").fit(P, y)
    w = class_weights(y, K, target)
    # each class weighs its prior in total (psrcal's priors=)
    np.testing.assert_allclose(np.bincount(y, weights=w, minlength=K) / len(y), target)
    x, fun = reference_fit(P, y, w, lambda t, L: t[0] * L + t[1:], np.concatenate([[1.0], np.zeros(K)]))
    assert calibrator.loss_ == pytest.approx(fun, rel=1e-7)
    assert calibrator.scale_[0] == pytest.approx(x[0], rel=1e-4)
    np.testing.assert_allclose(calibrator.bias_, x[1:] - x[1:].mean(), atol=1e-4)
    np.testing.assert_allclose(calibrator.prior_, target)
    # under a uniform prior the rare class gets more mass than under the dev prior
    plain = AffineCalibrator().fit(P, y)
    assert calibrator.transform(P)[:, 3].mean() > plain.transform(P)[:, 3].mean()


def test_prior_weighted_with_the_dev_prior_is_the_plain_fit():
    P, y = overconfident(3)
    dev_prior = np.bincount(y, minlength=K) / len(y)
    weighted = AffineCalibrator(prior=dev_prior).fit(P, y)
    plain = AffineCalibrator().fit(P, y)
    np.testing.assert_allclose(weighted.transform(P), plain.transform(P), atol=1e-6)


def test_matrix_scaling_without_penalty_matches_unpenalised_logistic_regression():
    P, y = overconfident(4, n=1500)
    calibrator = AffineCalibrator(scale="matrix").fit(P, y)
    reference = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10000).fit(np.log(P), y)
    ref_P = reference.predict_proba(np.log(P))
    assert calibrator.loss_ == pytest.approx(cross_entropy(ref_P, y), rel=1e-6)
    np.testing.assert_allclose(calibrator.transform(P), ref_P, atol=2e-4)
    assert calibrator.scale_.shape == (K, K)


def test_matrix_scaling_with_l2_reaches_the_direct_optimum():
    P, y = overconfident(5)
    l2 = 0.01
    calibrator = AffineCalibrator(scale="matrix", l2=l2).fit(P, y)
    L = np.log(P)

    def objective(t):
        W, b = t[: K * K].reshape(K, K), t[K * K :]
        return weighted_log_loss(L @ W.T + b, y, 1.0) + l2 * np.sum((W - np.eye(K)) ** 2)

    ref = minimize(objective, np.concatenate([np.eye(K).ravel(), np.zeros(K)]), method="BFGS",
                   options={"gtol": 1e-9})
    assert calibrator.loss_ == pytest.approx(ref.fun, rel=1e-7)
    np.testing.assert_allclose(calibrator.scale_, ref.x[: K * K].reshape(K, K), atol=1e-3)
    # the penalty keeps the matrix nearer the identity than the unpenalised fit
    free = AffineCalibrator(scale="matrix").fit(P, y)
    assert np.sum((calibrator.scale_ - np.eye(K)) ** 2) < np.sum((free.scale_ - np.eye(K)) ** 2)


def test_vector_scaling_reaches_the_direct_optimum():
    P, y = overconfident(6)
    calibrator = AffineCalibrator(scale="vector").fit(P, y)
    x, fun = reference_fit(P, y, np.ones(len(y)), lambda t, L: L * t[:K] + t[K:],
                           np.concatenate([np.ones(K), np.zeros(K)]))
    assert calibrator.loss_ == pytest.approx(fun, rel=1e-7)
    np.testing.assert_allclose(calibrator.scale_, x[:K], rtol=1e-3)


def test_well_calibrated_posteriors_are_left_nearly_alone():
    rng = np.random.default_rng(7)
    n = 20000
    logits = rng.normal(size=(n, K)) * 1.5
    P = softmax(logits, axis=1)
    y = (rng.uniform(size=(n, 1)) > np.cumsum(P, axis=1)).sum(axis=1)  # y ~ P, row by row
    calibrator = AffineCalibrator().fit(P, y)
    assert calibrator.scale_[0] == pytest.approx(1.0, abs=0.05)
    assert np.abs(calibrator.bias_).max() < 0.05


def test_exact_zero_probabilities_stay_finite():
    P = np.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.2, 0.8], [1.0, 0.0]])
    y = np.array([0, 1, 0, 1, 1])
    Q = AffineCalibrator().fit(P, y).transform(P)
    assert np.all(np.isfinite(Q)) and np.allclose(Q.sum(axis=1), 1.0)


def test_a_prior_for_a_class_without_samples_is_refused():
    P, y = overconfident(8)
    y[y == 3] = 0
    with pytest.raises(SermmError, match="no labelled samples"):
        AffineCalibrator(prior="uniform").fit(P, y)


def test_fitting_needs_labels():
    with pytest.raises(SermmError, match="labels are needed"):
        AffineCalibrator().fit(np.full((3, 2), 0.5))
