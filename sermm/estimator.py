"""The estimator contract of fusion and calibration: parameters, learned state, checks, model files.

Fusers (N score tables in, one out) and calibrators (one posterior table in, one out) are
estimators in scikit-learn's sense: the constructor arguments are the parameters, stored as
given (``get_params``, ``set_params``, :meth:`Estimator.clone`), ``fit`` returns the estimator,
and what it learns lives in attributes ending in ``_``. On top of that every estimator has:

* ``_parameter_constraints``: what each parameter may be. ``fit`` checks them, and so does
  loading a model file; a bad value raises :class:`ParamError`, whose message names the
  parameter as the API does (a command line renders it with its own flag instead).
* ``prior_``, the class prior its outputs are under after ``fit`` (None: unknown), and
  :meth:`Estimator.output_prior`, the prior its outputs are under given its input's, which a
  chain carries from step to step into the output's sidecar.
* one registry of methods (:func:`register`) and one saved-model layout (:meth:`to_dict`):
  ``method``, ``classes`` (the output columns), ``values`` (what they hold), ``inputs``
  (kind, systems in order, their widths), ``params``, ``state``, ``train_prior`` (= ``prior_``)
  and ``fit`` (where and how it was fitted: files, dev metrics).

A decision step (``decides = True``, per-class thresholds) changes decisions, not values; it
ends a chain.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np

from sermm.errors import SermmError

#: method name -> estimator class, fusers and calibrators alike; filled by :func:`register`.
REGISTRY: dict[str, type[Estimator]] = {}


class ParamError(SermmError):
    """A parameter value its estimator refuses. ``template`` holds ``{name}`` where the parameter
    is named: the API's name in ``str(error)``, a flag where a command line renders it."""

    def __init__(self, param: str, template: str) -> None:
        self.param = param
        self.template = template
        super().__init__(self.render(param))

    def render(self, name: str) -> str:
        """The message with the parameter called ``name``."""
        return self.template.replace("{name}", name)


# --------------------------------------------------------------------------- constraints


@dataclass(frozen=True)
class Interval:
    """A number of ``kind`` (int or float) between ``low`` and ``high`` (None: unbounded)."""

    kind: type
    low: float | None
    high: float | None
    closed: str = "both"  # which ends belong to it: both, left, right, neither

    def accepts(self, value: Any) -> bool:
        numeric = Integral if self.kind is int else Real
        if isinstance(value, bool) or not isinstance(value, numeric):
            return False
        low_open, high_open = self.closed in ("right", "neither"), self.closed in ("left", "neither")
        if self.low is not None and (value < self.low or (value == self.low and low_open)):
            return False
        return not (self.high is not None and (value > self.high or (value == self.high and high_open)))

    def describe(self) -> str:
        what = "an integer" if self.kind is int else "a number"
        if self.high is None and self.low == 0 and self.closed in ("right", "neither"):
            return f"a positive {'integer' if self.kind is int else 'number'}"
        if self.high is None:
            return f"{what} {'>=' if self.closed in ('both', 'left') else '>'} {self.low:g}"
        left = "[" if self.closed in ("both", "left") else "("
        right = "]" if self.closed in ("both", "right") else ")"
        return f"{what} in {left}{self.low:g}, {self.high:g}{right}"


@dataclass(frozen=True)
class Options:
    """One of a few values (strings, None, booleans)."""

    values: tuple

    def __init__(self, *values: Any) -> None:
        object.__setattr__(self, "values", values)

    def accepts(self, value: Any) -> bool:
        return any(value is v or (isinstance(value, str) and value == v) for v in self.values)

    def describe(self) -> str:
        names = [repr(v) if isinstance(v, str) else str(v) for v in self.values]
        return names[0] if len(names) == 1 else "one of " + ", ".join(names)


@dataclass(frozen=True)
class OfType:
    """Any value of ``kinds`` (e.g. ``str``); ``name`` describes it."""

    kinds: tuple
    name: str

    def accepts(self, value: Any) -> bool:
        return isinstance(value, self.kinds) and not (isinstance(value, bool) and bool not in self.kinds)

    def describe(self) -> str:
        return self.name


#: A vector of numbers (a prior over the classes, in class order).
VECTOR = OfType((list, tuple, np.ndarray), "a list of numbers")
TEXT = OfType((str,), "a string")
BOOLEAN = OfType((bool, np.bool_), "True or False")


