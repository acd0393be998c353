"""Sidecars: the ``<file>.meta.json`` beside a score file, read and written by this one module.

A sidecar says what produced a score file and how to read it: the ``system`` name, the
``classes`` (column order of a posterior file), the ``values`` kind (``probability``,
``logit``, ``regression`` or ``embedding``), ``train_prior`` (the class prior the values are
under now, read by prior rebalancing), the ``inputs`` and ``models`` that made it (paths
relative to the file's folder when they lie below it), ``created``, and free ``extra`` keys
(``model_id``, ``config_hash``, ``source``...), which are written beside the known ones.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sermm.atomic import write_json
from sermm.errors import SermmError

VALUE_KINDS = ("probability", "logit", "regression", "embedding")


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
    def from_dict(cls, doc: dict[str, Any], *, source: str = "sidecar") -> Sidecar:
        """A sidecar from its JSON object; keys it does not know go to ``extra``."""
        if not isinstance(doc, dict):
            raise SermmError(f"{source}: expected a JSON object")
        values = doc.get("values", "probability")
        if values not in VALUE_KINDS and values not in ("logits", "probabilities", "posterior"):
            raise SermmError(f"{source}: 'values' must be one of {', '.join(VALUE_KINDS)}, got {values!r}")
        classes = doc.get("classes")
        names_ok = isinstance(classes, list) and all(isinstance(c, str) for c in classes)
        if classes is not None and not names_ok:
            raise SermmError(f"{source}: 'classes' must be a list of class names")
        prior = doc.get("train_prior")
        if prior is not None and not isinstance(prior, (dict, list)):
            raise SermmError(f"{source}: 'train_prior' must be an object {{class: probability}}")
        if isinstance(prior, list):  # a list in the order of 'classes'
            if classes is None or len(classes) != len(prior):
                raise SermmError(f"{source}: a 'train_prior' list needs 'classes' of the same length")
            prior = dict(zip(classes, prior, strict=True))
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(
            system=None if doc.get("system") is None else str(doc["system"]),
            classes=classes,
            values=values,
            train_prior=prior,
            inputs=[str(p) for p in doc.get("inputs") or []],
            models=[str(p) for p in doc.get("models") or []],
            created=doc.get("created"),
            extra={k: v for k, v in doc.items() if k not in known},
        )


def read_sidecar(path: str | Path) -> Sidecar | None:
    """The sidecar of score file ``path``, or None when it has none."""
    target = sidecar_path(path)
    if not target.exists():
        return None
    try:
        doc = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SermmError(f"{target}: not valid JSON ({exc})") from None
    return Sidecar.from_dict(doc, source=str(target))


def relative_to_file(paths: list[str], path: str | Path) -> list[str]:
    """``paths`` relative to the folder of ``path`` where they lie inside it, else as given."""
    folder = Path(path).resolve().parent
    out = []
    for p in paths:
        resolved = Path(p).resolve()
        inside = resolved == folder or folder in resolved.parents
        out.append(os.path.relpath(resolved, folder) if inside else str(p))
    return out


def write_sidecar(path: str | Path, sidecar: Sidecar) -> None:
    """Write the sidecar of score file ``path`` atomically, its paths made relative to the file."""
    doc = sidecar.to_dict()
    for key in ("inputs", "models"):
        if key in doc:
            doc[key] = relative_to_file(doc[key], path)
    write_json(sidecar_path(path), doc)
