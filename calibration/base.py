"""The calibrator contract: posteriors in, posteriors (or decisions) out, saved as JSON.

Every calibrator has ``fit(P, y)`` (P: (n, k) posteriors in ``classes`` order, y: class
indices), ``transform(P)`` giving new posteriors, ``predict(P)`` giving class indices,
``to_dict()`` and a ``from_dict`` classmethod. A calibrator whose ``decides`` is True
(per-class thresholds) changes decisions, not posteriors: it ends a chain, and the
chain's output is then a decision file ``id,label``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from sermm.errors import SermmError

#: method name -> calibrator class; filled by :func:`register`.
REGISTRY: dict[str, type[Calibrator]] = {}


class Calibrator:
    """Base class: argmax decisions, the registry, and model-file (de)serialisation."""

    method: ClassVar[str] = ""
    decides: ClassVar[bool] = False
    classes_: list[str]

    def transform(self, P: np.ndarray) -> np.ndarray:
        """New posteriors for ``P`` (n, k)."""
        raise NotImplementedError

    def predict(self, P: np.ndarray) -> np.ndarray:
        """Class indices: the argmax of the calibrated posteriors."""
        return np.argmax(self.transform(P), axis=1)

    def to_dict(self) -> dict:
        """The learned state as plain JSON values (``method`` and ``classes`` included)."""
        raise NotImplementedError

    @classmethod
    def from_dict(cls, doc: dict) -> Calibrator:
        """Rebuild a fitted calibrator from :meth:`to_dict` output."""
        raise NotImplementedError


def register(cls: type[Calibrator]) -> type[Calibrator]:
    """Class decorator: make a calibrator loadable by its ``method`` name."""
    REGISTRY[cls.method] = cls
    return cls


def calibrator_from_dict(doc: dict, *, source: str = "model") -> Calibrator:
    """Rebuild any registered calibrator from a model document."""
    import sermm.calibration.methods  # noqa: F401  (registers the calibrators)

    method = doc.get("method")
    if method not in REGISTRY:
        known = ", ".join(sorted(REGISTRY))
        raise SermmError(f"{source}: unknown calibration method '{method}' (known: {known})")
    return REGISTRY[method].from_dict(doc)


def apply_chain(
    P: np.ndarray, classes: list[str], calibrators: list[tuple[str, Calibrator]]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Run posteriors through calibrators in order; return (posteriors, decisions or None).

    ``calibrators`` pairs each calibrator with the file it came from, for error messages.
    A deciding calibrator (thresholds) must come last.
    """
    decisions = None
    for i, (source, calibrator) in enumerate(calibrators):
        if set(calibrator.classes_) != set(classes):
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
