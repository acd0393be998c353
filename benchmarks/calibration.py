"""Benchmark sermm's calibrators against psrcal and scikit-learn with 5-fold cross-validation.

Data: the shipped GoEmotions dev posteriors (words, chars, nb, with labels_dev.csv) and a
seeded synthetic set that is overconfident and prior-shifted (trained under an imbalanced
prior, evaluated on balanced data). Every method is fitted on four folds and applied to the
fifth; the pooled held-out outputs are scored (macro-F1, normalised cross-entropy, ECE) and
fit times summed over folds (the fastest of ``--repeats`` runs of each fit).

psrcal (``AffineCalLogLoss``, needs torch) and scikit-learn's ``LogisticRegression`` on
log-posteriors are compared when installed. Run it in a separate virtualenv that has them,
so that the project's own environment stays free of torch::

    /work/benchvenv/bin/python benchmarks/calibration.py
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
from scipy.special import softmax
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from sermm.align import load_aligned
from sermm.calibration.methods import (
    AffineCalibrator,
    PriorCalibrator,
    TemperatureCalibrator,
    ThresholdCalibrator,
)
from sermm.calibration_metrics import cross_entropy, ece, normalized_cross_entropy
from sermm.metrics import macro_f1
from sermm.tables import log_posteriors

try:
    import torch
    from psrcal.calibration import AffineCalLogLoss
except ImportError:  # psrcal (and torch) are optional here
    torch = None
    AffineCalLogLoss = None

REPO = Path(__file__).resolve().parent.parent
#: (posteriors or None, decisions or None) for the test fold
Output = tuple[np.ndarray | None, np.ndarray | None]
#: fit(P_train, y_train, P_test, train_prior) -> a function giving the test-fold output
Method = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], Callable[[], Output]]


@dataclass
class Dataset:
    """Posteriors, labels and the prior the system was trained under."""

    name: str
    P: np.ndarray
    y: np.ndarray
    classes: list[str]
    train_prior: np.ndarray


def load_example(system: str, examples: Path) -> Dataset:
    """A shipped GoEmotions dev posterior file with its labels and sidecar training prior."""
    aligned = load_aligned([str(examples / f"{system}_dev.csv")], str(examples / "labels_dev.csv"))
    table = aligned.tables[0]
    prior = np.array([table.sidecar.train_prior[c] for c in table.columns])
    return Dataset(f"goemotions/{system}", table.values, aligned.y(), table.columns, prior / prior.sum())


def make_synthetic(n: int = 6000, k: int = 6, dim: int = 8, seed: int = 0) -> Dataset:
    """Overconfident, prior-shifted posteriors: Gaussian classes, trained under an imbalanced prior.

    The "system" computes exact posteriors under the training prior, then sharpens them
    (log-posteriors times 2.5); the evaluation labels are balanced, so both the scale and
    the prior are off.
    """
    rng = np.random.default_rng(seed)
    train_prior = np.array([0.40, 0.25, 0.15, 0.10, 0.06, 0.04])[:k]
    train_prior /= train_prior.sum()
    means = rng.normal(scale=1.1, size=(k, dim))
    y = rng.integers(0, k, size=n)
    x = means[y] + rng.normal(size=(n, dim))
    loglik = -0.5 * ((x[:, None, :] - means[None]) ** 2).sum(axis=2)
    P = softmax(2.5 * (loglik + np.log(train_prior)), axis=1)
    return Dataset("synthetic", P, y, [f"c{i}" for i in range(k)], train_prior)


def sermm_method(make: Callable[[np.ndarray], object], *, fit_on_test: bool = False) -> Method:
    """A sermm calibrator as a benchmark method (``fit_on_test``: fit on the unlabelled test fold)."""

    def fit(P_train, y_train, P_test, train_prior):
        calibrator = make(train_prior)
        if fit_on_test:
            calibrator.fit(P_test)
        else:
            calibrator.fit(P_train, y_train)
        if calibrator.decides:
            return lambda: (None, calibrator.predict(P_test))
        return lambda: (calibrator.transform(P_test), None)

    return fit


def psrcal_method(bias: bool = True) -> Method:
    """psrcal's AffineCalLogLoss (torch) on log-posteriors."""

    def fit(P_train, y_train, P_test, train_prior):
        scores = torch.as_tensor(log_posteriors(P_train))
        model = AffineCalLogLoss(scores, torch.as_tensor(y_train), bias=bias)
        _, _, _, success = model.train()
        if not success:
            raise RuntimeError("psrcal: L-BFGS did not converge")
        test = torch.as_tensor(log_posteriors(P_test))
        return lambda: (np.exp(model.calibrate(test).detach().numpy()), None)

    return fit


def sklearn_method(P_train, y_train, P_test, train_prior):
    """scikit-learn multinomial LogisticRegression (C=1) on log-posteriors: matrix scaling with L2."""
    model = LogisticRegression(max_iter=1000).fit(log_posteriors(P_train), y_train)
    return lambda: (model.predict_proba(log_posteriors(P_test)), None)


def no_calibration(P_train, y_train, P_test, train_prior):
    """The input posteriors as they are."""
    return lambda: (P_test, None)


