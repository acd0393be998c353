"""Calibration model files: bit-identical JSON round trips, malformed models, chains."""

import functools
import json

import numpy as np
import pytest
from scipy.special import softmax

from sermm.calibration.methods import (
    AffineCalibrator,
    PriorCalibrator,
    TemperatureCalibrator,
    ThresholdCalibrator,
)
from sermm.chain import Chain
from sermm.errors import SermmError
from sermm.estimator import estimator_from_dict
from sermm.modelfile import load_model, save_model

CLASSES = ["anger", "joy", "neutral", "sadness"]


def data(seed=0, n=400):
    rng = np.random.default_rng(seed)
    y = rng.choice(4, size=n, p=[0.1, 0.3, 0.5, 0.1])
    logits = rng.normal(size=(n, 4)) * 2
    logits[np.arange(n), y] += 2
    return softmax(logits, axis=1), y


@functools.cache
def fitted():
    P, y = data()
    train = np.array([0.15, 0.35, 0.4, 0.1])
    return [
        PriorCalibrator(train, "uniform").fit(P, classes=CLASSES),
        PriorCalibrator(train, "estimate").fit(P, classes=CLASSES),
        PriorCalibrator(train, np.array([0.1, 0.2, 0.3, 0.4])).fit(P, classes=CLASSES),
        ThresholdCalibrator().fit(P, y, classes=CLASSES),
        AffineCalibrator().fit(P, y, classes=CLASSES),
        AffineCalibrator(prior="uniform").fit(P, y, classes=CLASSES),
        AffineCalibrator(prior=np.array([0.7, 0.1, 0.1, 0.1])).fit(P, y, classes=CLASSES),  # sum 1 - 1e-16
        AffineCalibrator(scale="vector").fit(P, y, classes=CLASSES),
        AffineCalibrator(scale="matrix", l2=0.01).fit(P, y, classes=CLASSES),
        TemperatureCalibrator().fit(P, y, classes=CLASSES),
    ]


@pytest.mark.parametrize("index", range(10))
def test_json_round_trip_is_bit_identical(tmp_path, index):
    calibrator = fitted()[index]
    P, _ = data(seed=1)
    path = tmp_path / "model.json"
    save_model(path, calibrator.to_dict())
    doc = load_model(path, "calibration")
    assert doc["method"] == calibrator.method and doc["classes"] == CLASSES
    loaded = estimator_from_dict(doc, source=str(path))
    assert type(loaded) is type(calibrator)
    assert loaded.to_dict() == calibrator.to_dict()
    np.testing.assert_array_equal(loaded.transform(P), calibrator.transform(P))
    np.testing.assert_array_equal(loaded.predict(P), calibrator.predict(P))
    again = tmp_path / "again.json"
    save_model(again, loaded.to_dict())
    first, second = json.loads(path.read_text()), json.loads(again.read_text())
    first.pop("created"), second.pop("created")
    assert first == second


def test_unknown_method_is_a_clear_error():
    with pytest.raises(SermmError, match=r"m\.json: unknown calibration method 'platt' \(known: affine"):
        doc = {"method": "platt", "classes": ["a"], "params": {}}
        estimator_from_dict(doc, source="m.json", layer="calibration")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["state"].pop("bias"), "missing key 'bias'"),
        (lambda d: d["state"].update(bias=[0.0, 1.0]), "'bias' must be 4 finite numbers"),
        (lambda d: d.update(classes="anger"), "'classes' must be a non-empty list"),
        (lambda d: d["params"].update(scale="cubic"), "params 'scale' must be one of 'shared', 'vector'"),
        (lambda d: d.pop("params"), "missing key 'params'"),
    ],
)
def test_malformed_models_are_clear_errors(edit, message):
    doc = fitted()[4].to_dict()
    edit(doc)
    with pytest.raises(SermmError, match=f"m.json: malformed affine calibration model: .*{message}"):
        estimator_from_dict(doc, source="m.json")


def test_chain_follows_class_names_not_column_order():
    P, y = data()
    affine = AffineCalibrator().fit(P, y, classes=CLASSES)
    perm = [2, 0, 3, 1]
    shuffled = [CLASSES[i] for i in perm]
    applied = Chain([affine], ["a.json"]).run(P[:, perm], shuffled)
    assert applied.decisions is None
    np.testing.assert_allclose(applied.values, affine.transform(P)[:, perm], rtol=1e-12)
    np.testing.assert_array_equal(applied.prior, affine.prior_[perm])  # the prior follows the columns


def test_chain_ending_in_thresholds_gives_decisions_in_the_input_order():
    P, y = data()
    prior = PriorCalibrator(np.array([0.1, 0.3, 0.5, 0.1]), "uniform").fit(P, classes=CLASSES)
    thresholds = ThresholdCalibrator().fit(prior.transform(P), y, classes=CLASSES)
    perm = [3, 1, 0, 2]
    applied = Chain([prior, thresholds], ["p.json", "t.json"]).run(P[:, perm], [CLASSES[i] for i in perm])
    expected = thresholds.predict(prior.transform(P))
    np.testing.assert_array_equal(np.array(perm)[applied.decisions], expected)
    np.testing.assert_array_equal(applied.prior, np.full(4, 0.25))  # thresholds keep the uniform prior


def test_chain_refuses_other_classes_and_thresholds_before_the_end():
    P, y = data()
    affine = AffineCalibrator().fit(P, y, classes=CLASSES)
    thresholds = ThresholdCalibrator().fit(P, y, classes=CLASSES)
    with pytest.raises(SermmError, match="a.json: calibrated for classes anger, joy, neutral, sadness"):
        Chain([affine], ["a.json"]).run(P[:, :3] / P[:, :3].sum(1, keepdims=True), CLASSES[:3])
    with pytest.raises(SermmError, match="t.json: a decision rule .* must come last"):
        Chain([thresholds, affine], ["t.json", "a.json"])
