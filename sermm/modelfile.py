"""Versioned JSON model files for fusers and calibrators: data, never code (no pickle)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from sermm import __version__
from sermm.atomic import write_json
from sermm.errors import SermmError

FORMAT = "sermm-model"
VERSION = 1


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


def save_model(path: str | Path, layer: str, body: dict) -> None:
    """Write a model file: ``{format, version, layer, sermm_version, created, **body}``."""
    document = {
        "format": FORMAT,
        "version": VERSION,
        "layer": layer,
        "sermm_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **to_jsonable(body),
    }
    write_json(path, document)


def load_model(path: str | Path, layer: str | None = None) -> dict:
    """Read and check a model file written by :func:`save_model`."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SermmError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise SermmError(f"{path}: not a JSON model file ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise SermmError(f"{path}: not a sermm model file (no \"format\": \"{FORMAT}\")")
    if document.get("version") != VERSION:
        raise SermmError(
            f"{path}: model file version {document.get('version')} is not supported "
            f"(this sermm reads version {VERSION})"
        )
    if layer is not None and document.get("layer") != layer:
        raise SermmError(f"{path}: a {document.get('layer')} model, expected a {layer} model")
    return document


def from_registry(registry: dict[str, Any], doc: dict, *, layer: str, source: str) -> Any:
    """Rebuild a registered fuser or calibrator from its model document; a malformed one is one line."""
    method = doc.get("method")
    if method not in registry:
        known = ", ".join(sorted(registry))
        raise SermmError(f"{source}: unknown {layer} method '{method}' (known: {known})")
    try:
        return registry[method].from_dict(doc)
    except KeyError as exc:
        raise SermmError(f"{source}: malformed {method} {layer} model: missing key {exc}") from None
    except (TypeError, ValueError) as exc:
        raise SermmError(f"{source}: malformed {method} {layer} model: {exc}") from None