def methods() -> dict[str, Method]:
    """Every compared method, by display name."""
    table: dict[str, Method] = {
        "none": no_calibration,
        "sermm affine": sermm_method(lambda _: AffineCalibrator()),
        "sermm affine --full": sermm_method(lambda _: AffineCalibrator(scale="matrix")),
        "sermm temperature": sermm_method(lambda _: TemperatureCalibrator()),
        "sermm prior --uniform": sermm_method(lambda p: PriorCalibrator(p, "uniform"), fit_on_test=True),
        "sermm prior --estimate": sermm_method(lambda p: PriorCalibrator(p, "estimate"), fit_on_test=True),
        "sermm thresholds": sermm_method(lambda _: ThresholdCalibrator()),
    }
    if AffineCalLogLoss is not None:
        table["psrcal AffineCalLogLoss"] = psrcal_method()
        table["psrcal temperature"] = psrcal_method(bias=False)
    table["sklearn LogisticRegression"] = sklearn_method
    return table


@dataclass
class Result:
    """Pooled held-out scores of one method on one dataset."""

    macro_f1: float
    nce: float | None
    ece: float | None
    ce: float | None
    fit_s: float


def cross_validate(data: Dataset, method: Method, folds: int, seed: int, repeats: int) -> Result:
    """Fit on k-1 folds, apply to the held-out fold, score the pooled outputs."""
    n, k = data.P.shape
    P_out = np.empty_like(data.P)
    decisions = np.empty(n, dtype=np.int64)
    has_posteriors = True
    fit_s = 0.0
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(data.P, data.y):
        best = np.inf
        for _ in range(repeats):
            start = time.perf_counter()
            predict = method(data.P[train], data.y[train], data.P[test], data.train_prior)
            best = min(best, time.perf_counter() - start)
        fit_s += best
        posteriors, labels = predict()
        if posteriors is None:
            has_posteriors = False
            decisions[test] = labels
        else:
            P_out[test] = posteriors
            decisions[test] = posteriors.argmax(axis=1)
    f1 = macro_f1(data.y, decisions, n_classes=k)
    if not has_posteriors:
        return Result(f1, None, None, None, fit_s)
    return Result(f1, normalized_cross_entropy(P_out, data.y), ece(P_out, data.y),
                  cross_entropy(P_out, data.y), fit_s)


def affine_training_ce(data: Dataset, folds: int, seed: int) -> list[tuple[float, float]]:
    """Per fold, the training log loss reached by sermm affine and by psrcal (same data)."""
    out = []
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, _ in splitter.split(data.P, data.y):
        ours = AffineCalibrator().fit(data.P[train], data.y[train])
        scores = torch.as_tensor(log_posteriors(data.P[train]))
        model = AffineCalLogLoss(scores, torch.as_tensor(data.y[train]))
        model.train()
        theirs = np.exp(model.calibrate(model.scores).detach().numpy())
        out.append((cross_entropy(ours.transform(data.P[train]), data.y[train]),
                    cross_entropy(theirs, data.y[train])))
    return out


def fmt(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def versions() -> str:
    """The library versions the numbers came from."""
    names = ["numpy", "scipy", "scikit-learn", "torch", "psrcal"]
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return f"Python {platform.python_version()}, " + ", ".join(found)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=Path, default=REPO / "examples" / "goemotions")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="time each fit this often, keep the fastest")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS/OpenMP/torch threads for every method (same for all, for fair timings)")
    args = parser.parse_args()
    threadpool_limits(args.threads)
    if torch is not None:
        torch.set_num_threads(args.threads)

    datasets = [load_example(s, args.examples) for s in ("words", "chars", "nb")]
    datasets.append(make_synthetic(seed=args.seed))
    compared = methods()
    print(f"# Calibration benchmark ({args.folds}-fold cross-validation, seed {args.seed}, "
          f"{args.threads} thread(s) for every method)\n")
    print(versions())
    if AffineCalLogLoss is None:
        print("\npsrcal is not installed here: the psrcal rows are missing.")
    checks = []
    for data in datasets:
        n, k = data.P.shape
        print(f"\n## {data.name} ({n} utterances, {k} classes)\n")
        print("| method | macro-F1 | NCE | ECE | fit time (ms, all folds) |")
        print("|---|---|---|---|---|")
        results = {}
        for name, method in compared.items():
            result = cross_validate(data, method, args.folds, args.seed, args.repeats)
            results[name] = result
            print(f"| {name} | {fmt(result.macro_f1)} | {fmt(result.nce)} | {fmt(result.ece)} | "
                  f"{1000 * result.fit_s:.1f} |")
        if "psrcal AffineCalLogLoss" in results:
            ours, theirs = results["sermm affine"], results["psrcal AffineCalLogLoss"]
            held_out = abs(ours.ce - theirs.ce) / theirs.ce
            train = max(abs(a - b) / b for a, b in affine_training_ce(data, args.folds, args.seed))
            speed = theirs.fit_s / ours.fit_s
            ok = held_out < 0.01 and train < 0.01 and ours.fit_s <= theirs.fit_s
            checks.append(ok)
            print(f"\nsermm affine vs psrcal AffineCalLogLoss: held-out CE {ours.ce:.5f} vs {theirs.ce:.5f} "
                  f"(relative difference {held_out:.2e}); largest training-CE difference over folds "
                  f"{train:.2e}; fit {speed:.1f}x faster -> {'PASS' if ok else 'FAIL'}")
    print("\nNCE: cross-entropy / entropy of the label prior (below 1 beats the prior alone). ECE: top-label,"
          " 15 bins. Thresholds change decisions only (no posteriors: NCE/ECE —). prior --estimate is"
          " fitted on the unlabelled held-out fold itself (transductive, as it is meant to be used).")
    return 0 if all(checks) else 1


if __name__ == "__main__":
    sys.exit(main())
