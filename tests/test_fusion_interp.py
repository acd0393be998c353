"""Interpolation and mean fusion: the simplex grid, the vectorised grid search, attribute CCC weights."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from sermm.calibration_metrics import cross_entropy
from sermm.errors import SermmError
from sermm.fusion.interp import (
    InterpFuser,
    MeanFuser,
    argmax_counts,
    candidate_classes,
    ccc_grid,
    cross_entropy_grid,
    grid_objective,
    pick_best,
    simplex_grid,
    simplex_lattice,
    weighted_mean,
)
from sermm.metrics import ccc, macro_f1, unweighted_accuracy, weighted_accuracy


def random_posteriors(rng: np.random.Generator, n: int, k: int, m: int) -> list[np.ndarray]:
    return [rng.dirichlet(np.full(k, 0.7), size=n) for _ in range(m)]


def brute_force(S: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Predictions at every grid point, computed one point at a time (the reference)."""
    return np.stack([np.argmax(weighted_mean(S, w, "linear"), axis=1) for w in weights])


@pytest.mark.parametrize(("m", "points"), [(1, 1), (2, 21), (3, 231), (4, 1771)])
def test_grid_sizes_and_rows_on_the_simplex(m, points):
    grid = simplex_grid(m, 0.05)
    assert grid.shape == (points, m)
    assert np.allclose(grid.sum(axis=1), 1.0)
    assert grid.min() >= 0
    assert len(np.unique(np.round(grid * 20).astype(int), axis=0)) == points


def test_lattice_is_lexicographic():
    lattice = simplex_lattice(3, 2)
    assert lattice.tolist() == [[0, 0, 2], [0, 1, 1], [0, 2, 0], [1, 0, 1], [1, 1, 0], [2, 0, 0]]


@pytest.mark.parametrize("step", [0.3, 0.0, 1.5])
def test_step_must_divide_one(step):
    with pytest.raises(SermmError, match="^step "):
        simplex_grid(2, step)


@pytest.mark.parametrize(
    ("m", "k", "n_steps", "quantised"),
    [
        (2, 4, 20, False),
        (3, 5, 20, False),
        (4, 3, 10, False),
        (3, 8, 20, True),
        (2, 3, 10, True),
        (4, 4, 4, True),
    ],
)
def test_grid_counts_match_brute_force(m, k, n_steps, quantised):
    """The line sweep gives the predicted counts and true positives of every grid point exactly,
    also with exact ties (posteriors rounded to one decimal)."""
    rng = np.random.default_rng(m * 100 + k)
    n = 400
    S = random_posteriors(rng, n, k, m)
    if quantised:
        S = [np.round(s, 1) for s in S]
    y = rng.integers(0, k, n)
    lattice = simplex_lattice(m, n_steps)
    pred, tp = argmax_counts(S, y, lattice, n_steps)
    reference = brute_force(S, lattice / n_steps)
    for g, p in enumerate(reference):
        assert pred[g].tolist() == np.bincount(p, minlength=k).tolist()
        assert tp[g].tolist() == np.bincount(p[p == y], minlength=k).tolist()


def test_grid_objectives_equal_sermm_metrics():
    rng = np.random.default_rng(1)
    k, n = 5, 300
    S = random_posteriors(rng, n, k, 3)
    y = rng.integers(0, k, n)
    lattice = simplex_lattice(3, 10)
    reference = brute_force(S, lattice / 10)
    for metric, function in (
        ("macro-f1", macro_f1),
        ("ua", unweighted_accuracy),
        ("accuracy", weighted_accuracy),
    ):
        objective = grid_objective(S, y, lattice, 10, metric, "linear")
        expected = [function(y, p, n_classes=k) for p in reference]
        assert np.allclose(objective, expected, atol=1e-12)
    assert np.isclose(objective[0], f1_score(y, reference[0], average="micro"))


@pytest.mark.parametrize("domain", ["linear", "log"])
def test_cross_entropy_grid_equals_direct_computation(domain):
    rng = np.random.default_rng(2)
    k, n = 4, 200
    S = random_posteriors(rng, n, k, 3)
    y = rng.integers(0, k, n)
    weights = simplex_grid(3, 0.25)
    fuser_input = [np.log(np.maximum(s, 1e-12)) for s in S] if domain == "log" else S
    got = cross_entropy_grid(fuser_input, y, weights, domain)
    expected = [cross_entropy(weighted_mean(S, w, domain), y) for w in weights]
    assert np.allclose(got, expected, rtol=1e-10)


def test_candidates_drop_dominated_classes():
    X = np.array([[[0.5, 0.3, 0.2]], [[0.6, 0.1, 0.3]]])  # (m=2, R=1, k=3)
    assert candidate_classes(X).tolist() == [[True, False, False]]
    X = np.array([[[0.5, 0.3, 0.2]], [[0.2, 0.6, 0.2]]])
    assert candidate_classes(X).tolist() == [[True, True, False]]


def test_two_systems_known_optimum():
    """System A is right on the first 60 rows, B on the last 40; with these margins exactly the
    weights of A in [0.40, 0.80] get every row right, and 0.50 is the most even of them."""
    n = 100
    y = np.zeros(n, dtype=int)
    y[60:] = 1
    A = np.tile([0.9, 0.1], (n, 1))
    A[60:] = [0.6, 0.4]
    B = np.tile([0.25, 0.75], (n, 1))
    B[60:] = [0.05, 0.95]
    fuser = InterpFuser().fit([A, B], y)
    assert fuser.weights_.tolist() == [0.5, 0.5]
    assert fuser.objective_[0] == 1.0
    # without the tie rule the first maximum (0.40) would win: check the whole optimal plateau
    objective = grid_objective([A, B], y, simplex_lattice(2, 20), 20, "macro-f1", "linear")
    best = np.flatnonzero(objective == 1.0)
    assert simplex_grid(2)[best, 0].round(2).tolist() == (np.arange(40, 81, 5) / 100).tolist()


