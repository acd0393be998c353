import numpy as np
import pytest

from sermm import bootstrap, metrics

K = 4
CATEGORICAL = ("macro_f1", "micro_f1", "weighted_f1", "ua", "wa")


def _categorical_data(n, seed=0, accuracy=0.6, k=K):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, k, size=n)
    y_pred = np.where(rng.random(n) < accuracy, y_true, rng.integers(0, k, size=n))
    return y_true, y_pred


def _attribute_data(n, seed=0, noise=0.5, a=None):
    rng = np.random.default_rng(seed)
    shape = (n,) if a is None else (n, a)
    t = rng.normal(4.0, 1.0, size=shape)
    return t, t * 0.8 + 1.0 + noise * rng.normal(size=shape)


def _reference_ci(metric, arrays, n_boot, seed, alpha=0.05):
    """Loop reference: same index matrix, percentile interval."""
    n = len(arrays[0])
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    values = np.array([metric(*[a[row] for a in arrays]) for row in idx])
    return np.quantile(values, [alpha / 2, 1 - alpha / 2], axis=0), values


@pytest.mark.parametrize("name", CATEGORICAL)
def test_bootstrap_categorical_matches_loop_reference(name):
    y_true, y_pred = _categorical_data(150, seed=1)
    res = bootstrap.bootstrap_categorical(y_true, y_pred, n_classes=K + 1, n_boot=300, seed=7)
    (low, high), _ = _reference_ci(
        lambda t, p: metrics.categorical_summary(t, p, n_classes=K + 1)[name],
        (y_true, y_pred),
        n_boot=300,
        seed=7,
    )
    point = metrics.categorical_summary(y_true, y_pred, n_classes=K + 1)[name]
    assert res[name][0] == pytest.approx(point, abs=1e-12)
    assert res[name][1] == pytest.approx(low, abs=1e-12)
    assert res[name][2] == pytest.approx(high, abs=1e-12)
    assert res[name][1] <= res[name][0] <= res[name][2]
    assert res[name][1] < res[name][2]


@pytest.mark.parametrize("chunk_size", [1, 7, 100, 1000])
def test_bootstrap_independent_of_chunk_size(chunk_size):
    y_true, y_pred = _categorical_data(80, seed=2)
    ref = bootstrap.bootstrap_categorical(y_true, y_pred, n_classes=K, n_boot=250, seed=3)
    res = bootstrap.bootstrap_categorical(
        y_true, y_pred, n_classes=K, n_boot=250, seed=3, chunk_size=chunk_size
    )
    assert res == ref
    t, p = _attribute_data(80, seed=2)
    ref_ccc = bootstrap.bootstrap_ccc(t, p, n_boot=250, seed=3)
    res_ccc = bootstrap.bootstrap_ccc(t, p, n_boot=250, seed=3, chunk_size=chunk_size)
    np.testing.assert_allclose(res_ccc, ref_ccc, rtol=1e-10)


def test_bootstrap_deterministic_under_seed():
    y_true, y_pred = _categorical_data(200, seed=4)
    a = bootstrap.bootstrap_categorical(y_true, y_pred, n_classes=K, n_boot=200, seed=5)
    b = bootstrap.bootstrap_categorical(y_true, y_pred, n_classes=K, n_boot=200, seed=5)
    c = bootstrap.bootstrap_categorical(y_true, y_pred, n_classes=K, n_boot=200, seed=6)
    assert a == b
    assert a != c
    assert a["macro_f1"][0] == c["macro_f1"][0]  # point estimate does not depend on seed


def test_bootstrap_ci_generic_matches_fast_path():
    y_true, y_pred = _categorical_data(120, seed=8)
    fast = bootstrap.bootstrap_categorical(y_true, y_pred, n_classes=K, n_boot=200, seed=9)
    low, high = bootstrap.bootstrap_ci(
        lambda t, p: metrics.macro_f1(t, p, n_classes=K), y_true, y_pred, n_boot=200, seed=9
    )
    assert (low, high) == pytest.approx(fast["macro_f1"][1:], abs=1e-12)


