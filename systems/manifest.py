"""Manifests: which utterances a system trains on or scores, and their labels.

A manifest is a CSV (or Parquet) file ``id,path,label`` for audio or ``id,text,label`` for
text, with optional ``arousal,valence,dominance`` and ``speaker`` columns; or the MSP-Podcast
``labels_consensus.csv`` (FileName, EmoClass, EmoAct, EmoVal, EmoDom, SpkrID, Split_Set) with a
split, an audio root and, for text, a transcript file ``id,text``. The label inventory of a
run (its classes, their training counts and prior) is read from the training manifest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sermm.errors import SermmError
from sermm.msp import CODE_TO_CLASS
from sermm.sidecar import read_sidecar
from sermm.systems.heads import ATTRIBUTES
from sermm.tables import MSP_ATTRIBUTE_NAMES, find_id_column, numeric_matrix, read_arrow

#: MSP-Podcast classes that are trained on but not written to posterior files.
SECONDARY = ("other", "no_agreement")
#: The MSP-Podcast class order (the letter codes' order), used when every label is an MSP class.
MSP_ORDER = list(CODE_TO_CLASS.values())


@dataclass
class Manifest:
    """Utterances in file order: ids, where each came from, labels, attributes, speakers, inputs."""

    source: str
    ids: np.ndarray
    lines: np.ndarray
    labels: np.ndarray | None = None
    attributes: np.ndarray | None = None
    speakers: np.ndarray | None = None
    paths: np.ndarray | None = None
    texts: np.ndarray | None = None
    #: What the inputs carry besides (e.g. ``asr_model`` from the transcript file's sidecar).
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def where(self, row: int) -> str:
        """How to name row ``row`` in a message: ``file: line N (id 'x')``."""
        return f"{self.source}: line {int(self.lines[row])} (id '{self.ids[row]}')"

    def take(self, rows: np.ndarray) -> Manifest:
        """A manifest of the given rows, in that order."""

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[rows]

        return replace(
            self,
            ids=self.ids[rows],
            lines=self.lines[rows],
            labels=pick(self.labels),
            attributes=pick(self.attributes),
            speakers=pick(self.speakers),
            paths=pick(self.paths),
            texts=pick(self.texts),
        )

    def require_targets(self, task: str) -> None:
        """Every row must have what ``task`` trains on: a label, or all three attributes."""
        if task == "attributes":
            if self.attributes is None:
                raise SermmError(
                    f"{self.source}: the attribute task needs arousal, valence and dominance columns "
                    "(or EmoAct, EmoVal, EmoDom)"
                )
            bad = np.flatnonzero(~np.isfinite(self.attributes).all(axis=1))
            if bad.size:
                raise SermmError(f"{self.where(int(bad[0]))}: missing attribute value")
            return
        if self.labels is None:
            raise SermmError(f"{self.source}: no 'label' column (or MSP-Podcast 'EmoClass')")
        empty = np.flatnonzero(self.labels == "")
        if empty.size:
            raise SermmError(f"{self.where(int(empty[0]))}: empty label")


def _strings(table: pa.Table, name: str) -> np.ndarray:
    """A column as an object array of Python strings, nulls as ''."""
    column = pc.fill_null(table.column(name).cast(pa.string()), "")
    return np.asarray(column.to_pylist(), dtype=object)


def _first(names: list[str], *candidates: str) -> str | None:
    return next((c for c in candidates if c in names), None)


def read_manifest(
    path: str | Path,
    *,
    need: str | None = None,
    split: str | None = None,
    audio_root: str | Path | None = None,
    transcripts: str | Path | None = None,
) -> Manifest:
    """Read a manifest; ``need`` is "path" (audio), "text" (text) or "path+text" (both, for
    multimodal systems): the columns a system reads.

    Relative audio paths are taken from ``audio_root`` if given, else from the manifest's folder;
    an MSP-Podcast file's ``FileName`` is looked up under ``audio_root``. Text comes from the
    ``text`` column or from ``transcripts`` (``id,text``, matched by id); an empty transcript is
    kept as an empty string, a missing one is an error.
    """
    path = Path(path)
    table = read_arrow(path)
    names = table.column_names
    lines = np.arange(table.num_rows) + 2
    msp = "EmoClass" in names or "Split_Set" in names
    if split is not None:
        if "Split_Set" not in names:
            raise SermmError(f"{path}: --split needs a 'Split_Set' column (the MSP-Podcast layout)")
        keep = pc.equal(table.column("Split_Set").cast(pa.string()), split)
        rows = np.flatnonzero(keep.to_numpy(zero_copy_only=False))
        if rows.size == 0:
            found = sorted(set(table.column("Split_Set").cast(pa.string()).to_pylist()) - {None})
            raise SermmError(f"{path}: no rows with Split_Set '{split}' (found: {', '.join(found)})")
        table, lines = table.take(rows), lines[rows]
    elif "Split_Set" in names:
        found = sorted(set(table.column("Split_Set").cast(pa.string()).to_pylist()) - {None})
        raise SermmError(f"{path}: has a Split_Set column: pass --split (one of {', '.join(found)})")

    id_col = find_id_column(table, path)
    ids = _strings(table, id_col)
    manifest = Manifest(str(path), ids, lines)
    _check_ids(manifest)

    label_col = _first(names, "label", "EmoClass")
    if label_col is not None:
        labels = np.array([s.strip() for s in _strings(table, label_col)], dtype=object)
        if label_col == "EmoClass":
            labels = _decode_codes(labels, manifest)
        manifest.labels = labels
    msp_names = {n: m for m, n in MSP_ATTRIBUTE_NAMES.items()}
    attribute_cols = [_first(names, a, msp_names[a]) for a in ATTRIBUTES]
    if all(attribute_cols):
        manifest.attributes = numeric_matrix(table, attribute_cols, path)
    speaker_col = _first(names, "speaker", "SpkrID")
    if speaker_col is not None:
        manifest.speakers = _strings(table, speaker_col)

    needs = set((need or "").split("+"))  # "path", "text", or both: "path+text"
    if "path" in needs:
        manifest.paths = _audio_paths(table, names, manifest, path, audio_root, msp)
    if "text" in needs:
        if transcripts is not None:
            manifest.texts, manifest.extra = _read_transcripts(transcripts, manifest)
        elif "text" in names:
            manifest.texts = _strings(table, "text")
        else:
            hint = " and a transcript file (--transcripts id,text)" if msp else ""
            layout = "an audio+text manifest is id,path,text,label" if "path" in needs else (
                "a text manifest is id,text,label"
            )
            raise SermmError(f"{path}: no 'text' column ({layout}{hint})")
    return manifest


def _check_ids(manifest: Manifest) -> None:
    """Ids must be present and unique."""
    ids = manifest.ids
    empty = np.flatnonzero(ids == "")
    if empty.size:
        raise SermmError(f"{manifest.source}: line {int(manifest.lines[empty[0]])}: empty id")
    uniq, first, counts = np.unique(ids.astype(str), return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1][0]
        rows = np.flatnonzero(ids == dup)[:2]
        where = ", ".join(f"line {int(manifest.lines[r])}" for r in rows)
        raise SermmError(f"{manifest.source}: duplicate id '{dup}' ({where})")


def _decode_codes(codes: np.ndarray, manifest: Manifest) -> np.ndarray:
    """MSP-Podcast EmoClass letter codes as sermm class names."""
    uniq, inverse = np.unique(codes.astype(str), return_inverse=True)
    unknown = [u for u in uniq if u not in CODE_TO_CLASS]
    if unknown:
        row = int(np.flatnonzero(codes == unknown[0])[0])
        raise SermmError(
            f"{manifest.where(row)}: unknown EmoClass code '{unknown[0]}' (known: {', '.join(CODE_TO_CLASS)})"
        )
    return np.array([CODE_TO_CLASS[u] for u in uniq], dtype=object)[inverse.ravel()]


def _audio_paths(
    table: pa.Table,
    names: list[str],
    manifest: Manifest,
    path: Path,
    audio_root: str | Path | None,
    msp: bool,
) -> np.ndarray:
    """The audio file of every row, resolved: absolute as given, relative from the root."""
    if "path" in names:
        raw = _strings(table, "path")
    elif msp and audio_root is not None:
        raw = manifest.ids.copy()
    else:
        hint = "; for an MSP-Podcast labels file pass --audio-root (its Audios folder)" if msp else ""
        raise SermmError(f"{path}: no 'path' column (an audio manifest is id,path,label{hint})")
    empty = np.flatnonzero(raw == "")
    if empty.size:
        raise SermmError(f"{manifest.where(int(empty[0]))}: empty path")
    root = Path(audio_root) if audio_root is not None else path.resolve().parent
    return np.array([p if os.path.isabs(p) else str(root / p) for p in raw], dtype=object)


def _read_transcripts(path: str | Path, manifest: Manifest) -> tuple[np.ndarray, dict[str, Any]]:
    """Each manifest id's transcript from an ``id,text`` file, and what its sidecar says of the ASR."""
    path = Path(path)
    table = read_arrow(path)
    if "text" not in table.column_names:
        raise SermmError(f"{path}: no 'text' column (a transcript file is id,text)")
    source = Manifest(str(path), _strings(table, find_id_column(table, path)), np.arange(table.num_rows) + 2)
    _check_ids(source)
    import pandas as pd

    where = pd.Index(source.ids).get_indexer(manifest.ids)
    missing = manifest.ids[where < 0]
    if missing.size:
        shown = ", ".join(f"'{i}'" for i in missing[:3])
        raise SermmError(
            f"{path}: no transcript for {len(missing)} id(s) of {manifest.source} (e.g. {shown}); "
            "give every utterance a row (an empty text is fine)"
        )
    sidecar = read_sidecar(path)
    extra: dict[str, Any] = {"transcripts": str(path)}
    if sidecar is not None:
        extra["asr_model"] = sidecar.extra.get("model_id") or sidecar.system
    return _strings(table, "text")[where], extra


