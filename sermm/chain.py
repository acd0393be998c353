"""A chain: a fitted fusion model followed by any calibrators, applied as one model.

``sermm-fuse apply MODEL --then CAL...`` and ``sermm-calibrate apply CAL... -i FILE`` both
build a :class:`Chain` and run it, so both write the same output and the same sidecar: the
system name grows by ``+<method>`` per calibrator, the class prior is carried through every
step (:meth:`sermm.estimator.Estimator.output_prior`), and ``inputs`` / ``models`` name the
original score files and every model applied, in order. A chain can be saved as one model
file (layer ``chain``) and applied like any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sermm.align import Aligned, load_aligned
from sermm.classes import positions, same_classes
from sermm.errors import SermmError
from sermm.estimator import Estimator, estimator_from_dict, to_jsonable
from sermm.modelfile import load_model, save_model
from sermm.priors import sidecar_prior
from sermm.sidecar import Sidecar
from sermm.tables import ScoreTable, shared_train_prior, write_decisions, write_scores


class Chain:
    """Estimators applied in order: at most one fuser, first; a decision step only last.

    ``sources`` names the model file each step came from (for messages and the sidecar).
    """

    def __init__(self, steps: Sequence[Estimator], sources: Sequence[str | None] | None = None) -> None:
        self.steps = list(steps)
        self.sources = list(sources) if sources is not None else [None] * len(self.steps)
        if not self.steps:
            raise SermmError("a chain needs at least one model")
        for i, (step, source) in enumerate(zip(self.steps, self.sources, strict=True)):
            name = source or step.method
            step.check_fitted()
            if step.layer == "fusion" and i > 0:
                raise SermmError(f"{name}: a fusion model can only start a chain")
            if step.decides and i != len(self.steps) - 1:
                raise SermmError(f"{name}: a decision rule ({step.method}) must come last")
        fuser = self.fuser
        if fuser is not None and self.calibrators and fuser.output_kind_ != "posterior":
            raise SermmError(
                f"{self.sources[1] or self.calibrators[0].method}: calibrators calibrate class posteriors; "
                "attribute fusion has none"
            )

    @property
    def fuser(self) -> Estimator | None:
        """The fusion model that starts the chain, if any."""
        return self.steps[0] if self.steps[0].layer == "fusion" else None

    @property
    def calibrators(self) -> list[Estimator]:
        """The calibration steps, in order."""
        return self.steps[1:] if self.fuser is not None else list(self.steps)

    @classmethod
    def load(cls, paths: Sequence[str], first: str | None = None) -> Chain:
        """The chain of the model files ``paths`` (fusion, calibration or chain files), in order.

        ``first`` is the layer the chain must start with (``fusion`` or ``calibration``); every
        file after the first must hold calibrators.
        """
        steps: list[Estimator] = []
        sources: list[str | None] = []
        for i, path in enumerate(paths):
            doc = load_model(path)
            parts = doc["steps"] if doc.get("layer") == "chain" else [doc]
            if not isinstance(parts, list) or not parts or not all(isinstance(p, dict) for p in parts):
                raise SermmError(f"{path}: malformed chain model: 'steps' must be a list of models")
            want = first if i == 0 and first is not None else "calibration" if i > 0 else None
            if want is not None and parts[0].get("layer") != want:
                raise SermmError(f"{path}: a {parts[0].get('layer')} model, expected a {want} model")
            for part in parts:
                steps.append(estimator_from_dict(part, source=str(path)))
                sources.append(str(path))
        return cls(steps, sources)

    def to_dict(self) -> dict:
        """The chain as the body of one model file: its steps' documents, in order."""
        return to_jsonable({"layer": "chain", "steps": [step.to_dict() for step in self.steps]})

    def save(self, path: str) -> None:
        """Write the chain as one model file."""
        save_model(path, self.to_dict())

    def run(self, P: np.ndarray, classes: list[str], prior: np.ndarray | None = None) -> Applied:
        """Run posteriors ``P`` (columns ``classes``, under ``prior``) through the calibrators.

        Each calibrator sees the columns in its own class order; the result is in ``classes``
        order. A fuser at the head of the chain is not run here (it takes score tables).
        """
        decisions = None
        first = len(self.steps) - len(self.calibrators)
        for step, source in zip(self.calibrators, self.sources[first:], strict=True):
            if not same_classes(step.classes_, classes):
                raise SermmError(
                    f"{source or step.method}: calibrated for classes {', '.join(step.classes_)}, "
                    f"but the scores have {', '.join(classes)}"
                )
            order = np.array(positions(step.classes_, classes))
            prior = step.output_prior(None if prior is None else prior[order])
            if prior is not None:
                prior = prior[np.argsort(order)]
            if step.decides:
                decisions = order[step.predict(P[:, order])]
            else:
                calibrated = np.empty_like(P)
                calibrated[:, order] = step.transform(P[:, order])
                P = calibrated
        return Applied(P, decisions, prior)


    def read(
        self,
        paths: Sequence[str],
        *,
        scores: str = "auto",
        classes: list[str] | None = None,
        on_missing: str = "error",
        systems: dict[str, str] | None = None,
    ) -> Aligned:
        """Read the chain's inputs: the fuser's systems (checked against it and aligned by id), or
        the one posterior file the calibrators calibrate (``classes`` keeps a subset).

        ``systems`` maps each of the fuser's systems to its file (then ``paths`` is not used);
        without it, inputs are matched to the systems by sidecar or file name
        (:func:`sermm.fusion.io.order_by_system`)."""
        fuser = self.fuser
        if fuser is not None:
            from sermm.fusion.io import read_for_fuser

            return read_for_fuser(list(paths), fuser, self.sources[0] or fuser.method, scores=scores,
                                  on_missing=on_missing, systems_by_name=systems)
        if len(paths) != 1:
            raise SermmError(f"calibrators take one posterior file, got {len(paths)}")
        return load_aligned(list(paths), kind="posterior", scores=scores, classes=classes)  # type: ignore[arg-type]

    def apply(self, tables: list[ScoreTable], paths: Sequence[str] | None = None, *,
              fused: np.ndarray | None = None) -> Output:
        """Run the chain on aligned input ``tables`` (read from ``paths``, which the sidecar names).

        ``fused`` is the fuser's output on ``tables`` when it is already at hand (it is not
        computed again). The values entering the calibrators are kept (``Output.start``): the
        fused scores, or the calibrated file's own.
        """
        paths = [t.path for t in tables] if paths is None else list(paths)
        fuser = self.fuser
        first = tables[0]
        if fuser is not None:
            start = fuser.transform(tables) if fused is None else fused
            columns, kind = list(fuser.columns_), fuser.output_kind_
            prior = None if kind != "posterior" else fuser.output_prior(shared_train_prior(tables, columns))
            system = f"fusion-{fuser.method}"
            inputs, models = [str(p) for p in paths], []
        else:
            start, columns, kind = first.values, list(first.columns), "posterior"
            prior = sidecar_prior(first)
            system = first.system
            upstream = first.sidecar
            if upstream is not None and upstream.models:  # a file sermm made: carry its history
                inputs, models = list(upstream.inputs), list(upstream.models)
            else:
                inputs, models = [str(p) for p in paths], []
        applied = self.run(start, columns, prior)
        for source in self.sources:
            if source is not None and (not models or models[-1] != source):
                models.append(source)
        system = "+".join([system, *(c.method for c in self.calibrators)])
        if kind == "attribute":
            sidecar = Sidecar(system=system, values="regression", inputs=inputs, models=models,
                              extra={"attributes": columns})
        else:
            train_prior = None
            if applied.prior is not None:
                train_prior = dict(zip(columns, applied.prior.tolist(), strict=True))
            sidecar = Sidecar(system=system, classes=columns, values="probability", train_prior=train_prior,
                              inputs=inputs, models=models)
        table = ScoreTable(first.id_column, applied.values, columns, kind)  # type: ignore[arg-type]
        return Output(table, start, applied.decisions, sidecar)


@dataclass
class Applied:
    """What the calibrators give: the values, the decisions (a decision step ended them), the prior."""

    values: np.ndarray
    decisions: np.ndarray | None
    prior: np.ndarray | None


@dataclass
class Output:
    """A chain's output: the final ``table``, the values that entered the calibrators, the
    decisions (when a decision step ended the chain) and the sidecar of the output file."""

    table: ScoreTable
    start: np.ndarray
    decisions: np.ndarray | None
    sidecar: Sidecar

    @property
    def labels(self) -> np.ndarray | None:
        """The decided class names, when a decision step ended the chain."""
        if self.decisions is None:
            return None
        return np.asarray(self.table.columns, dtype=object)[self.decisions]

    def write(self, path: str) -> None:
        """Write the scores with their sidecar, or the decisions as ``id,label`` (no sidecar)."""
        if self.decisions is not None:
            write_decisions(self.table.id_column, self.labels, path)
        else:
            write_scores(self.table, path, sidecar=self.sidecar)
