"""The one estimator contract, checked for every registered fuser and calibrator."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import softmax
from sklearn.base import clone

from sermm.errors import SermmError
from sermm.estimator import ParamError, estimator_from_dict, load, registered
from sermm.tables import ScoreTable

N, K = 240, 3
CLASSES = ["ang", "hap", "neu"]


def labels(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, K, N)


def posterior_tables(seed: int = 0) -> tuple[list[ScoreTable], np.ndarray]:
    rng = np.random.default_rng(seed)
    y = labels(seed)
    ids = np.array([f"u{i:04d}" for i in range(N)], dtype=object)
    tables = []
    for j in range(2):
        P = softmax((1.0 + j) * np.eye(K)[y] + rng.standard_normal((N, K)), axis=1)
        tables.append(ScoreTable(ids, P, CLASSES, "posterior", {"system": f"s{j}"}, f"s{j}.csv"))
    return tables, y


def embedding_tables(seed: int = 0) -> tuple[list[ScoreTable], np.ndarray]:
    rng = np.random.default_rng(seed)
    y = labels(seed)
    ids = np.array([f"u{i:04d}" for i in range(N)], dtype=object)
    X = np.random.default_rng(99).standard_normal((K, 6))[y] * 2 + rng.standard_normal((N, 6))
    tables = [ScoreTable(ids, X[:, :4], [f"e{i}" for i in range(4)], "embedding", None, "a.emb.parquet"),
              ScoreTable(ids, X[:, 4:], ["e0", "e1"], "embedding", None, "b.emb.parquet")]
    return tables, np.array(CLASSES, dtype=object)[y]


#: How to make each registered method and fit it: every entry of the registry must be here.
MAKERS = {
    "mean": lambda cls: cls(),
    "interp": lambda cls: cls(step=0.1),
    "logreg": lambda cls: cls(),
    "vote": lambda cls: cls(),
    "lda": lambda cls: cls(lda_dim=2),
    "plda": lambda cls: cls(lda_dim=2),
    "prior": lambda cls: cls(np.array([0.2, 0.3, 0.5]), "uniform"),
    "thresholds": lambda cls: cls(),
    "affine": lambda cls: cls(),
    "temperature": lambda cls: cls(),
}
METHODS = sorted(registered())


def make(method: str):
    return MAKERS[method](registered()[method])


def fit(estimator, seed: int = 0):
    """Fit on data of the estimator's kind; return it and inputs to transform."""
    if estimator.layer == "fusion":
        tables, y = embedding_tables(seed) if "embedding" in estimator.kinds else posterior_tables(seed)
        return estimator.fit(tables, y), tables
    tables, y = posterior_tables(seed)
    return estimator.fit(tables[0].values, y, classes=CLASSES), tables[0].values


def test_every_registered_method_is_checked_here():
    assert set(MAKERS) == set(METHODS)
    assert set(registered("fusion")) == {"mean", "interp", "logreg", "vote", "lda", "plda"}
    assert set(registered("calibration")) == {"prior", "thresholds", "affine", "temperature"}


@pytest.mark.parametrize("method", METHODS)
def test_fit_transform_shapes(method):
    estimator, X = fit(make(method))
    assert estimator.fitted and estimator.classes_ == CLASSES
    out = estimator.transform(X)
    assert out.shape == (N, K) and np.allclose(out.sum(axis=1), 1.0)
    assert estimator.predict(X).shape == (N,)
    prior = estimator.output_prior(np.full(K, 1 / K))
    assert prior is None or (prior.shape == (K,) and np.isclose(prior.sum(), 1.0))


@pytest.mark.parametrize("method", METHODS)
def test_params_are_stored_as_given_and_clone(method):
    estimator = make(method)
    params = estimator.get_params()
    assert set(params) == set(type(estimator)._get_param_names())
    for name, value in params.items():
        assert getattr(estimator, name) is value
    for copy in (estimator.clone(), clone(estimator)):
        assert copy is not estimator and type(copy) is type(estimator) and not copy.fitted
        assert repr(copy) == repr(estimator)
    fit(estimator)
    assert not estimator.clone().fitted


@pytest.mark.parametrize("method", METHODS)
def test_save_and_load_round_trip_is_bit_identical(tmp_path, method):
    estimator, X = fit(make(method))
    estimator.fit_info_["note"] = "kept as is"
    path = tmp_path / "model.json"
    estimator.save(path)
    loaded = load(path, estimator.layer)
    assert type(loaded) is type(estimator)
    assert loaded.to_dict() == estimator.to_dict()
    assert estimator_from_dict(json.loads(json.dumps(estimator.to_dict()))).to_dict() == estimator.to_dict()
    _, other = fit(make(method), seed=1) if estimator.layer == "calibration" else (None, X)
    np.testing.assert_array_equal(loaded.transform(other), estimator.transform(other))
    np.testing.assert_array_equal(loaded.predict(other), estimator.predict(other))


@pytest.mark.parametrize("method", METHODS)
def test_unfitted_use_is_a_clear_error(method):
    estimator = make(method)
    _, X = fit(make(method))
    with pytest.raises(SermmError, match=f"{method}: this .* estimator is not fitted yet"):
        estimator.transform(X)


BAD_VALUES = ("bogus-value", -7, 2.5, [1, 2], None, True)


@pytest.mark.parametrize("method", METHODS)
def test_bad_params_are_refused_by_their_api_name(method):
    estimator = make(method)
    constraints = type(estimator)._parameter_constraints
    names = type(estimator)._get_param_names()
    assert set(constraints) == set(names), "every parameter has its constraint"
    refused = 0
    for name in constraints:
        for bad in BAD_VALUES:
            if any(c.accepts(bad) for c in constraints[name]):
                continue
            candidate = make(method).set_params(**{name: bad})
            with pytest.raises(ParamError) as caught:
                fit(candidate)
            assert caught.value.param == name
            assert str(caught.value).startswith(f"{name} must be ") and "--" not in str(caught.value)
            assert caught.value.render("--flag").startswith("--flag must be ")
            refused += 1
    assert refused > 0 or not names