def check_params(estimator: Estimator) -> None:
    """Raise :class:`ParamError` for the first parameter that none of its constraints accept."""
    params = estimator.get_params()
    for name, allowed in type(estimator)._parameter_constraints.items():
        if name not in params:
            continue
        value = params[name]
        if not any(c.accepts(value) for c in allowed):
            shown = value.tolist() if isinstance(value, np.ndarray) else value
            what = " or ".join(c.describe() for c in allowed)
            raise ParamError(name, f"{{name}} must be {what}, got {shown!r}")


# --------------------------------------------------------------------------- estimators


class Estimator:
    """Base class of fusers and calibrators (see the module docstring).

    Subclasses set ``method``, ``layer`` and ``_parameter_constraints``, implement ``fit``,
    ``transform``, ``_state`` and ``_set_state``, and say how their inputs are recorded
    (``_inputs_doc``, ``_set_inputs``).
    """

    method: ClassVar[str] = ""
    layer: ClassVar[str] = ""
    #: A decision step: ``predict`` gives the decisions and ``transform`` passes values through.
    decides: ClassVar[bool] = False
    #: The outputs stay under the inputs' class prior (a mean, a vote, a temperature...).
    keeps_prior: ClassVar[bool] = False
    _parameter_constraints: ClassVar[dict[str, list]] = {}

    # ----------------------------------------------------------------- parameters

    @classmethod
    def _get_param_names(cls) -> list[str]:
        if cls.__init__ is object.__init__:
            return []
        signature = inspect.signature(cls.__init__)
        return sorted(
            p.name
            for p in signature.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        )

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters and their current values."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params: Any) -> Estimator:
        """Set constructor parameters (as GridSearchCV does); returns self."""
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__} (valid: {valid})")
            setattr(self, name, value)
        return self

    def clone(self, **params: Any) -> Estimator:
        """An unfitted copy with the same parameters, some of them changed."""
        return type(self)(**{**self.get_params(), **params})

    def __sklearn_tags__(self) -> Any:
        # scikit-learn is imported only here, when scikit-learn itself asks: a command that
        # applies a model starts without it.
        from sklearn.base import BaseEstimator

        return BaseEstimator.__sklearn_tags__(self)

    def __repr__(self) -> str:
        names = self._get_param_names()
        defaults = {
            p.name: p.default
            for p in inspect.signature(type(self).__init__).parameters.values()
            if p.name in names
        }
        changed = [
            f"{k}={v!r}"
            for k, v in self.get_params().items()
            if not _same(defaults.get(k, inspect.Parameter.empty), v)
        ]
        return f"{type(self).__name__}({', '.join(changed)})"

    def validate_params(self) -> None:
        """Refuse a parameter none of its constraints accept (:class:`ParamError`); ``fit`` calls it."""
        check_params(self)

    # ----------------------------------------------------------------- fitted state

    @property
    def fitted(self) -> bool:
        """Whether ``fit`` (or a model file) has given it learned state."""
        return any(name.endswith("_") and not name.startswith("_") for name in vars(self))

    def check_fitted(self) -> None:
        """A clear error when the estimator is used before it is fitted."""
        if not self.fitted:
            raise SermmError(f"{self.method}: this {self.layer} estimator is not fitted yet (call fit first)")

    @property
    def classes_(self) -> list[str]:
        """The output columns: class names (or attribute names for attribute fusion)."""
        return self.columns_

    def output_prior(self, prior: np.ndarray | None) -> np.ndarray | None:
        """The class prior the outputs are under when the inputs are under ``prior`` (None: unknown)."""
        return prior if self.keeps_prior else self.prior_

    def transform(self, X: Any) -> np.ndarray:
        """The outputs for inputs ``X``."""
        raise NotImplementedError

    # ----------------------------------------------------------------- model documents

    @property
    def values_(self) -> str:
        """What the output columns hold, in the sidecar's words."""
        return "probability"

    def to_dict(self) -> dict[str, Any]:
        """The fitted estimator as plain JSON values: the body of its model file."""
        self.check_fitted()
        prior = getattr(self, "prior_", None)
        return to_jsonable(
            {
                "layer": self.layer,
                "method": self.method,
                "classes": list(self.columns_),
                "values": self.values_,
                "inputs": self._inputs_doc(),
                "params": self.get_params(),
                "state": self._state(),
                "train_prior": None if prior is None else dict(zip(self.columns_, prior, strict=True)),
                "fit": getattr(self, "fit_info_", {}),
            }
        )

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Estimator:
        """Rebuild a fitted estimator from :meth:`to_dict` output (or a loaded model file).

        A key it lacks raises KeyError and a value it refuses ValueError (``load`` turns both
        into one line naming the file).
        """
        classes = doc["classes"]
        if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
            raise ValueError("'classes' must be a non-empty list of names")
        params = doc["params"]
        if not isinstance(params, dict):
            raise ValueError("'params' must be an object")
        estimator = cls(**params)
        try:
            estimator.validate_params()
        except ParamError as exc:
            raise ValueError(exc.render(f"params '{exc.param}'")) from None
        estimator.columns_ = list(classes)
        estimator._set_inputs(doc["inputs"])
        prior = doc.get("train_prior")
        k = len(classes)
        estimator.prior_ = None if prior is None else state_array(doc, "train_prior", (k,), classes)
        estimator.fit_info_ = dict(doc.get("fit") or {})
        estimator._set_state(doc["state"])
        return estimator

    def save(self, path: str) -> None:
        """Write the fitted estimator as a model file (JSON)."""
        from sermm.modelfile import save_model

        save_model(path, self.to_dict())

    # ----------------------------------------------------------------- for subclasses

    def _inputs_doc(self) -> dict[str, Any]:
        raise NotImplementedError

    def _set_inputs(self, inputs: dict[str, Any]) -> None:
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _set_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.array_equal(a, b)
    return a == b


