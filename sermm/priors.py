"""Class priors: parse them from the command line, a JSON file or a mapping, and check them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sermm.errors import SermmError


def check_prior(prior: np.ndarray, k: int, name: str = "prior", *, positive: bool = False) -> np.ndarray:
    """A prior as a float vector of length ``k`` that sums to 1 (normalised here)."""
    prior = np.asarray(prior, dtype=np.float64)
    if prior.shape != (k,):
        raise SermmError(f"{name}: expected {k} class probabilities, got shape {prior.shape}")
    if not np.all(np.isfinite(prior)) or np.any(prior < 0) or prior.sum() <= 0:
        raise SermmError(f"{name}: class probabilities must be finite, non-negative and not all 0")
    if positive and np.any(prior <= 0):
        raise SermmError(f"{name}: every class needs a positive probability (class {int(np.argmin(prior))})")
    return prior / prior.sum()


def prior_from_mapping(
    value: object,
    classes: list[str],
    source: str,
    listed: list | None = None,
    *,
    positive: bool = False,
    only_classes: bool = False,
) -> np.ndarray:
    """A prior over ``classes`` from ``{class: p}``, or from a list in the order ``listed``.

    Classes of the mapping outside ``classes`` are ignored (the prior is renormalised over
    ``classes``, as the posteriors are by --classes), or an error with ``only_classes``; a
    class it lacks is an error, and so is a zero with ``positive``.
    """
    if isinstance(value, list) and listed is not None and len(value) == len(listed):
        value = dict(zip(listed, value, strict=True))
    if not isinstance(value, dict):
        raise SermmError(f"{source}: a prior must be an object {{class: probability}}")
    unknown = [str(c) for c in value if c not in classes]
    if only_classes and unknown:
        raise SermmError(f"{source}: unknown class {', '.join(unknown)} (classes: {', '.join(classes)})")
    missing = [c for c in classes if c not in value]
    if missing:
        raise SermmError(f"{source}: the prior has no probability for class {', '.join(missing)}")
    try:
        prior = np.array([float(value[c]) for c in classes])
    except (TypeError, ValueError):
        raise SermmError(f"{source}: prior probabilities must be numbers") from None
    return check_prior(prior, len(classes), source, positive=positive)


def parse_prior(
    text: str, classes: list[str], option: str, *, positive: bool = False, only_classes: bool = False
) -> np.ndarray:
    """A prior option (``--train-prior``, ``--prior``...): a JSON file, or ``class=p,class=p,...``.

    ``positive`` and ``only_classes`` are passed to :func:`prior_from_mapping`.
    """
    strict = {"positive": positive, "only_classes": only_classes}
    path = Path(text)
    if path.is_file():
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SermmError(f"{path}: not valid JSON ({exc})") from None
        if isinstance(doc, dict) and "train_prior" in doc:
            return prior_from_mapping(
                doc["train_prior"], classes, f"{path}: train_prior", doc.get("classes"), **strict
            )
        return prior_from_mapping(doc, classes, str(path), **strict)
    pairs = {}
    for item in (part.strip() for part in text.split(",")):
        name, sep, number = item.partition("=")
        if not sep or not name.strip():
            raise SermmError(
                f"{option}: expected a JSON file or class=probability,... (got '{item}' in '{text}')"
            )
        pairs[name.strip()] = number.strip()
    return prior_from_mapping(pairs, classes, option, **strict)