def test_bootstrap_ci_vectorized_matches_loop():
    t, p = _attribute_data(100, seed=10)

    def stacked_ccc(tt, pp):
        return np.array([metrics.ccc(a, b) for a, b in zip(tt, pp, strict=True)])

    loop = bootstrap.bootstrap_ci(metrics.ccc, t, p, n_boot=150, seed=1)
    vec = bootstrap.bootstrap_ci(stacked_ccc, t, p, n_boot=150, seed=1, vectorized=True)
    np.testing.assert_allclose(vec, loop, rtol=1e-12)
    (ref_low, ref_high), _ = _reference_ci(metrics.ccc, (t, p), n_boot=150, seed=1)
    np.testing.assert_allclose(loop, (ref_low, ref_high), rtol=1e-12)


def test_bootstrap_ci_alpha():
    x = np.random.default_rng(0).normal(size=300)
    narrow = bootstrap.bootstrap_ci(np.mean, x, n_boot=300, alpha=0.5)
    wide = bootstrap.bootstrap_ci(np.mean, x, n_boot=300, alpha=0.01)
    assert wide[0] < narrow[0] < narrow[1] < wide[1]


@pytest.mark.parametrize("a", [None, 3])
def test_bootstrap_ccc_matches_loop_reference(a):
    t, p = _attribute_data(200, seed=11, a=a)
    point, low, high = bootstrap.bootstrap_ccc(t, p, n_boot=300, seed=12)
    (ref_low, ref_high), _ = _reference_ci(metrics.ccc, (t, p), n_boot=300, seed=12)
    np.testing.assert_allclose(point, metrics.ccc(t, p), rtol=1e-12)
    np.testing.assert_allclose(low, ref_low, rtol=1e-9)
    np.testing.assert_allclose(high, ref_high, rtol=1e-9)
    assert np.all(low < point) and np.all(point < high)
    if a is None:
        assert isinstance(point, float) and isinstance(low, float)
    else:
        assert np.shape(low) == (a,)


def test_bootstrap_ccc_numerically_stable_with_large_offset():
    t, p = _attribute_data(300, seed=13)
    ref = bootstrap.bootstrap_ccc(t, p, n_boot=100, seed=0)
    shifted = bootstrap.bootstrap_ccc(t + 1e6, p + 1e6, n_boot=100, seed=0)
    np.testing.assert_allclose(shifted, ref, rtol=1e-6)


@pytest.mark.parametrize("kind", ["categorical", "ccc"])
def test_ci_narrows_with_more_data(kind):
    widths = []
    for n in (100, 1000, 10000):
        if kind == "categorical":
            y_true, y_pred = _categorical_data(n, seed=14)
            _, low, high = bootstrap.bootstrap_categorical(
                y_true, y_pred, n_classes=K, n_boot=300, seed=0
            )["macro_f1"]
        else:
            t, p = _attribute_data(n, seed=14)
            _, low, high = bootstrap.bootstrap_ccc(t, p, n_boot=300, seed=0)
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]
    assert widths[0] > 2 * widths[2]


@pytest.mark.parametrize("metric", CATEGORICAL)
def test_paired_bootstrap_clearly_better_system(metric):
    y_true, weak = _categorical_data(400, seed=15, accuracy=0.3)
    rng = np.random.default_rng(16)
    strong = np.where(rng.random(400) < 0.8, y_true, weak)
    res = bootstrap.paired_bootstrap(
        y_true, weak, strong, n_classes=K, metric=metric, n_boot=500, seed=0
    )
    expected = (
        metrics.categorical_summary(y_true, strong, n_classes=K)[metric]
        - (metrics.categorical_summary(y_true, weak, n_classes=K)[metric])
    )
    assert res["diff"] == pytest.approx(expected, abs=1e-12)
    assert res["diff"] > 0.2
    assert 0 < res["low"] <= res["diff"] <= res["high"]
    assert res["p_value"] < 0.01
    swapped = bootstrap.paired_bootstrap(
        y_true, strong, weak, n_classes=K, metric=metric, n_boot=500, seed=0
    )
    assert swapped["p_value"] > 0.99
    assert swapped["diff"] == pytest.approx(-res["diff"])


