"""Versioned JSON model files for fusers, calibrators and chains: data, never code (no pickle).

A model file is ``{format, version, layer, sermm_version, created}`` followed by the body an
estimator's ``to_dict`` gives (:mod:`sermm.estimator`) or, for a chain, its ``steps``. Files of
version 1 (sermm 0.1) are read too: fusion models are rewritten into the current layout as
they load; a calibration model of version 1 is refused with one line saying to refit it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sermm import __version__
from sermm.atomic import write_json
from sermm.errors import SermmError
from sermm.estimator import to_jsonable
from sermm.sidecar import now

FORMAT = "sermm-model"
VERSION = 2
LAYERS = ("fusion", "calibration", "chain")


def save_model(path: str | Path, body: dict[str, Any]) -> None:
    """Write a model file: ``{format, version, layer, sermm_version, created, **body}``."""
    body = to_jsonable(body)
    document = {
        "format": FORMAT,
        "version": VERSION,
        "layer": body["layer"],
        "sermm_version": __version__,
        "created": now(),
        **{k: v for k, v in body.items() if k != "layer"},
    }
    write_json(path, document)


def read_model(path: str | Path) -> dict[str, Any]:
    """The JSON document of a model file, checked to be one (any version)."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SermmError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise SermmError(f"{path}: not a JSON model file ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise SermmError(f"{path}: not a sermm model file (no \"format\": \"{FORMAT}\")")
    return document


def load_model(path: str | Path, layer: str | tuple[str, ...] | None = None) -> dict[str, Any]:
    """Read and check a model file (of ``layer``, or one of several), upgraded to this version."""
    document = read_model(path)
    version = document.get("version")
    if version == 1:
        document = upgrade_v1(document, path)
    elif version != VERSION:
        raise SermmError(
            f"{path}: model file version {version} is not supported "
            f"(this sermm reads versions 1 and {VERSION})"
        )
    wanted = (layer,) if isinstance(layer, str) else layer
    if wanted is not None and document.get("layer") not in wanted:
        raise SermmError(f"{path}: a {document.get('layer')} model, expected a {' or '.join(wanted)} model")
    return document


def upgrade_v1(doc: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """A version-1 fusion model in the current layout (its ``state`` is unchanged)."""
    if doc.get("layer") != "fusion":
        method = doc.get("method", "METHOD")
        raise SermmError(
            f"{path}: a {doc.get('layer')} model from sermm 0.1 (model file version 1), which this sermm "
            f"cannot read: refit it (sermm-calibrate {method} ... --save {Path(path).name})"
        )
    try:
        attributes = "attributes" in doc
        fit = {
            "dev_metrics": doc.get("dev_metrics"),
            "label_frequencies": doc.get("dev_label_frequencies"),
            "files": doc.get("inputs"),
        }
        return {
            "format": FORMAT,
            "version": VERSION,
            "layer": "fusion",
            "sermm_version": doc.get("sermm_version"),
            "created": doc.get("created"),
            "method": doc["method"],
            "classes": doc["attributes"] if attributes else doc["classes"],
            "values": "regression" if attributes else "probability",
            "inputs": {
                "kind": doc["input_kind"],
                "systems": doc["systems"],
                "widths": doc["dims"],
                "by_name": bool(doc.get("system_names_from_sidecar", False)),
                "class_subset": bool(doc.get("class_subset", False)),
            },
            "params": doc.get("params", {}),
            "state": doc["state"],
            "train_prior": doc.get("train_prior"),
            "fit": {k: v for k, v in fit.items() if v is not None},
        }
    except KeyError as exc:
        raise SermmError(f"{path}: malformed fusion model (version 1): missing key {exc}") from None
