"""Label files: ``id,label``; ``id,arousal,valence,dominance``; MSP-Podcast labels_consensus.csv."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from sermm.classes import CODE_TO_CLASS, class_key, is_non_challenge, key_index, ox_hint
from sermm.errors import SermmError
from sermm.tables import (
    ATTRIBUTES,
    EXTRA_COLUMNS,
    MSP_ATTRIBUTE_NAMES,
    ScoreTable,
    check_ids,
    find_id_column,
    header_names,
    is_id_name,
    numeric_matrix,
    read_arrow,
)

#: Columns of a label file (the MSP-Podcast layout's among them), besides the id.
LABEL_FILE_COLUMNS = ("label", "EmoClass", "Split_Set", "SpkrID", "Gender", *MSP_ATTRIBUTE_NAMES, *ATTRIBUTES)


@dataclass
class LabelTable:
    """Reference labels keyed by id: a categorical ``label`` and/or attribute values."""

    ids: np.ndarray
    labels: np.ndarray | None = None
    attributes: np.ndarray | None = None
    attribute_names: tuple[str, ...] = ()
    path: str | None = None
    #: The file's Split_Set values when it has that column and no split was chosen (for hints).
    splits: tuple[str, ...] | None = None

    def take(self, rows: np.ndarray) -> LabelTable:
        """A label table with only the given rows, in that order."""
        return replace(
            self,
            ids=self.ids[rows],
            labels=None if self.labels is None else self.labels[rows],
            attributes=None if self.attributes is None else self.attributes[rows],
        )

    def require_categorical(self) -> np.ndarray:
        """The categorical labels, or a clear error when the file has none."""
        if self.labels is None:
            raise SermmError(f"{self.path}: no categorical 'label' (or 'EmoClass') column")
        return self.labels

    def require_attributes(self, names: list[str]) -> np.ndarray:
        """The attribute values for ``names`` (in that order), or a clear error."""
        missing = [n for n in names if n not in self.attribute_names]
        if self.attributes is None or missing:
            raise SermmError(f"{self.path}: no reference values for {', '.join(missing or names)}")
        return self.attributes[:, [self.attribute_names.index(n) for n in names]]

    def indices(self, classes: list[str], *, what: str = "label") -> np.ndarray:
        """Map the categorical labels to indices into ``classes``; unknown classes are an error.

        ``what`` names the values in that error: "label" for references, "decision" for
        a system's decision file.
        """
        labels = self.require_categorical()
        lookup = key_index(classes)
        uniq, inverse = np.unique(labels, return_inverse=True)
        unknown = [u for u in uniq if class_key(u) not in lookup]
        if unknown:
            raise SermmError(self.unknown_class_message(unknown, classes, what=what))
        return np.array([lookup[class_key(u)] for u in uniq], dtype=np.int64)[inverse]

    def unknown_class_message(self, unknown: list[str], classes: list[str], *, what: str = "label") -> str:
        """The error for labels of classes the scores lack; for MSP's O/X it says how to drop them."""
        value = unknown[0]
        row = int(np.flatnonzero(self.labels == value)[0])
        problem = (
            f"unknown class '{value}'" if what == "label" else f"{what} '{value}' is not one of the classes"
        )
        message = (
            f"{self.path}: id '{self.ids[row]}': {problem} (the scores' classes are: {', '.join(classes)})"
        )
        if what == "label" and all(is_non_challenge(u) for u in unknown):
            count = int(np.count_nonzero([is_non_challenge(v) for v in self.labels]))
            message += f"; {count} row(s) are O/X: " + ox_hint(classes)
            if self.splits:
                message += f", and pick one Split_Set with --split ({', '.join(self.splits)})"
        return message

    def within(self, classes: list[str]) -> np.ndarray:
        """A boolean mask of the rows labelled with one of ``classes`` (by alias, any case)."""
        keys = {class_key(c) for c in classes}
        labels = self.require_categorical()
        uniq, inverse = np.unique(labels, return_inverse=True)
        return np.array([class_key(u) in keys for u in uniq], dtype=bool)[inverse]

    def __len__(self) -> int:
        return len(self.ids)


def label_column(names: list[str]) -> str | None:
    """The categorical label column of a header: ``label``, else MSP's ``EmoClass``, else either
    in another case (``Label``, ``emoclass``); None when there is none."""
    for wanted in ("label", "EmoClass"):
        if wanted in names:
            return wanted
    for wanted in ("label", "emoclass"):
        for name in names:
            if name.strip().casefold() == wanted:
                return name
    return None


def is_label_file(path: str | Path) -> bool:
    """Whether a file is a label or decision file (``id,label``, MSP's layout) rather than a
    posterior file that carries an extra ``label`` column beside its class columns.

    The header decides when it has no ``label``/``EmoClass`` column, or nothing but label-file
    columns; otherwise a numeric column that is not a label-file column makes it a score file.
    """
    names = header_names(path)
    if label_column(names) is None:
        return False
    known = {n.casefold() for n in (*LABEL_FILE_COLUMNS, *EXTRA_COLUMNS)}
    others = [n for n in names if not is_id_name(n) and n.strip().casefold() not in known]
    if not others:
        return True
    import pyarrow as pa

    table = read_arrow(path)
    numeric = [n for n in others if pa.types.is_floating(table.column(n).type)
               or pa.types.is_integer(table.column(n).type)]
    return not numeric