def register(cls: type[Estimator]) -> type[Estimator]:
    """Class decorator: make an estimator loadable from model files by its ``method`` name."""
    REGISTRY[cls.method] = cls
    return cls


def registered(layer: str | None = None) -> dict[str, type[Estimator]]:
    """Every registered estimator (of one ``layer``), by method name."""
    import sermm.calibration.methods  # noqa: F401  (each method registers itself on import)
    import sermm.fusion.methods  # noqa: F401

    return {m: c for m, c in REGISTRY.items() if layer is None or c.layer == layer}


def estimator_from_dict(doc: dict, *, source: str = "model", layer: str | None = None) -> Estimator:
    """Rebuild any registered estimator from its model document; a malformed one is one line."""
    layer = layer or doc.get("layer")
    known = registered(layer)
    method = doc.get("method")
    what = f"{layer} method" if layer else "method"
    if method not in known:
        raise SermmError(f"{source}: unknown {what} '{method}' (known: {', '.join(sorted(known))})")
    kind = f"{method} {known[method].layer} model"
    try:
        return known[method].from_dict(doc)
    except KeyError as exc:
        raise SermmError(f"{source}: malformed {kind}: missing key {exc}") from None
    except (TypeError, ValueError) as exc:
        raise SermmError(f"{source}: malformed {kind}: {exc}") from None


def load(path: str, layer: str | None = None) -> Estimator:
    """The fitted estimator in model file ``path`` (of ``layer``, when given)."""
    from sermm.modelfile import load_model

    return estimator_from_dict(load_model(path, layer), source=str(path))


# --------------------------------------------------------------------------- helpers


def state_array(
    doc: dict, key: str, shape: tuple[int, ...], names: Sequence[str] | None = None
) -> np.ndarray:
    """``doc[key]`` as finite floats of ``shape`` (a mapping over ``names`` is read in their
    order): a model file edited by hand fails here, not later."""
    value = doc[key]
    if isinstance(value, dict) and names is not None:
        missing = [n for n in names if n not in value]
        if missing:
            raise ValueError(f"'{key}' has no value for {', '.join(missing)}")
        value = [value[n] for n in names]
    array = np.asarray(value, dtype=np.float64)
    if array.shape != shape or not np.isfinite(array).all():
        what = f"{shape[0]} finite numbers" if len(shape) == 1 else f"finite numbers of shape {shape}"
        raise ValueError(f"'{key}' must be {what}, got shape {array.shape}")
    return array


def to_jsonable(value: Any) -> Any:
    """Convert numpy arrays and scalars (recursively) into plain JSON values."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value
