"""Logistic-regression fusion: full multinomial against scikit-learn, tied (FoCal) against a direct fit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression

from sermm.errors import SermmError
from sermm.estimator import ParamError
from sermm.fusion.logreg import C_GRID, LogRegFuser, sample_weights
from sermm.tables import log_posteriors


def systems(seed: int, n: int = 400, k: int = 3, m: int = 2) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    out = []
    for j in range(m):
        logits = (1.0 + 0.5 * j) * np.eye(k)[y] + rng.standard_normal((n, k))
        out.append(np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True))
    return out, y


def sklearn_reference(S: list[np.ndarray], y: np.ndarray, **kwargs) -> np.ndarray:
    features = np.hstack([log_posteriors(s) for s in S])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LogisticRegression(max_iter=20000, tol=1e-10, **kwargs).fit(features, y)
    return model.predict_proba(features)


@pytest.mark.parametrize(
    ("k", "C", "class_weight"),
    [(3, 1.0, None), (3, 0.1, None), (3, 1.0, "balanced"), (5, 10.0, None), (4, 0.01, "balanced")],
)
def test_probabilities_match_sklearn(k, C, class_weight):
    S, y = systems(k, k=k)
    fuser = LogRegFuser(C=C, class_weight=class_weight).fit(S, y)
    expected = sklearn_reference(S, y, C=C, class_weight=class_weight)
    assert np.abs(fuser.predict_proba(S) - expected).max() < 1e-4
    assert fuser.coef_.shape == (k, 2 * k)


def test_two_classes_match_sklearn():
    S, y = systems(1, k=2)
    fuser = LogRegFuser().fit(S, y)
    assert np.abs(fuser.predict_proba(S) - sklearn_reference(S, y)).max() < 1e-4
    assert fuser.coef_.shape == (2, 4)


def test_train_prior_is_the_label_frequencies_or_uniform_when_balanced():
    S, y = systems(2)
    assert np.allclose(LogRegFuser().fit(S, y).prior_, np.bincount(y) / len(y))
    assert np.allclose(LogRegFuser(class_weight="balanced").fit(S, y).prior_, 1 / 3)


def test_tied_matches_a_direct_minimisation():
    """One weight per system and one bias per class: the same objective minimised by plain BFGS
    with numerical gradients gives the same weights and posteriors."""
    S, y = systems(3, m=3)
    C = 0.5
    fuser = LogRegFuser(tied=True, C=C).fit(S, y)
    L = np.stack([log_posteriors(s) for s in S])

    def objective(theta: np.ndarray) -> float:
        z = np.tensordot(theta[:3], L, axes=1) + theta[3:]
        z -= z.max(axis=1, keepdims=True)
        nll = (np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]).sum()
        return (C * nll + 0.5 * theta[:3] @ theta[:3]) / len(y)

    direct = minimize(objective, np.zeros(6), method="BFGS", options={"gtol": 1e-9})
    assert np.allclose(fuser.system_weights_, direct.x[:3], atol=1e-3)
    logits = np.tensordot(direct.x[:3], L, axes=1) + direct.x[3:]
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert np.abs(fuser.predict_proba(S) - expected).max() < 1e-4
    assert fuser.system_weights_[2] > fuser.system_weights_[0]  # the third system is the strongest


def test_tied_balanced_weights_rows():
    assert np.allclose(sample_weights(np.array([0, 0, 0, 1]), 2, "balanced"), [2 / 3, 2 / 3, 2 / 3, 2])
    S, y = systems(4)
    plain = LogRegFuser(tied=True).fit(S, y)
    balanced = LogRegFuser(tied=True, class_weight="balanced").fit(S, y)
    assert not np.allclose(plain.intercept_, balanced.intercept_)


def test_C_auto_picks_from_the_grid_by_cross_validation():
    S, y = systems(5, n=300)
    fuser = LogRegFuser(C="auto", tied=True).fit(S, y)
    assert fuser.C_ in C_GRID
    curve = fuser.C_curve_
    assert set(curve) == {f"{C:g}" for C in C_GRID}
    assert curve[f"{fuser.C_:g}"] == min(curve.values())
    groups = np.arange(300) % 6
    assert LogRegFuser(C="auto", tied=True).fit(S, y, groups).C_ in C_GRID


@pytest.mark.parametrize("value", [0.0, -1, "x", "1.0"])
def test_bad_C_is_refused_by_its_api_name(value):
    S, y = systems(1)
    with pytest.raises(ParamError, match=r"^C must be a positive number or 'auto', got ") as caught:
        LogRegFuser(C=value).fit(S, y)
    assert caught.value.param == "C"


def test_every_class_needs_examples():
    S, y = systems(6)
    y[y == 2] = 0
    with pytest.raises(SermmError, match="class '2' has no development examples"):
        LogRegFuser().fit(S, y)


@pytest.mark.parametrize(("k", "tied"), [(3, False), (2, False), (3, True)], ids=["full", "binary", "tied"])
def test_warm_start_reaches_the_cold_optimum_in_fewer_iterations(k, tied):
    S, y = systems(5, k=k, m=3)
    cold = LogRegFuser(C=1.0, tied=tied).fit(S, y)
    warm = LogRegFuser(C=0.9, tied=tied, warm_start=True).fit(S, y)
    warm.set_params(C=1.0).fit(S, y)
    assert np.abs(warm.predict_proba(S) - cold.predict_proba(S)).max() < 1e-4  # the solver's tolerance
    assert warm.n_iter_ < cold.n_iter_


def test_auto_C_with_warm_starts_matches_cold_cross_validation():
    """--C auto walks the grid with warm starts inside each fold; the curve it draws is the one
    that independent cold fits per C give."""
    from sermm.calibration_metrics import cross_entropy
    from sermm.fusion.cv import INNER_FOLDS, cross_val_fuse, make_folds

    S, y = systems(6, n=300)
    fuser = LogRegFuser(C="auto").fit(S, y)
    folds = make_folds(y, n_splits=INNER_FOLDS, why="test")
    for C in C_GRID:
        cold = cross_entropy(cross_val_fuse(LogRegFuser(), S, y, folds, C=C), y)
        assert fuser.C_curve_[f"{C:g}"] == pytest.approx(cold, rel=1e-5)


def test_C_auto_on_the_examples_matches_scikit_learn_fold_by_fold():
    """The fast path (one BLAS thread, warm starts along C) draws the curve that independent
    scikit-learn fits give, fold by fold and C by C, on a slice of the shipped dev set."""
    from conftest import GO

    from sermm.align import load_aligned
    from sermm.calibration_metrics import cross_entropy
    from sermm.fusion.cv import INNER_FOLDS, make_folds
    from sermm.tables import log_posteriors

    aligned = load_aligned(
        [str(GO / f"{s}_dev.csv") for s in ("words", "chars", "nb")], str(GO / "labels_dev.csv")
    )
    rows = np.arange(0, len(aligned.ids), 8)
    tables, y = [t.take(rows) for t in aligned.tables], aligned.y()[rows]
    fuser = LogRegFuser(C="auto").fit(tables, y)
    F = np.hstack([log_posteriors(t.values) for t in tables])
    folds = make_folds(y, n_splits=INNER_FOLDS, why="test")
    # C >= 100 is left out: there the training objective is a flat valley (scikit-learn needs
    # over 13,000 L-BFGS iterations, sermm stops at its 1,000 within 2e-7 of the same objective),
    # and where in the valley each stops moves the held-out loss in its third digit
    for C in [C for C in C_GRID if C <= 10]:
        total = 0.0
        for train, test in folds:
            reference = LogisticRegression(C=C, tol=1e-10, max_iter=20000).fit(F[train], y[train])
            total += cross_entropy(reference.predict_proba(F[test]), y[test]) * len(test)
        assert fuser.C_curve_[f"{C:g}"] == pytest.approx(total / len(y), rel=1e-4), C


def test_the_solver_runs_blas_on_one_thread():
    """Small matrices: BLAS threads only cost (on a loaded 2-core machine ~30x), so the solver
    limits every BLAS library to one thread while it runs, and lifts the limit after."""
    from threadpoolctl import threadpool_info

    from sermm.logistic import FullMap, fit_logistic

    seen = []

    class Watching(FullMap):
        def logits(self, theta, X):
            seen.append(
                {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
            )
            return super().logits(theta, X)

    S, y = systems(3, n=60)
    X = np.hstack([np.log(s) for s in S])
    fit_logistic(Watching(3, X.shape[1], np.ones(X.shape[1])), X, y, np.ones(len(y)), norm=len(y), max_iter=3)
    assert seen and all(n == 1 for threads in seen for n in threads.values())
