import numpy as np
import pytest
import sklearn.metrics
from scipy import stats

from sermm import metrics

# (seed, n, n_classes, classes absent from y_true, classes absent from y_pred)
LABEL_CASES = [
    (0, 50, 2, (), ()),
    (1, 200, 4, (), ()),
    (2, 200, 5, (3,), ()),
    (3, 300, 6, (0,), (5,)),
    (4, 30, 8, (1, 2), (2, 7)),
    (5, 1, 3, (), ()),
    (6, 100, 4, (), (1, 2, 3)),
]


def _labels(seed, n, k, absent_true, absent_pred):
    rng = np.random.default_rng(seed)
    allowed_t = np.setdiff1d(np.arange(k), absent_true)
    allowed_p = np.setdiff1d(np.arange(k), absent_pred)
    y_true = rng.choice(allowed_t, size=n)
    y_pred = np.where(rng.random(n) < 0.5, y_true, rng.choice(allowed_p, size=n))
    y_pred = np.where(np.isin(y_pred, absent_pred), allowed_p[0], y_pred)
    return y_true, y_pred


@pytest.mark.parametrize("case", LABEL_CASES)
def test_confusion_matrix_matches_sklearn(case):
    y_true, y_pred = _labels(*case)
    k = case[2]
    expected = sklearn.metrics.confusion_matrix(y_true, y_pred, labels=np.arange(k))
    np.testing.assert_array_equal(metrics.confusion_matrix(y_true, y_pred, n_classes=k), expected)


@pytest.mark.parametrize("case", LABEL_CASES)
@pytest.mark.parametrize(
    "func, average",
    [
        (metrics.macro_f1, "macro"),
        (metrics.micro_f1, "micro"),
        (metrics.weighted_f1, "weighted"),
    ],
)
def test_f1_matches_sklearn(case, func, average):
    y_true, y_pred = _labels(*case)
    k = case[2]
    expected = sklearn.metrics.f1_score(
        y_true, y_pred, labels=np.arange(k), average=average, zero_division=0
    )
    result = func(y_true, y_pred, n_classes=k)
    assert isinstance(result, float)
    assert result == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("case", LABEL_CASES)
def test_ua_wa_match_sklearn(case):
    y_true, y_pred = _labels(*case)
    k = case[2]
    ua = sklearn.metrics.recall_score(
        y_true, y_pred, labels=np.arange(k), average="macro", zero_division=0
    )
    wa = sklearn.metrics.accuracy_score(y_true, y_pred)
    assert metrics.unweighted_accuracy(y_true, y_pred, n_classes=k) == pytest.approx(ua, abs=1e-12)
    assert metrics.weighted_accuracy(y_true, y_pred, n_classes=k) == pytest.approx(wa, abs=1e-12)


@pytest.mark.parametrize("case", LABEL_CASES)
def test_per_class_scores_match_sklearn(case):
    y_true, y_pred = _labels(*case)
    k = case[2]
    p, r, f, s = sklearn.metrics.precision_recall_fscore_support(
        y_true, y_pred, labels=np.arange(k), zero_division=0
    )
    res = metrics.per_class_scores(y_true, y_pred, n_classes=k)
    np.testing.assert_allclose(res["precision"], p, atol=1e-12)
    np.testing.assert_allclose(res["recall"], r, atol=1e-12)
    np.testing.assert_allclose(res["f1"], f, atol=1e-12)
    np.testing.assert_array_equal(res["support"], s)


@pytest.mark.parametrize("case", LABEL_CASES)
def test_categorical_summary_matches_individual_metrics(case):
    y_true, y_pred = _labels(*case)
    k = case[2]
    summary = metrics.categorical_summary(y_true, y_pred, n_classes=k)
    expected = {
        "macro_f1": metrics.macro_f1(y_true, y_pred, n_classes=k),
        "micro_f1": metrics.micro_f1(y_true, y_pred, n_classes=k),
        "weighted_f1": metrics.weighted_f1(y_true, y_pred, n_classes=k),
        "ua": metrics.unweighted_accuracy(y_true, y_pred, n_classes=k),
        "wa": metrics.weighted_accuracy(y_true, y_pred, n_classes=k),
    }
    assert summary == pytest.approx(expected, abs=1e-12)
    assert all(isinstance(v, float) for v in summary.values())


