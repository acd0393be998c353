"""The calibrator contract: one posterior table in, posteriors (or decisions) out.

A calibrator is a one-input :class:`~sermm.estimator.Estimator`: ``fit(P, y, classes=...)``
(P: (n, k) posteriors in ``classes`` order, or a posterior :class:`~sermm.tables.ScoreTable`;
y: class indices), ``transform(P)`` giving new posteriors and ``predict(P)`` giving class
indices. A calibrator whose ``decides`` is True (per-class thresholds) changes decisions,
not posteriors: it ends a chain (:mod:`sermm.chain`), whose output is then a decision file
``id,label``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sermm.errors import SermmError
from sermm.estimator import Estimator
from sermm.tables import ScoreTable


class Calibrator(Estimator):
    """Base class: input checks, argmax decisions, and the calibrator's part of a model file."""

    layer = "calibration"

    def fit(self, P: np.ndarray | ScoreTable, y: np.ndarray | None = None, *,
            classes: list[str] | None = None) -> Calibrator:
        """Learn from posteriors ``P`` (n, k) and labels ``y``; returns self."""
        raise NotImplementedError

    def transform(self, P: np.ndarray) -> np.ndarray:
        """New posteriors for ``P`` (n, k)."""
        raise NotImplementedError

    def predict(self, P: np.ndarray) -> np.ndarray:
        """Class indices: the argmax of the calibrated posteriors."""
        return np.argmax(self.transform(P), axis=1)

    def _start_fit(self, P: np.ndarray | ScoreTable, y: np.ndarray | None, classes: list[str] | None, *,
                   need_labels: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Check the parameters and the inputs of ``fit``; set ``columns_`` and the input system."""
        self.validate_params()
        system = "system1"
        if isinstance(P, ScoreTable):
            classes, system, P = P.columns, P.system, P.values
        P = check_posteriors(P)
        k = P.shape[1]
        if classes is None:
            classes = [str(i) for i in range(k)]
        if len(classes) != k:
            raise ValueError(f"{len(classes)} class names for {k} posterior columns")
        self.columns_ = list(classes)
        self.systems_ = [system]
        self.fit_info_ = {}
        if y is None:
            if need_labels:
                raise SermmError(f"{self.method}: labels are needed to fit (y)")
            return P, None
        y = np.asarray(y)
        if y.shape != (P.shape[0],) or y.dtype.kind not in "iu" or (y.size and (y.min() < 0 or y.max() >= k)):
            raise ValueError(f"y must hold {P.shape[0]} class indices in [0, {k})")
        return P, y.astype(np.int64)

    def _checked(self, P: np.ndarray) -> np.ndarray:
        """``P`` as float64 posteriors with as many columns as the calibrator has classes."""
        self.check_fitted()
        P = np.asarray(P, dtype=np.float64)
        if P.ndim != 2 or P.shape[1] != len(self.columns_):
            raise ValueError(f"expected posteriors of shape (n, {len(self.columns_)}), got {P.shape}")
        return P

    def _inputs_doc(self) -> dict[str, Any]:
        return {"kind": "posterior", "systems": list(self.systems_), "widths": [len(self.columns_)]}

    def _set_inputs(self, inputs: dict[str, Any]) -> None:
        if inputs.get("kind") != "posterior":
            raise ValueError(f"a calibrator's inputs are posteriors, not {inputs.get('kind')!r}")
        self.systems_ = [str(s) for s in inputs["systems"]]


def check_posteriors(P: np.ndarray) -> np.ndarray:
    """``P`` as a float64 (n, k) array with at least one row."""
    P = np.asarray(P, dtype=np.float64)
    if P.ndim != 2 or P.shape[0] == 0 or P.shape[1] == 0:
        raise ValueError(f"posteriors must have shape (n, k) with n, k >= 1, got {P.shape}")
    return P
