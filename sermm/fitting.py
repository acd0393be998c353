"""Fitting on files: read development scores and labels, fit, score, cross-validate, save, write.

What ``sermm-fuse METHOD`` and ``sermm-calibrate METHOD`` do between parsing their options and
printing, as functions a notebook or a system's training script can call::

    fit = fit_fusion(LogRegFuser(), ["a_dev.csv", "t_dev.csv"], "dev_labels.csv", cv=5)
    fit.save("fusion.json")
    fit.write("fused_dev.csv")      # with its sidecar (train_prior, inputs, models)
    fit.rows                        # [(label, {"macro_f1": ..., "ua": ..., "wa": ...}), ...]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sermm.align import Aligned, load_aligned
from sermm.chain import Chain, Output
from sermm.errors import SermmError
from sermm.estimator import Estimator
from sermm.tables import ScoreTable, parse_classes


@dataclass
class FusionFit:
    """A fuser fitted on development files, with its dev metrics and out-of-fold scores."""

    fuser: Any
    aligned: Aligned
    inputs: list[str]
    fused: np.ndarray
    oof: np.ndarray | None = None
    rows: list[tuple[str, dict]] = field(default_factory=list)
    saved: str | None = None

    def save(self, path: str, *, class_subset: bool = False) -> None:
        """Write the fitted fuser as a model file (``class_subset``: the inputs were cut to its classes)."""
        self.fuser.class_subset_ = class_subset and self.fuser.input_kind_ == "posterior"
        self.fuser.fit_info_ = {**self.fuser.fit_info_, "files": list(self.inputs)}
        self.fuser.save(path)
        self.saved = path

    def output(self, values: np.ndarray | None = None, **extra: Any) -> Output:
        """The fused development scores (or ``values``, e.g. the out-of-fold ones) with their sidecar."""
        fused = self.fused if values is None else values
        out = Chain([self.fuser], [self.saved]).apply(self.aligned.tables, self.inputs, fused=fused)
        out.sidecar.extra.update(extra)
        return out

    def write(self, path: str) -> None:
        """Write the fused development scores with their sidecar."""
        self.output().write(path)

    def write_cv(self, path: str) -> None:
        """Write the out-of-fold development scores (``cross_validated`` in the sidecar)."""
        if self.oof is None:
            raise SermmError("no out-of-fold scores: fit with cv or groups")
        self.output(self.oof, cross_validated=True).write(path)


def fuser_labels(fuser: Any, aligned: Aligned, classes: str | list[str] | None) -> Any:
    """The labels of the aligned rows in the form the fuser takes: class indices, attribute
    values, or class names for embedding fusers (whose ``classes`` parameter is set here)."""
    if aligned.labels is None:
        return None
    kind = aligned.tables[0].kind
    if kind == "attribute":
        return aligned.labels.require_attributes(aligned.columns)
    if kind == "embedding":
        labels = aligned.labels.require_categorical()
        subset = parse_classes(classes) if isinstance(classes, str) else classes
        fuser.set_params(classes=",".join(subset or [str(c) for c in np.unique(labels.astype(str))]))
        return labels
    return aligned.y()


def fit_fusion(
    fuser: Any,
    inputs: list[str],
    labels: str | None = None,
    *,
    scores: str = "auto",
    classes: str | list[str] | None = None,
    split: str | None = None,
    on_missing: str = "error",
    groups: str | None = None,
    cv: int | None = None,
    seed: int = 0,
) -> FusionFit:
    """Fit ``fuser`` on development score files (and labels), with dev metrics per system and of
    the fusion; with ``cv`` folds or a ``groups`` file (id,group), also the cross-validated
    metrics and the out-of-fold scores (grouped folds with ``groups``, 5 unless ``cv`` says)."""
    from sermm.fusion.base import evaluate
    from sermm.fusion.cv import cross_val_fuse, make_folds
    from sermm.fusion.io import read_groups

    if not fuser.takes_decisions:
        from sermm.labels import is_label_file

        decided = next((p for p in inputs if is_label_file(p)), None)
        if decided is not None:
            raise SermmError(f"{decided}: holds decisions (id,label), not scores; {fuser.method} fuses "
                             "posterior files (sermm-fuse vote takes decision files)")
    aligned = load_aligned(inputs, labels, scores=scores, classes=classes, split=split,  # type: ignore[arg-type]
                           on_missing=on_missing, decisions=fuser.takes_decisions)  # type: ignore[arg-type]
    tables = aligned.tables
    kind = tables[0].kind
    if kind not in fuser.kinds:
        kinds = " or ".join(fuser.kinds)
        raise SermmError(f"{fuser.method} fuses {kinds} files, but {tables[0].path} holds {kind}s")
    y = fuser_labels(fuser, aligned, classes)
    group_ids = read_groups(groups, aligned.ids) if groups else None
    fuser.fit(tables, y, group_ids)
    fit = FusionFit(fuser, aligned, list(inputs), fuser.transform(tables))
    n = len(tables[0])
    dev: dict[str, Any] = {"rows": n}
    target = fuser.encode_labels(y, n)
    if target is not None:
        if kind != "embedding":
            dev["inputs"] = {t.system: evaluate(t.values, target, fuser.output_kind_) for t in tables}
            fit.rows += list(dev["inputs"].items())
        dev["fit"] = evaluate(fit.fused, target, fuser.output_kind_)
        fit.rows.append((f"fusion-{fuser.method} (fit on all dev)", dev["fit"]))
        if cv is not None or group_ids is not None:
            k = cv if cv is not None else 5
            folds = make_folds(target if fuser.output_kind_ != "attribute" else None, n_splits=k,
                               groups=group_ids, seed=seed, n=n)
            fit.oof = cross_val_fuse(fuser, tables, y, folds, groups=group_ids)
            dev["cv"] = {"folds": k, "grouped": group_ids is not None,
                         **evaluate(fit.oof, target, fuser.output_kind_)}
            how = f"{k}-fold {'grouped ' if group_ids is not None else ''}CV"
            fit.rows.append((f"fusion-{fuser.method} ({how})", dev["cv"]))
    fuser.fit_info_ = {**fuser.fit_info_, "dev_metrics": dev}
    return fit


@dataclass
class CalibrationData:
    """A posterior file to calibrate (all rows) and, with labels, its labelled rows to fit and score on."""

    table: ScoreTable
    labels: str | None = None
    P_dev: np.ndarray | None = None
    y: np.ndarray | None = None

    @classmethod
    def load(cls, path: str, labels: str | None = None, *, scores: str = "auto",
             classes: str | list[str] | None = None, split: str | None = None,
             on_missing: str = "error") -> CalibrationData:
        """Read the posterior file, and the labelled rows when ``labels`` is given."""
        table = load_aligned([path], None, kind="posterior", scores=scores, classes=classes).tables[0]  # type: ignore[arg-type]
        data = cls(table, labels)
        if labels:
            aligned = load_aligned([path], labels, kind="posterior", scores=scores, classes=classes,  # type: ignore[arg-type]
                                   split=split, on_missing=on_missing)  # type: ignore[arg-type]
            data.P_dev, data.y = aligned.tables[0].values, aligned.y()
        return data

    @property
    def classes(self) -> list[str]:
        """The input's classes, in its column order."""
        return self.table.columns

    def require_labels(self, method: str) -> tuple[np.ndarray, np.ndarray]:
        """The labelled posteriors and their label indices, or a clear error."""
        if self.y is None or self.P_dev is None:
            raise SermmError(f"{method}: labels are needed to fit (pass --labels FILE)")
        present = np.unique(self.y)
        if len(present) < 2:
            raise SermmError(f"{self.labels}: every labelled row is '{self.classes[present[0]]}'; "
                             f"{method} needs labels of at least two classes")
        return self.P_dev, self.y

    def fit(self, calibrator: Estimator, *, unlabelled: bool = False) -> Estimator:
        """Fit ``calibrator`` on the labelled rows, or on every row when ``unlabelled`` (a prior
        rebalancer, which needs no labels)."""
        if unlabelled:
            calibrator.fit(self.table.values, classes=self.classes)
        else:
            P, y = self.require_labels(calibrator.method)
            calibrator.fit(P, y, classes=self.classes)
        calibrator.systems_ = [self.table.system]
        calibrator.fit_info_ = {**calibrator.fit_info_, "files": [self.table.path], "labels": self.labels}
        return calibrator

    def output(self, calibrator: Estimator, saved: str | None = None) -> Output:
        """The calibrated input (every row), with its sidecar."""
        return Chain([calibrator], [saved]).apply([self.table])
