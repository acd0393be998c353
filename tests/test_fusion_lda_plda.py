"""Embedding fusion: LDA as a generalised eigenproblem, two-covariance PLDA on synthetic Gaussian classes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import eigh
from scipy.stats import multivariate_normal

from sermm.errors import SermmError
from sermm.fusion.lda_plda import (
    LDAFuser,
    PLDAFuser,
    apply_norm,
    class_means,
    fit_norm,
    fit_plda,
    lda_directions,
    parse_prior,
    plda_log_likelihoods,
)


def gaussian_classes(
    seed: int, n_per: int, means: np.ndarray, W: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    k, d = means.shape
    y = np.repeat(np.arange(k), n_per)
    X = means[y] + rng.multivariate_normal(np.zeros(d), W, size=len(y))
    return X, y


def scatter(Z: np.ndarray, y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    means, counts = class_means(Z, y, k)
    between = means - Z.mean(axis=0)
    within = Z - means[y]
    return (between.T * counts) @ between / len(Z), within.T @ within / len(Z)


def test_lda_solves_the_generalised_eigenproblem():
    rng = np.random.default_rng(0)
    k, d = 4, 10
    X, y = gaussian_classes(0, 200, rng.standard_normal((k, d)) * 2, np.diag(rng.uniform(0.5, 2, d)))
    V, values = lda_directions(X, y, k, 6)
    Sb, Sw = scatter(X, y, k)
    ridge = 1e-6 * np.trace(Sw) / d * np.eye(d)
    assert np.allclose(V.T @ (Sw + ridge) @ V, np.eye(6), atol=1e-8)  # Sw-orthonormal
    assert np.allclose(Sb @ V, (Sw + ridge) @ V * values, atol=1e-8)  # Sb v = lambda Sw v
    assert np.allclose(values, eigh(Sb, Sw + ridge, eigvals_only=True)[::-1][:6])
    fisher = np.diag(V.T @ Sb @ V) / np.diag(V.T @ Sw @ V)
    assert fisher[0] == pytest.approx(values[0], rel=1e-5)
    for _ in range(20):  # no direction beats the first in the Fisher criterion
        v = rng.standard_normal(d)
        assert (v @ Sb @ v) / (v @ Sw @ v) <= fisher[0] + 1e-9
    assert values[3:].max() < 1e-8 * values[0]  # rank of Sb is k - 1 = 3, yet dim 6 is allowed


def test_lda_dim_up_to_the_feature_size():
    X, y = gaussian_classes(1, 50, np.eye(3, 5) * 3, np.eye(5))
    assert lda_directions(X, y, 3, 5)[0].shape == (5, 5)
    with pytest.raises(SermmError, match="lda_dim 6: must lie between 1 and the feature size 5"):
        lda_directions(X, y, 3, 6)


def test_norms():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((100, 4)) * [1, 2, 3, 4] + 5
    mean, scale = fit_norm(X, "standard")
    Z = apply_norm(X, "standard", mean, scale)
    assert np.allclose(Z.mean(axis=0), 0) and np.allclose(Z.std(axis=0), 1)
    mean, scale = fit_norm(X, "length")
    assert np.allclose(np.linalg.norm(apply_norm(X, "length", mean, scale), axis=1), 1)
    with pytest.raises(SermmError, match="norm must be one of"):
        fit_norm(X, "pca")


def test_plda_recovers_the_model_and_scores_like_gaussians():
    rng = np.random.default_rng(3)
    k, d = 5, 3
    true_means = rng.standard_normal((k, d)) * 3
    A = rng.standard_normal((d, d))
    W = A @ A.T + np.eye(d)
    X, y = gaussian_classes(3, 4000, true_means, W)
    model = fit_plda(X, y, k)
    assert np.allclose(model["W"], W, atol=0.15 * np.abs(W).max())
    assert np.allclose(model["means"], true_means, atol=0.1)
    assert np.allclose(model["mu"], true_means.mean(axis=0), atol=0.1)
    # the posterior-predictive covariance is W plus the (small) uncertainty of each class mean
    for c in range(k):
        extra = model["cov"][c] - model["W"]
        assert np.all(np.linalg.eigvalsh(extra) > 0) and np.abs(extra).max() < 0.01
    test = X[::97]
    expected = np.column_stack(
        [multivariate_normal(model["means"][c], model["cov"][c]).logpdf(test) for c in range(k)]
    )
    assert np.allclose(plda_log_likelihoods(test, model["means"], model["cov"]), expected)


def test_plda_fuser_posteriors_under_the_prior():
    rng = np.random.default_rng(4)
    k, d = 3, 4
    means = rng.standard_normal((k, d)) * 2
    X, y = gaussian_classes(4, 300, means, np.eye(d))
    blocks = [X[:, :2], X[:, 2:]]
    fuser = PLDAFuser(norm="none", lda_dim=4).fit(blocks, y)
    Z = X @ fuser.lda_
    likelihoods = np.column_stack(
        [multivariate_normal(fuser.means_[c], fuser.cov_[c]).logpdf(Z) for c in range(k)]
    )
    assert np.allclose(fuser.log_likelihoods(blocks), likelihoods)
    expected = np.exp(likelihoods - likelihoods.max(axis=1, keepdims=True))
    assert np.allclose(fuser.predict_proba(blocks), expected / expected.sum(axis=1, keepdims=True))
    assert np.allclose(fuser.prior_, 1 / 3)
    given = PLDAFuser(norm="none", lda_dim=4, prior="0=0.5,1=0.25,2=0.25").fit(blocks, y)
    tilted = expected * [0.5, 0.25, 0.25]
    assert np.allclose(given.predict_proba(blocks), tilted / tilted.sum(axis=1, keepdims=True))
    assert (fuser.predict(blocks) == y).mean() > 0.8


def test_plda_posteriors_ignore_the_class_frequencies():
    """Trained on data where class 0 is rare, PLDA (uniform prior) still gives class 0 its share on
    balanced test data; logistic regression on the same data learns the skewed prior."""
    rng = np.random.default_rng(5)
    k, d = 3, 2
    means = rng.standard_normal((k, d))
    X, y = gaussian_classes(5, 3000, means, np.eye(d))
    keep = (y != 0) | (np.arange(len(y)) % 10 == 0)
    test, _ = gaussian_classes(6, 2000, means, np.eye(d))
    plda = PLDAFuser(norm="none", lda_dim=2).fit([X[keep]], y[keep]).predict_proba([test])
    lda = LDAFuser(norm="none", lda_dim=2).fit([X[keep]], y[keep]).predict_proba([test])
    assert abs(plda[:, 0].mean() - 1 / 3) < 0.05
    assert lda[:, 0].mean() < 0.25


def test_prior_parsing():
    classes = ["a", "b"]
    assert parse_prior("uniform", classes, np.array([0.9, 0.1])).tolist() == [0.5, 0.5]
    assert parse_prior("train", classes, np.array([0.9, 0.1])).tolist() == [0.9, 0.1]
    assert parse_prior("a=3,b=1", classes, np.array([0.5, 0.5])).tolist() == [0.75, 0.25]
    for bad in ("a=1", "a=1,b=0", "a=1,c=1", "a=x,b=1"):
        with pytest.raises(SermmError, match="^prior: "):
            parse_prior(bad, classes, np.array([0.5, 0.5]))


def test_lda_fuser_with_string_labels_and_classes():
    rng = np.random.default_rng(6)
    X, y = gaussian_classes(6, 200, rng.standard_normal((3, 6)) * 2, np.eye(6))
    names = np.array(["calm", "angry", "sad"], dtype=object)[y]
    fuser = LDAFuser(lda_dim=2).fit([X[:, :3], X[:, 3:]], names)
    assert fuser.classes_ == ["angry", "calm", "sad"]
    assert fuser.score([X[:, :3], X[:, 3:]], names) > 0.8
    assert fuser.dims_ == [3, 3]
    assert np.allclose(fuser.predict_proba([X[:, :3], X[:, 3:]]), fuser.predict_proba(X))
    ordered = LDAFuser(lda_dim=2, classes="sad,calm,angry").fit([X], names)
    assert ordered.classes_ == ["sad", "calm", "angry"]