def test_paired_bootstrap_matches_loop_reference():
    y_true, pa = _categorical_data(150, seed=17, accuracy=0.5)
    _, pb = _categorical_data(150, seed=18, accuracy=0.55)
    pb = np.where(np.arange(150) < 75, y_true, pb)

    def diff(t, a, b):
        return metrics.macro_f1(t, b, n_classes=K) - metrics.macro_f1(t, a, n_classes=K)

    (low, high), values = _reference_ci(diff, (y_true, pa, pb), n_boot=300, seed=4)
    res = bootstrap.paired_bootstrap(y_true, pa, pb, n_classes=K, n_boot=300, seed=4)
    assert res["low"] == pytest.approx(low, abs=1e-12)
    assert res["high"] == pytest.approx(high, abs=1e-12)
    assert res["p_value"] == pytest.approx(np.mean(values <= 0))


def test_paired_bootstrap_identical_systems():
    y_true, y_pred = _categorical_data(100, seed=19)
    res = bootstrap.paired_bootstrap(y_true, y_pred, y_pred, n_classes=K, n_boot=100)
    assert res == {"diff": 0.0, "low": 0.0, "high": 0.0, "p_value": 1.0}


def test_paired_bootstrap_unknown_metric():
    y_true, y_pred = _categorical_data(10)
    with pytest.raises(ValueError, match="metric"):
        bootstrap.paired_bootstrap(y_true, y_pred, y_pred, n_classes=K, metric="f2")


@pytest.mark.parametrize("a", [None, 2])
def test_paired_bootstrap_ccc(a):
    t, weak = _attribute_data(300, seed=20, noise=2.0, a=a)
    _, strong = _attribute_data(300, seed=20, noise=0.2, a=a)
    res = bootstrap.paired_bootstrap_ccc(t, weak, strong, n_boot=300, seed=1)
    np.testing.assert_allclose(
        res["diff"], np.asarray(metrics.ccc(t, strong)) - metrics.ccc(t, weak), rtol=1e-12
    )
    assert np.all(res["low"] > 0)
    assert np.all(res["p_value"] < 0.01)
    swapped = bootstrap.paired_bootstrap_ccc(t, strong, weak, n_boot=300, seed=1)
    assert np.all(swapped["p_value"] > 0.99)
    if a is not None:
        assert np.shape(res["p_value"]) == (a,)

    def diff(tt, pa, pb):
        return np.asarray(metrics.ccc(tt, pb)) - metrics.ccc(tt, pa)

    (low, high), _ = _reference_ci(diff, (t, weak, strong), n_boot=300, seed=1)
    np.testing.assert_allclose(res["low"], low, rtol=1e-9)
    np.testing.assert_allclose(res["high"], high, rtol=1e-9)


def test_large_input_runs_in_chunks():
    # 100k utterances x 1000 resamples: must not allocate the full index matrix
    y_true, y_pred = _categorical_data(100_000, seed=21)
    res = bootstrap.bootstrap_categorical(y_true, y_pred, n_classes=K, n_boot=1000, seed=0)
    point, low, high = res["wa"]
    assert low < point < high
    assert high - low < 0.01


@pytest.mark.parametrize(
    "kwargs",
    [{"n_boot": 0}, {"alpha": 0.0}, {"alpha": 1.5}, {"chunk_size": 0}],
)
def test_option_validation(kwargs):
    y_true, y_pred = _categorical_data(10)
    with pytest.raises(ValueError):
        bootstrap.bootstrap_categorical(y_true, y_pred, n_classes=K, **kwargs)
