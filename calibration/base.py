"""The calibrator contract: posteriors in, posteriors (or decisions) out, saved as JSON.

Every calibrator has ``fit(P, y, classes=...)`` (P: (n, k) posteriors in ``classes``
order, y: class indices), ``transform(P)`` giving new posteriors, ``predict(P)`` giving
class indices, ``to_dict()`` and a ``from_dict`` classmethod. A calibrator whose
``decides`` is True (per-class thresholds) changes decisions, not posteriors: it ends a
chain, and the chain's output is then a decision file ``id,label``.

The model document of every calibrator is ``{"method", "classes", "params"}``: ``params``
holds the options and the learned state, as plain JSON numbers and lists.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from sermm.errors import SermmError
from sermm.modelfile import from_registry

#: method name -> calibrator class; filled by :func:`register`.
REGISTRY: dict[str, type[Calibrator]] = {}


class Calibrator:
    """Base class: argmax decisions, the registry, and model-file (de)serialisation.

    Estimator style (options in ``__init__``, learned state in attributes ending in ``_``,
    ``fit`` returns self) without scikit-learn's BaseEstimator, whose import alone would
    double the start-up time of ``sermm-calibrate``.
    """

    method: ClassVar[str] = ""
    decides: ClassVar[bool] = False
    classes_: list[str]

    def fit(self, P: np.ndarray, y: np.ndarray | None = None, *, classes: list[str] | None = None):
        """Learn from posteriors ``P`` (n, k) and labels ``y``; returns self."""
        raise NotImplementedError

    def transform(self, P: np.ndarray) -> np.ndarray:
        """New posteriors for ``P`` (n, k)."""
        raise NotImplementedError

    def predict(self, P: np.ndarray) -> np.ndarray:
        """Class indices: the argmax of the calibrated posteriors."""
        return np.argmax(self.transform(P), axis=1)

    def output_prior(self, prior: np.ndarray | None) -> np.ndarray | None:
        """The class prior the outputs are under, given the prior of the inputs (None: unknown)."""
        return prior

    def to_dict(self) -> dict:
        """The learned state as plain JSON values: ``{"method", "classes", "params"}``."""
        return {"method": self.method, "classes": list(self.classes_), "params": self._params()}

    @classmethod
    def from_dict(cls, doc: dict) -> Calibrator:
        """Rebuild a fitted calibrator from :meth:`to_dict` output."""
        classes = doc["classes"]
        params = doc["params"]
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes) or not classes:
            raise ValueError("'classes' must be a non-empty list of class names")
        if not isinstance(params, dict):
            raise ValueError("'params' must be an object")
        calibrator = cls._from_params(params, len(classes))
        calibrator.classes_ = list(classes)
        return calibrator

    def _params(self) -> dict:
        """Options and learned state for the model file (subclasses)."""
        raise NotImplementedError

    @classmethod
    def _from_params(cls, params: dict, k: int) -> Calibrator:
        """A fitted calibrator from the ``params`` of a model file with ``k`` classes (subclasses)."""
        raise NotImplementedError

    def _start_fit(self, P: np.ndarray, y: np.ndarray | None, classes: list[str] | None, *,
                   need_labels: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Check the inputs of ``fit`` and set ``classes_``."""
        P = check_posteriors(P)
        k = P.shape[1]
        if classes is None:
            classes = [str(i) for i in range(k)]
        if len(classes) != k:
            raise ValueError(f"{len(classes)} class names for {k} posterior columns")
        self.classes_ = list(classes)
        if y is None:
            if need_labels:
                raise SermmError(f"{self.method}: labels are needed to fit (pass --labels FILE)")
            return P, None
        y = np.asarray(y)
        if y.shape != (P.shape[0],) or y.dtype.kind not in "iu" or (y.size and (y.min() < 0 or y.max() >= k)):
            raise ValueError(f"y must hold {P.shape[0]} class indices in [0, {k})")
        return P, y.astype(np.int64)


def check_posteriors(P: np.ndarray) -> np.ndarray:
    """``P`` as a float64 (n, k) array with at least one row."""
    P = np.asarray(P, dtype=np.float64)
    if P.ndim != 2 or P.shape[0] == 0 or P.shape[1] == 0:
        raise ValueError(f"posteriors must have shape (n, k) with n, k >= 1, got {P.shape}")
    return P


def vector_param(params: dict, key: str, k: int) -> np.ndarray:
    """A length-``k`` float vector from a model file's params."""
    value = np.asarray(params[key], dtype=np.float64)
    if value.shape != (k,) or not np.all(np.isfinite(value)):
        raise ValueError(f"'{key}' must be {k} finite numbers")
    return value


def register(cls: type[Calibrator]) -> type[Calibrator]:
    """Class decorator: make a calibrator loadable by its ``method`` name."""
    REGISTRY[cls.method] = cls
    return cls


def calibrator_from_dict(doc: dict, *, source: str = "model") -> Calibrator:
    """Rebuild any registered calibrator from a model document; a malformed one is a clear error."""
    import sermm.calibration.methods  # noqa: F401  (registers the calibrators)

    return from_registry(REGISTRY, doc, layer="calibration", source=source)


def apply_chain(
    P: np.ndarray, classes: list[str], calibrators: list[tuple[str, Calibrator]]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Run posteriors through calibrators in order; return (posteriors, decisions or None).

    ``calibrators`` pairs each calibrator with the file it came from, for error messages.
    A deciding calibrator (thresholds) must come last.
    """
    decisions = None
    for i, (source, calibrator) in enumerate(calibrators):
        if set(calibrator.classes_) != set(classes) or len(calibrator.classes_) != len(classes):
            raise SermmError(
                f"{source}: calibrated for classes {', '.join(calibrator.classes_)}, "
                f"but the scores have {', '.join(classes)}"
            )
        order = np.array([classes.index(c) for c in calibrator.classes_])
        if calibrator.decides:
            if i != len(calibrators) - 1:
                raise SermmError(f"{source}: a decision rule ({calibrator.method}) must come last")
            decisions = order[calibrator.predict(P[:, order])]
        else:
            calibrated = np.empty_like(P)
            calibrated[:, order] = calibrator.transform(P[:, order])
            P = calibrated
    return P, decisions