def test_absent_class_counts_in_macro_average():
    # class 2 never occurs: F1 per class = [1, 1, 0] -> macro 2/3
    y = np.array([0, 1, 0, 1])
    assert metrics.macro_f1(y, y, n_classes=3) == pytest.approx(2 / 3)
    assert metrics.unweighted_accuracy(y, y, n_classes=3) == pytest.approx(2 / 3)
    assert metrics.macro_f1(y, y, n_classes=2) == 1.0
    assert metrics.weighted_f1(y, y, n_classes=3) == 1.0


def test_confusion_matrix_hand_computed():
    conf = metrics.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], n_classes=4)
    expected = np.array([[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(conf, expected)


@pytest.mark.parametrize("m, n, k", [(1, 10, 2), (7, 50, 4), (300, 40, 6)])
def test_confusion_matrices_stack(m, n, k):
    rng = np.random.default_rng(m)
    y_true = rng.integers(0, k, size=n)
    preds = rng.integers(0, k, size=(m, n))
    stack = metrics.confusion_matrices(y_true, preds, n_classes=k)
    assert stack.shape == (m, k, k)
    for i in range(m):
        np.testing.assert_array_equal(
            stack[i], metrics.confusion_matrix(y_true, preds[i], n_classes=k)
        )
    # stacked y_true (e.g. bootstrap resamples) and extra leading axes
    y_stack = rng.integers(0, k, size=(m, n))
    stack2 = metrics.confusion_matrices(y_stack, preds, n_classes=k)
    for i in range(m):
        np.testing.assert_array_equal(
            stack2[i], metrics.confusion_matrix(y_stack[i], preds[i], n_classes=k)
        )
    stack3 = metrics.confusion_matrices(y_true, preds.reshape(m, 1, n), n_classes=k)
    np.testing.assert_array_equal(stack3.reshape(m, k, k), stack)


@pytest.mark.parametrize(
    "stack_fn, name",
    [
        (metrics.macro_f1_from_confusion, "macro_f1"),
        (metrics.micro_f1_from_confusion, "micro_f1"),
        (metrics.weighted_f1_from_confusion, "weighted_f1"),
        (metrics.ua_from_confusion, "ua"),
        (metrics.accuracy_from_confusion, "wa"),
    ],
)
def test_from_confusion_stack_matches_scalar(stack_fn, name):
    rng = np.random.default_rng(11)
    k, n = 5, 60
    y_true = rng.integers(0, k - 1, size=n)  # class 4 absent from y_true
    preds = rng.integers(0, k, size=(4, 3, n))
    stack = metrics.confusion_matrices(y_true, preds, n_classes=k)
    values = stack_fn(stack)
    assert values.shape == (4, 3)
    expected = np.array(
        [
            [metrics.categorical_summary(y_true, preds[i, j], n_classes=k)[name] for j in range(3)]
            for i in range(4)
        ]
    )
    np.testing.assert_allclose(values, expected, atol=1e-12)
    summary = metrics.categorical_summary_from_confusion(stack)
    np.testing.assert_allclose(summary[name], expected, atol=1e-12)


def test_empty_confusion_gives_zero():
    conf = np.zeros((3, 3), dtype=int)
    assert float(metrics.macro_f1_from_confusion(conf)) == 0.0
    assert float(metrics.accuracy_from_confusion(conf)) == 0.0
    assert float(metrics.weighted_f1_from_confusion(conf)) == 0.0


@pytest.mark.parametrize(
    "y_true, y_pred, n_classes, error",
    [
        ([0, 1, 3], [0, 1, 2], 3, ValueError),
        ([0, 1, 2], [0, -1, 2], 3, ValueError),
        ([0.0, 1.0], [0, 1], 2, TypeError),
        ([0, 1, 1], [0, 1], 2, ValueError),
        ([0, 1], [0, 1], 0, ValueError),
    ],
)
def test_label_validation(y_true, y_pred, n_classes, error):
    with pytest.raises(error):
        metrics.confusion_matrix(y_true, y_pred, n_classes=n_classes)


# ---------------------------------------------------------------------------
# CCC
# ---------------------------------------------------------------------------


def _ccc_reference(t, p):
    t = np.asarray(t, dtype=float)
    p = np.asarray(p, dtype=float)
    r = stats.pearsonr(t, p).statistic
    st, sp = t.std(), p.std()
    return 2 * r * st * sp / (st**2 + sp**2 + (t.mean() - p.mean()) ** 2)


def test_ccc_hand_computed():
    # y = [1, 2, 3, 4]: mean 5/2, var 5/4
    # p = [2, 2, 3, 5]: mean 3, var (1 + 1 + 0 + 4)/4 = 3/2
    # cov = (1.5*1 + 0.5*1 + 0 + 1.5*2)/4 = 5/4
    # CCC = 2 * 5/4 / (5/4 + 3/2 + 1/4) = (5/2) / 3 = 5/6
    assert metrics.ccc([1, 2, 3, 4], [2, 2, 3, 5]) == pytest.approx(5 / 6, abs=1e-15)


@pytest.mark.parametrize(
    "y_pred, expected",
    [
        ([1, 2, 3, 4], 1.0),  # perfect
        ([4, 3, 2, 1], -1.0),  # mirrored about the common mean
        # negated: mean -5/2, var 5/4, cov -5/4 -> -5/2 / (5/4 + 5/4 + 25) = -1/11
        ([-1, -2, -3, -4], -1 / 11),
        # shifted by 1: var 5/4 each, cov 5/4 -> 5/2 / (5/2 + 1) = 5/7
        ([2, 3, 4, 5], 5 / 7),
        # constant prediction -> zero covariance
        ([2.5, 2.5, 2.5, 2.5], 0.0),
    ],
)
def test_ccc_special_cases(y_pred, expected):
    assert metrics.ccc([1, 2, 3, 4], y_pred) == pytest.approx(expected, abs=1e-15)


def test_ccc_constant_equal_is_nan():
    assert np.isnan(metrics.ccc([3.0, 3.0, 3.0], [3.0, 3.0, 3.0]))


@pytest.mark.parametrize("seed, n", [(0, 10), (1, 200), (2, 5000)])
def test_ccc_matches_reference(seed, n):
    rng = np.random.default_rng(seed)
    t = rng.normal(3, 1, size=n)
    p = 0.7 * t + rng.normal(0.5, 0.8, size=n)
    assert metrics.ccc(t, p) == pytest.approx(_ccc_reference(t, p), rel=1e-10)


def test_ccc_per_column_and_stack():
    rng = np.random.default_rng(3)
    n, a, m = 120, 3, 5
    t = rng.normal(size=(n, a))
    p = t + rng.normal(size=(m, n, a)) * np.array([0.3, 1.0, 3.0])
    per_col = metrics.ccc(t, p[0])
    assert per_col.shape == (a,)
    np.testing.assert_allclose(per_col, [_ccc_reference(t[:, j], p[0, :, j]) for j in range(a)])
    stack = metrics.ccc(t, p)
    assert stack.shape == (m, a)
    expected = [[_ccc_reference(t[:, j], p[i, :, j]) for j in range(a)] for i in range(m)]
    np.testing.assert_allclose(stack, expected)
    stack1d = metrics.ccc(t[:, 0], p[:, :, 0])
    assert stack1d.shape == (m,)
    np.testing.assert_allclose(stack1d, np.array(expected)[:, 0])


@pytest.mark.parametrize(
    "y_true, y_pred",
    [
        ([1.0, 2.0, 3.0], [1.0, 2.0]),
        (np.zeros((3, 2)), np.zeros((3, 3))),
        (np.zeros((2, 2, 2)), np.zeros((2, 2, 2))),
        ([], []),
    ],
)
def test_ccc_shape_errors(y_true, y_pred):
    with pytest.raises(ValueError):
        metrics.ccc(y_true, y_pred)