def test_ties_prefer_the_most_even_weights():
    weights = simplex_grid(3, 0.25)
    objective = np.zeros(len(weights))
    assert weights[pick_best(objective, weights)].tolist() == pytest.approx([0.25, 0.25, 0.5])
    uneven = np.flatnonzero((weights == 1.0).any(axis=1))
    objective[uneven] = 1.0
    assert weights[pick_best(objective, weights)].max() == 1.0


def test_identical_systems_get_even_weights():
    rng = np.random.default_rng(3)
    P = random_posteriors(rng, 200, 4, 1)[0]
    y = rng.integers(0, 4, 200)
    fuser = InterpFuser().fit([P, P.copy(), P.copy()], y)
    assert np.sort(fuser.weights_).tolist() == pytest.approx([0.3, 0.35, 0.35])


def test_interp_beats_or_matches_each_system_and_predicts():
    rng = np.random.default_rng(4)
    n, k = 600, 4
    y = rng.integers(0, k, n)
    S = []
    for skill in (1.0, 1.5):
        logits = skill * np.eye(k)[y] + rng.standard_normal((n, k))
        S.append(np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True))
    fuser = InterpFuser().fit(S, y)
    fused = fuser.predict_proba(S)
    assert np.allclose(fused.sum(axis=1), 1.0)
    best_single = max(macro_f1(y, s.argmax(axis=1), n_classes=k) for s in S)
    assert fuser.score(S, y) >= best_single
    assert fuser.score(S, y) == pytest.approx(fuser.objective_[0])
    assert (fuser.predict(S) == fused.argmax(axis=1)).all()


def test_log_domain_is_a_normalised_geometric_mean():
    rng = np.random.default_rng(5)
    S = random_posteriors(rng, 50, 3, 2)
    w = np.array([0.3, 0.7])
    geometric = S[0] ** 0.3 * S[1] ** 0.7
    assert np.allclose(weighted_mean(S, w, "log"), geometric / geometric.sum(axis=1, keepdims=True))
    y = rng.integers(0, 3, 50)
    fuser = InterpFuser(domain="log", metric="cross-entropy").fit(S, y)
    expected = min(cross_entropy(weighted_mean(S, g, "log"), y) for g in simplex_grid(2))
    assert fuser.objective_[0] == pytest.approx(expected)


def test_attribute_interp_picks_weights_by_ccc():
    rng = np.random.default_rng(6)
    n = 300
    truth = rng.standard_normal((n, 3))
    good = truth + 0.5 * rng.standard_normal((n, 3))
    bad = 0.3 * truth + rng.standard_normal((n, 3)) + 1.0
    bad[:, 1] = truth[:, 1] + 0.5 * rng.standard_normal(n)  # valence: both systems are good
    fuser = InterpFuser().fit([good, bad], truth)
    assert fuser.output_kind_ == "attribute"
    grid = simplex_grid(2)
    for a in range(3):
        scores = [ccc(truth[:, a], good[:, a] * w[0] + bad[:, a] * w[1]) for w in grid]
        assert fuser.weights_[a].tolist() == grid[int(np.argmax(scores))].tolist()
        assert fuser.objective_[a] == pytest.approx(max(scores))
    assert fuser.weights_[0, 0] > 0.5 and 0.2 < fuser.weights_[1, 0] < 0.8
    fused = fuser.predict([good, bad])
    assert np.allclose(fused[:, 0], good[:, 0] * fuser.weights_[0, 0] + bad[:, 0] * fuser.weights_[0, 1])
    assert np.allclose(
        ccc_grid(np.column_stack([good[:, 2], bad[:, 2]]), truth[:, 2], grid),
        [ccc(truth[:, 2], good[:, 2] * w[0] + bad[:, 2] * w[1]) for w in grid],
    )
    with pytest.raises(SermmError, match="no class posteriors"):
        fuser.predict_proba([good, bad])


def test_metric_must_fit_the_kind():
    rng = np.random.default_rng(7)
    S = random_posteriors(rng, 20, 3, 2)
    with pytest.raises(SermmError, match="ccc is for attribute"):
        InterpFuser(metric="ccc").fit(S, rng.integers(0, 3, 20))
    with pytest.raises(SermmError, match="needs the labels y"):
        InterpFuser().fit(S, None)


def test_mean_needs_no_labels_and_averages():
    rng = np.random.default_rng(8)
    S = random_posteriors(rng, 30, 3, 3)
    fuser = MeanFuser().fit(S)
    assert np.allclose(fuser.predict_proba(S), sum(S) / 3)
    attributes = [rng.standard_normal((30, 2)) for _ in range(2)]
    fuser = MeanFuser().fit(attributes, rng.standard_normal((30, 2)))
    assert np.allclose(fuser.predict(attributes), (attributes[0] + attributes[1]) / 2)


def test_too_large_grids_are_refused():
    with pytest.raises(SermmError, match="use a larger step, or tied logistic-regression fusion"):
        simplex_grid(10, 0.05)
