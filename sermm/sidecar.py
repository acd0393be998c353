"""Sidecars: the ``<file>.meta.json`` beside a score file, read and written by this one module.

A sidecar says what produced a score file and how to read it: the ``system`` name, the
``classes`` (column order of a posterior file), the ``values`` kind (``probability``,
``logit``, ``regression`` or ``embedding``), ``train_prior`` (the class prior the values are
under now, read by prior rebalancing), the ``inputs`` and ``models`` that made it, ``created``,
and free ``extra`` keys (``model_id``, ``config_hash``, ``source``...), which are written flat
beside the known ones.

Paths in ``inputs`` and ``models`` are stored relative to the sidecar's folder (``..`` where
needed; absolute only when the two share no folder but the root), and :func:`read_sidecar`
turns them back into paths usable from the current directory, so a tree of score files and
models can move as a whole.

>>> Sidecar(system="audio", classes=["angry", "sad"], train_prior={"angry": 0.25, "sad": 0.75},
...         created="2025-01-01T00:00:00+00:00").to_dict()["train_prior"]
{'angry': 0.25, 'sad': 0.75}
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from sermm.atomic import write_json
from sermm.errors import SermmError

VALUE_KINDS = ("probability", "logit", "regression", "embedding")
#: Spellings other toolkits write, read as the kind they mean.
VALUE_ALIASES = {"logits": "logit", "probabilities": "probability", "posterior": "probability"}


def sidecar_path(path: str | Path) -> Path:
    """The sidecar path of a score file: ``<file>.meta.json``."""
    return Path(f"{path}.meta.json")


def now() -> str:
    """The current UTC time as ISO 8601 to the second (the ``created`` stamp)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Sidecar:
    """What a score file holds and where it came from (see the module docstring)."""

    system: str | None = None
    classes: list[str] | None = None
    values: str = "probability"
    train_prior: dict[str, float] | None = None
    inputs: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    created: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The sidecar as one flat JSON object (``extra`` keys beside the known ones)."""
        known = {f.name for f in fields(self)} - {"extra"}
        clash = sorted(known & set(self.extra))
        if clash:
            raise ValueError(f"extra keys {', '.join(clash)} clash with sidecar fields")
        doc: dict[str, Any] = {"system": self.system}
        if self.classes is not None:
            doc["classes"] = list(self.classes)
        doc["values"] = self.values
        if self.train_prior is not None:
            doc["train_prior"] = {str(c): float(p) for c, p in self.train_prior.items()}
        if self.inputs:
            doc["inputs"] = list(self.inputs)
        if self.models:
            doc["models"] = list(self.models)
        doc.update(self.extra)
        doc["created"] = self.created or now()
        return doc

    @classmethod
    def from_dict(cls, doc: Any, *, source: str = "sidecar") -> Sidecar:
        """A sidecar from its JSON object; keys it does not know go to ``extra``."""
        if not isinstance(doc, dict):
            raise SermmError(f"{source}: expected a JSON object")
        values = doc.get("values", "probability")
        values = VALUE_ALIASES.get(values, values) if isinstance(values, str) else values
        if values not in VALUE_KINDS:
            raise SermmError(
                f"{source}: 'values' must be 'probability' or 'logit' (or 'regression', 'embedding' "
                f"for attribute and embedding files), got {values!r}"
            )
        classes = doc.get("classes")
        named = isinstance(classes, list) and all(isinstance(c, str) for c in classes)
        if classes is not None and not named:
            raise SermmError(f"{source}: 'classes' must be a list of class names")
        prior = doc.get("train_prior")
        if prior is not None and not isinstance(prior, (dict, list)):
            raise SermmError(f"{source}: 'train_prior' must be an object {{class: probability}}")
        if isinstance(prior, list):  # a list in the order of 'classes'
            if classes is None or len(classes) != len(prior):
                raise SermmError(f"{source}: a 'train_prior' list needs 'classes' of the same length")
            prior = dict(zip(classes, prior, strict=True))
        models = doc.get("models") or []
        if not models and isinstance(doc.get("model"), str) and doc["model"]:
            models = [doc["model"]]  # the one model that sermm 0.1's fusion outputs named under "model"
        known = ({f.name for f in fields(cls)} - {"extra"}) | {"model"}
        return cls(
            system=None if doc.get("system") is None else str(doc["system"]),
            classes=classes,
            values=values,
            train_prior=prior,
            inputs=[str(p) for p in doc.get("inputs") or []],
            models=[str(p) for p in models],
            created=doc.get("created"),
            extra={k: v for k, v in doc.items() if k not in known},
        )

    def prior_over(self, classes: list[str]) -> np.ndarray | None:
        """``train_prior`` as a vector over ``classes`` (renormalised over them), or None when the
        sidecar has none, lacks one of the classes, or holds something other than numbers."""
        if not self.train_prior:
            return None
        from sermm.classes import class_key

        try:
            keyed = {class_key(c): p for c, p in self.train_prior.items()}
            prior = np.array([float(keyed[class_key(c)]) for c in classes])
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        if not np.all(np.isfinite(prior)) or np.any(prior < 0) or prior.sum() <= 0:
            return None
        return prior / prior.sum()


def read_sidecar(path: str | Path) -> Sidecar | None:
    """The sidecar of score file ``path``, or None when it has none.

    Relative ``inputs`` and ``models`` are joined to the file's folder, so they name the same
    files from here.
    """
    target = sidecar_path(path)
    if not target.exists():
        return None
    try:
        doc = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SermmError(f"{target}: not valid JSON ({exc})") from None
    sidecar = Sidecar.from_dict(doc, source=str(target))
    folder = Path(path).parent
    sidecar.inputs = [from_file(p, folder) for p in sidecar.inputs]
    sidecar.models = [from_file(p, folder) for p in sidecar.models]
    return sidecar


def from_file(stored: str, folder: Path) -> str:
    """A path stored in a sidecar of ``folder``, as a path usable from the current directory."""
    if os.path.isabs(stored):
        return stored
    return os.path.normpath(folder / stored)


def relative_to_file(paths: list[str], path: str | Path) -> list[str]:
    """``paths`` relative to the folder of ``path`` (with ``..`` where needed), or absolute where
    they share no folder but the root."""
    folder = Path(path).resolve().parent
    out = []
    for p in paths:
        resolved = Path(p).resolve()
        shared = os.path.commonpath([folder, resolved])
        out.append(str(resolved) if shared == folder.anchor else os.path.relpath(resolved, folder))
    return out


def write_sidecar(path: str | Path, sidecar: Sidecar) -> None:
    """Write the sidecar of score file ``path`` atomically, its paths made relative to the file."""
    doc = sidecar.to_dict()
    for key in ("inputs", "models"):
        if key in doc:
            doc[key] = relative_to_file(doc[key], path)
    write_json(sidecar_path(path), doc)