@dataclass
class Inventory:
    """A run's outputs: the training classes (model order) and their counts, or the attributes."""

    task: str
    classes: list[str] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    attributes: list[str] = field(default_factory=lambda: list(ATTRIBUTES))

    @classmethod
    def from_manifest(cls, manifest: Manifest, task: str) -> Inventory:
        """The inventory of a training manifest (MSP classes in MSP order, others sorted)."""
        manifest.require_targets(task)
        if task == "attributes":
            return cls(task)
        names, counts = np.unique(manifest.labels.astype(str), return_counts=True)
        if len(names) < 2:
            raise SermmError(f"{manifest.source}: every label is '{names[0]}'; training needs two classes")
        found = dict(zip(names.tolist(), counts.tolist(), strict=True))
        order = [c for c in MSP_ORDER if c in found] if set(found) <= set(MSP_ORDER) else sorted(found)
        return cls(task, order, [int(found[c]) for c in order])

    @property
    def n_outputs(self) -> int:
        """The model's output size: classes, or the three attributes."""
        return len(self.attributes) if self.task == "attributes" else len(self.classes)

    @property
    def primary(self) -> list[str]:
        """The classes written to posterior files: the training classes, without O and X when they
        are MSP-Podcast classes (every class an MSP one)."""
        if not set(self.classes) <= set(MSP_ORDER):
            return list(self.classes)
        return [c for c in self.classes if c not in SECONDARY]

    def prior(self, classes: list[str] | None = None) -> dict[str, float]:
        """The training class frequencies over ``classes`` (default: all), renormalised over them."""
        classes = self.classes if classes is None else classes
        counts = np.array([self.counts[self.classes.index(c)] for c in classes], dtype=np.float64)
        return {c: float(n) for c, n in zip(classes, counts / counts.sum(), strict=True)}

    def output_prior(self, classes: list[str], class_weighted: bool) -> dict[str, float]:
        """The prior a trained system's posteriors are under: the training frequencies, or with
        inverse-frequency class weights (which make every class weigh the same in the loss) uniform
        over the classes seen in training. ``sermm-calibrate prior`` reads it from the sidecar."""
        if not class_weighted:
            return self.prior(classes)
        seen = np.array([self.counts[self.classes.index(c)] > 0 for c in classes], dtype=np.float64)
        return {c: float(p) for c, p in zip(classes, seen / seen.sum(), strict=True)}

    def encode(self, manifest: Manifest) -> np.ndarray:
        """The labels of ``manifest`` as class indices; a label outside the inventory is an error."""
        manifest.require_targets(self.task)
        if self.task == "attributes":
            return manifest.attributes.astype(np.float32)
        lookup = {c: j for j, c in enumerate(self.classes)}
        names, inverse = np.unique(manifest.labels.astype(str), return_inverse=True)
        unknown = [n for n in names if n not in lookup]
        if unknown:
            row = int(np.flatnonzero(manifest.labels == unknown[0])[0])
            raise SermmError(
                f"{manifest.where(row)}: label '{unknown[0]}' is not a training class "
                f"({', '.join(self.classes)})"
            )
        return np.array([lookup[n] for n in names], dtype=np.int64)[inverse.ravel()]

    def to_dict(self) -> dict[str, Any]:
        """What labels.json holds."""
        doc: dict[str, Any] = {"task": self.task}
        if self.task == "attributes":
            doc["attributes"] = list(self.attributes)
        else:
            doc.update(
                classes=list(self.classes),
                counts=list(self.counts),
                train_prior=self.prior(),
                primary=self.primary,
            )
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Inventory:
        """The inventory saved by :meth:`to_dict`."""
        if doc["task"] == "attributes":
            return cls("attributes", attributes=list(doc["attributes"]))
        return cls(doc["task"], list(doc["classes"]), [int(n) for n in doc["counts"]])
