"""The fuser contract: several systems' score tables in, one posterior (or attribute) table out.

A fuser is an N-input :class:`~sermm.estimator.Estimator`. ``fit(X, y)`` learns how to combine
the systems, ``transform(X)`` returns the combined scores, ``predict_proba`` / ``predict``
follow scikit-learn, and ``to_dict`` / :func:`sermm.estimator.estimator_from_dict` save and
rebuild it (method, output classes or attributes, input systems in order, parameters, state).

``X`` is one of: a list of aligned :class:`~sermm.tables.ScoreTable` (one per system, same
ids in the same order), a list of ``(n, k)`` arrays, or an ``(n, m, k)`` array (what
:class:`~sklearn.model_selection.GridSearchCV` can slice). Embedding fusers also take one
``(n, d)`` array of already concatenated embeddings. ``y`` holds class indices (or class
names) for categorical labels, or an ``(n, a)`` array of attribute values.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np

from sermm.classes import class_key, key_index, same_classes
from sermm.errors import SermmError
from sermm.estimator import Estimator
from sermm.metrics import DEV_METRICS, categorical_summary, ccc
from sermm.tables import ScoreTable, shared_train_prior

#: Rows fused at a time (bounded temporaries when applying to large files).
APPLY_ROWS = 1 << 16

def row_chunks(n: int, size: int = APPLY_ROWS) -> Iterator[slice]:
    """Consecutive row slices of at most ``size`` rows covering ``range(n)``."""
    for start in range(0, n, max(1, size)):
        yield slice(start, min(n, start + max(1, size)))


def blocks_of(X: Any) -> tuple[list[np.ndarray], list[ScoreTable] | None]:
    """Split a fuser input into per-system float arrays (views, no copies); also the tables, if any."""
    if isinstance(X, np.ndarray):
        if X.ndim == 3:
            return [X[:, j, :] for j in range(X.shape[1])], None
        if X.ndim == 2:
            return [X], None
        raise ValueError(f"X must be (n, m, k) or (n, d), got shape {X.shape}")
    if isinstance(X, (list, tuple)) and len(X) > 0:
        if all(isinstance(t, ScoreTable) for t in X):
            first = X[0]
            for t in X[1:]:
                if not first.same_ids(t):
                    raise SermmError(
                        f"{t.path or t.system}: ids are not aligned with {first.path or first.system} "
                        "(align the tables by id first, e.g. with sermm.align.load_aligned)"
                    )
            return [np.asarray(t.values, dtype=np.float64) for t in X], list(X)
        arrays = [np.asarray(a, dtype=np.float64) for a in X]
        if any(a.ndim != 2 or len(a) != len(arrays[0]) for a in arrays):
            raise ValueError("X must be a list of (n, k) arrays with the same n")
        return arrays, None
    raise ValueError("X must be a non-empty list of score tables or arrays, or an ndarray")


def take_rows(X: Any, rows: np.ndarray) -> Any:
    """The rows ``rows`` of a fuser input, in the same input form."""
    if isinstance(X, np.ndarray):
        return X[rows]
    if all(isinstance(t, ScoreTable) for t in X):
        return [t.take(rows) for t in X]
    return [np.asarray(a)[rows] for a in X]


def n_rows(X: Any) -> int:
    """Number of rows (utterances) of a fuser input."""
    return len(X) if isinstance(X, np.ndarray) else len(X[0])


def class_prior(y: np.ndarray, k: int) -> np.ndarray:
    """Label frequencies of class indices ``y`` over ``k`` classes."""
    return np.bincount(y, minlength=k) / len(y)


def evaluate(values: np.ndarray, y: np.ndarray, kind: str) -> dict[str, float]:
    """Dev metrics of fused (or single-system) scores: the :data:`~sermm.metrics.DEV_METRICS` of the
    argmax decisions, or CCC per attribute column."""
    if kind == "attribute":
        per = np.atleast_1d(ccc(y, values))
        return {f"ccc_{j}": float(v) for j, v in enumerate(per)}
    k = values.shape[1]
    summary = categorical_summary(y, np.argmax(values, axis=1), n_classes=k)
    return {key: summary[key] for key in DEV_METRICS}


class Fuser(Estimator):
    """Base class: N-input handling, labels, scoring, and the fuser's part of a model file.

    Subclasses set ``method``, the input ``kinds`` they accept, whether they need labels
    (``needs_labels``, with ``why_labels`` saying why), ``_parameter_constraints``, and implement
    ``_fit``, ``_fuse``, ``_state`` and ``_set_state``.

    ``prior_`` is the class prior the fused posteriors are under (for prior rebalancing): the
    dev label frequencies for logistic regression (uniform with balanced class weights), the
    chosen prior for PLDA; a mean, interpolation or vote keeps its inputs' prior
    (``keeps_prior``), so at fit time it is the prior the dev inputs' sidecars agree on, if any.
    ``label_prior_`` holds the dev label frequencies.
    """

    layer = "fusion"
    kinds: ClassVar[tuple[str, ...]] = ("posterior",)
    needs_labels: ClassVar[bool] = True
    why_labels: ClassVar[str] = ""
    #: Whether decision files (``id,label``) may stand for systems, read as one-hot posteriors.
    takes_decisions: ClassVar[bool] = False

    # ----------------------------------------------------------------- public API

    def fit(self, X: Any, y: Any = None, groups: np.ndarray | None = None) -> Fuser:
        """Learn how to combine the systems from development scores ``X`` and labels ``y``."""
        self.validate_params()
        blocks, tables = blocks_of(X)
        self._learn_inputs(blocks, tables, y)
        target = self.encode_labels(y, len(blocks[0]))
        if target is None and self.needs_labels:
            raise SermmError(f"{self.method} {self.why_labels}, so it needs the labels y of the rows of X")
        self.label_prior_ = (
            class_prior(target, len(self.columns_))
            if target is not None and self.output_kind_ == "posterior"
            else None
        )
        self.fit_info_ = {}
        if self.label_prior_ is not None:
            frequencies = zip(self.columns_, self.label_prior_.tolist(), strict=True)
            self.fit_info_["label_frequencies"] = dict(frequencies)
        self.prior_ = self._shared_input_prior(tables)
        self._fit(blocks, target, groups)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """The fused scores: ``(n, k)`` posteriors, or ``(n, a)`` attribute values.

        Computed in chunks of rows, so temporaries stay small whatever the input size.
        """
        blocks = self._check_inputs(X)
        n = len(blocks[0])
        out = np.empty((n, len(self.columns_)), order="F")  # column-major, as the score tables
        for rows in row_chunks(n):
            out[rows] = self._fuse([b[rows] for b in blocks])
        return out

    def predict_proba(self, X: Any) -> np.ndarray:
        """Fused class posteriors, ``(n, k)`` in ``classes_`` order (rows sum to 1)."""
        if self.output_kind_ != "posterior":
            raise SermmError(f"{self.method}: attribute fusion has no class posteriors; use predict")
        return self.transform(X)

    def predict(self, X: Any) -> np.ndarray:
        """Class indices (argmax of the fused posteriors), or fused attribute values."""
        fused = self.transform(X)
        return fused if self.output_kind_ == "attribute" else np.argmax(fused, axis=1)

    def score(self, X: Any, y: Any) -> float:
        """Macro-F1 for classes, mean CCC for attributes (what GridSearchCV maximises by default)."""
        target = self.encode_labels(y, n_rows(X))
        metrics = evaluate(self.transform(X), target, self.output_kind_)
        if self.output_kind_ == "attribute":
            return float(np.mean(list(metrics.values())))
        return metrics["macro_f1"]

    def describe(self) -> str:
        """One line saying what the fitted fuser learned (weights, C, dimensions, ...)."""
        raise NotImplementedError

    @property
    def values_(self) -> str:
        """``regression`` for attribute fusion, else ``probability``."""
        return "regression" if self.output_kind_ == "attribute" else "probability"

    # ----------------------------------------------------------------- model files

    def _inputs_doc(self) -> dict[str, Any]:
        return {
            "kind": self.input_kind_,
            "systems": list(self.systems_),
            "widths": [int(d) for d in self.dims_],
            "by_name": bool(self.named_by_sidecar_),
            "class_subset": bool(getattr(self, "class_subset_", False)),
        }

    def _set_inputs(self, inputs: dict[str, Any]) -> None:
        self.input_kind_ = inputs["kind"]
        if self.input_kind_ not in self.kinds:
            kinds = " or ".join(self.kinds)
            raise ValueError(f"{self.method} fuses {kinds} inputs, not {self.input_kind_!r}")
        self.output_kind_ = "attribute" if self.input_kind_ == "attribute" else "posterior"
        self.systems_ = [str(s) for s in inputs["systems"]]
        self.dims_ = [int(d) for d in inputs["widths"]]
        if len(self.dims_) != len(self.systems_):
            raise ValueError("'inputs' needs one width per system")
        self.named_by_sidecar_ = bool(inputs.get("by_name", False))
        self.class_subset_ = bool(inputs.get("class_subset", False))

    # ----------------------------------------------------------------- for subclasses

    def _fit(self, blocks: list[np.ndarray], y: np.ndarray | None, groups: np.ndarray | None) -> None:
        raise NotImplementedError

    def _fuse(self, blocks: list[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def _state(self) -> dict:
        raise NotImplementedError

    def _set_state(self, state: dict) -> None:
        raise NotImplementedError

    def _output_columns(self, blocks: list[np.ndarray], tables: list[ScoreTable] | None) -> list[str]:
        """Output columns of a posterior/attribute fuser: the tables' columns, else 0..k-1."""
        if tables is not None:
            return list(tables[0].columns)
        return [str(j) for j in range(blocks[0].shape[1])]

    # ----------------------------------------------------------------- internals

    def _learn_inputs(self, blocks: list[np.ndarray], tables: list[ScoreTable] | None, y: Any) -> None:
        """Record the input kind, systems, output columns and per-system widths."""
        if tables is not None:
            kind = tables[0].kind
        elif "embedding" in self.kinds:
            kind = "embedding"
        else:
            y_arr = None if y is None else np.asarray(y)
            kind = "attribute" if y_arr is not None and y_arr.ndim == 2 else "posterior"
        if kind not in self.kinds:
            raise SermmError(
                f"{self.method} fuses {' or '.join(self.kinds)} files, but the inputs hold {kind}s"
            )
        self.input_kind_ = kind
        self.output_kind_ = "attribute" if kind == "attribute" else "posterior"
        self.dims_ = [b.shape[1] for b in blocks]
        if tables is not None:
            self.systems_ = [t.system for t in tables]
            self.named_by_sidecar_ = all(t.sidecar is not None and bool(t.sidecar.system) for t in tables)
        else:
            self.systems_ = [f"system{j + 1}" for j in range(len(blocks))]
            self.named_by_sidecar_ = False
        if len(set(self.systems_)) != len(self.systems_):
            self.systems_ = [f"{s}#{j + 1}" for j, s in enumerate(self.systems_)]
        if kind == "embedding":
            self.columns_ = self._embedding_classes(y)
        else:
            self.columns_ = self._output_columns(blocks, tables)
            if any(b.shape[1] != len(self.columns_) for b in blocks):
                raise ValueError("every system must have the same number of columns")

    def _shared_input_prior(self, tables: list[ScoreTable] | None) -> np.ndarray | None:
        """The ``train_prior`` all input sidecars agree on, over ``columns_`` (renormalised), if any.

        A mean, interpolation or vote of systems trained under one prior keeps that prior;
        learned fusers replace it with the prior they were fitted under.
        """
        if self.output_kind_ != "posterior" or not tables:
            return None
        return shared_train_prior(tables, self.columns_)

    def _embedding_classes(self, y: Any) -> list[str]:
        """Classes of an embedding fuser: the ``classes`` parameter, else the sorted label names."""
        given = getattr(self, "classes", None)
        if given:
            return [c.strip() for c in given.split(",")] if isinstance(given, str) else list(given)
        if y is None:
            raise SermmError(f"{self.method} {self.why_labels}, so it needs the labels y of the rows of X")
        y_arr = np.asarray(y)
        if y_arr.dtype.kind in "iu":
            return [str(j) for j in range(int(y_arr.max()) + 1)]
        return [str(name) for name in np.unique(y_arr.astype(str))]

    def encode_labels(self, y: Any, n: int) -> np.ndarray | None:
        """Labels as class indices (categorical) or an ``(n, a)`` float array (attributes)."""
        if y is None:
            return None
        y_arr = np.asarray(y)
        if len(y_arr) != n:
            raise ValueError(f"y has {len(y_arr)} rows, X has {n}")
        if self.output_kind_ == "attribute":
            y_arr = y_arr.astype(np.float64).reshape(n, -1)
            if y_arr.shape[1] != len(self.columns_):
                raise ValueError(f"y must have {len(self.columns_)} attribute columns")
            return y_arr
        if y_arr.dtype.kind in "iu":
            if n and (y_arr.min() < 0 or y_arr.max() >= len(self.columns_)):
                raise ValueError(f"class indices must lie in [0, {len(self.columns_)})")
            return y_arr.astype(np.int64)
        lookup = key_index(self.columns_)
        names, inverse = np.unique(y_arr.astype(str), return_inverse=True)
        unknown = [name for name in names if class_key(name) not in lookup]
        if unknown:
            raise SermmError(f"unknown class '{unknown[0]}' (classes: {', '.join(self.columns_)})")
        return np.array([lookup[class_key(name)] for name in names], dtype=np.int64)[inverse.ravel()]

    def _check_inputs(self, X: Any) -> list[np.ndarray]:
        """Per-system arrays of ``X``, checked against what the fuser was fitted on."""
        self.check_fitted()
        blocks, tables = blocks_of(X)
        if tables is not None and self.input_kind_ != "embedding":
            blocks = []
            for t in tables:
                if set(t.columns) != set(self.columns_) and not same_classes(t.columns, self.columns_):
                    raise SermmError(
                        f"{t.path or t.system}: columns {', '.join(t.columns)} do not match the "
                        f"fuser's {', '.join(self.columns_)}"
                    )
                ordered = t if t.columns == self.columns_ else t.with_columns(self.columns_)
                blocks.append(ordered.values)
        if self.input_kind_ == "embedding" and len(blocks) == 1 and len(self.dims_) > 1:
            if blocks[0].shape[1] != sum(self.dims_):
                raise ValueError(f"expected {sum(self.dims_)} embedding columns, got {blocks[0].shape[1]}")
            return blocks
        if len(blocks) != len(self.systems_):
            raise SermmError(
                f"{self.method}: fitted on {len(self.systems_)} systems "
                f"({', '.join(self.systems_)}), got {len(blocks)} inputs"
            )
        widths = [b.shape[1] for b in blocks]
        if widths != list(self.dims_):
            raise SermmError(
                f"{self.method}: inputs have {widths} columns, the fuser was fitted on {list(self.dims_)}"
            )
        return blocks