def read_labels(path: str | Path, *, split: str | None = None) -> LabelTable:
    """Read a label file; MSP-Podcast's layout is read as is, ``split`` picks its ``Split_Set``."""
    path = Path(path)
    table = read_arrow(path)
    id_col = find_id_column(table, path)
    names = table.column_names
    splits = None
    if split is None and "Split_Set" in names:
        found = table.column("Split_Set").cast("string").unique().drop_null().to_pylist()
        splits = tuple(sorted(found)) if len(found) > 1 else None
    if split is not None:
        if "Split_Set" not in names:
            raise SermmError(f"{path}: --split needs a 'Split_Set' column (MSP-Podcast layout)")
        column = table.column("Split_Set").cast("string")
        chosen = table.filter(pc.equal(column, split))
        if chosen.num_rows == 0:  # "development" for "Development"
            same = [v for v in set(column.to_pylist()) - {None} if v.casefold() == split.strip().casefold()]
            if same:
                chosen = table.filter(pc.equal(column, same[0]))
        table = chosen
        if table.num_rows == 0:
            found = sorted(set(column.to_pylist()) - {None})
            raise SermmError(
                f"{path}: no rows with Split_Set '{split}' (found: {', '.join(found)})"
            )
    ids = table.column(id_col).to_numpy(zero_copy_only=False)
    check_ids(ids, path)
    labels = None
    column_name = label_column(names)
    if column_name is not None:
        raw = table.column(column_name).cast("string")
        labels = np.asarray(raw.to_numpy(zero_copy_only=False), dtype=object)
        empty = np.flatnonzero([v is None or v == "" for v in labels]) if labels.size else []
        if len(empty):
            raise SermmError(f"{path}: row {int(empty[0]) + 1}: empty label")
        if labels.size and any(mark in str(labels[0]) for mark in ",["):
            raise SermmError(
                f"{path}: column '{column_name}' holds lists ({str(labels[0])[:30]!r}), not class names: is "
                "this the MSP-Podcast baseline's results file? Convert it with sermm-data convert --from "
                "msp-baseline FILE --output scores.csv --labels-output labels.csv"
            )
        if column_name.strip().casefold() == "emoclass":
            labels = _decode_msp(labels, path)
    attr_cols = [c for c in names if MSP_ATTRIBUTE_NAMES.get(c, c) in ATTRIBUTES]
    attributes = numeric_matrix(table, attr_cols, path) if attr_cols else None
    attribute_names = tuple(MSP_ATTRIBUTE_NAMES.get(c, c) for c in attr_cols)
    if labels is None and attributes is None:
        raise SermmError(
            f"{path}: no label columns: expected 'label', or arousal/valence/dominance, "
            "or the MSP-Podcast EmoClass/EmoAct/EmoVal/EmoDom"
        )
    return LabelTable(ids, labels, attributes, attribute_names, str(path), splits)


def _decode_msp(codes: np.ndarray, path: Path) -> np.ndarray:
    """Turn MSP-Podcast letter codes into sermm class names."""
    uniq, inverse = np.unique(codes, return_inverse=True)
    unknown = [u for u in uniq if u.strip().upper() not in CODE_TO_CLASS]
    if unknown:
        raise SermmError(
            f"{path}: unknown EmoClass code '{unknown[0]}' (known: {', '.join(CODE_TO_CLASS)})"
        )
    return np.array([CODE_TO_CLASS[u.strip().upper()] for u in uniq], dtype=object)[inverse]


def read_decisions_one_hot(path: str | Path, classes: list[str]) -> ScoreTable:
    """A decision file ``id,label`` as one-hot posterior rows over ``classes``, so that a vote
    counts each decision as it counts the argmax of a posterior file (BSC-UPC voted their
    systems' thresholded decisions). A decision outside ``classes`` is an error."""
    from sermm.sidecar import read_sidecar

    decisions = read_labels(path)
    values = np.zeros((len(decisions.ids), len(classes)))
    values[np.arange(len(decisions.ids)), decisions.indices(classes, what="decision")] = 1.0
    return ScoreTable(decisions.ids, values, list(classes), "posterior", read_sidecar(path), str(path))


def decision_classes(paths: list[str | Path]) -> list[str]:
    """The classes of decision files read without a posterior file beside them: the first one's
    sidecar ``classes``, else every decision made, sorted."""
    from sermm.sidecar import read_sidecar

    sidecar = read_sidecar(paths[0])
    if sidecar is not None and sidecar.classes:
        return list(sidecar.classes)
    found = np.concatenate([read_labels(p).require_categorical() for p in paths])
    return sorted(set(found.astype(str).tolist()))
