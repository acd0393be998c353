"""Class priors: parse them from the command line, a JSON file or a mapping, check them, and find
the training prior of a score file (option, label file, sidecar, or the model its sidecar names)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sermm.classes import class_key
from sermm.errors import SermmError
from sermm.labels import read_labels
from sermm.tables import ScoreTable


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
    value = {class_key(c): p for c, p in value.items()}  # class names match by alias and case
    keyed = [class_key(c) for c in classes]
    unknown = [str(c) for c in value if c not in keyed]
    if only_classes and unknown:
        raise SermmError(f"{source}: unknown class {', '.join(unknown)} (classes: {', '.join(classes)})")
    missing = [c for c, k in zip(classes, keyed, strict=True) if k not in value]
    if missing:
        raise SermmError(f"{source}: the prior has no probability for class {', '.join(missing)}")
    try:
        prior = np.array([float(value[k]) for k in keyed])
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


def prior_from_labels(path: str, classes: list[str], split: str | None = None) -> np.ndarray:
    """The class frequencies of a label file (labels of other classes are left out)."""
    labels = read_labels(path, split=split).require_categorical()
    uniq, inverse = np.unique(labels, return_inverse=True)
    keys = np.array([class_key(u) for u in uniq], dtype=object)[inverse]
    counts = np.array([np.count_nonzero(keys == class_key(c)) for c in classes], dtype=np.float64)
    if counts.sum() == 0:
        raise SermmError(f"{path}: no labels of the classes {', '.join(classes)}")
    absent = [c for c, n in zip(classes, counts, strict=True) if n == 0]
    if absent:
        raise SermmError(f"{path}: class {', '.join(absent)} never occurs, so its training prior would be 0")
    return counts / counts.sum()


def prior_from_sidecar(table: ScoreTable) -> tuple[np.ndarray, str] | None:
    """The prior a score file's values are under, by its sidecar, and where it was found.

    The sidecar's ``train_prior``; else, when the sidecar names exactly one model (a file a
    fusion model wrote), that model's ``train_prior``; else None.
    """
    from sermm.modelfile import load_model

    meta, sidecar = table.sidecar, f"{table.path}.meta.json"
    if meta is None:
        return None
    if meta.train_prior is not None:
        prior = prior_from_mapping(meta.train_prior, table.columns, f"{sidecar}: train_prior", meta.classes)
        return prior, sidecar
    if len(meta.models) != 1:
        return None
    found = Path(meta.models[0])
    if not found.is_file():
        raise SermmError(f"{sidecar}: names the model '{found}', which does not exist")
    doc = load_model(found)
    if doc.get("train_prior") is None:
        return None
    prior = prior_from_mapping(doc["train_prior"], table.columns, f"{found}: train_prior", doc.get("classes"))
    return prior, str(found)


def sidecar_prior(table: ScoreTable) -> np.ndarray | None:
    """The prior of :func:`prior_from_sidecar`, or None when there is none or it cannot be read."""
    try:
        found = prior_from_sidecar(table)
    except SermmError:
        return None
    return None if found is None else found[0]


def resolve_train_prior(
    table: ScoreTable,
    train_prior: str | None = None,
    train_labels: str | None = None,
    train_split: str | None = None,
) -> tuple[np.ndarray, str]:
    """The training prior of a score file and where it came from: ``train_prior`` (a JSON file or
    ``class=p,...``), the class counts of ``train_labels``, or the sidecar; else a clear error.

    Every class needs a positive training prior (rebalancing divides by it).
    """
    if train_prior and train_labels:
        raise SermmError("give the training prior once: --train-prior or --train-labels, not both")
    if train_prior:
        found = parse_prior(train_prior, table.columns, "--train-prior"), "--train-prior"
    elif train_labels:
        found = prior_from_labels(train_labels, table.columns, train_split), train_labels
    else:
        found = prior_from_sidecar(table)
    if found is None:
        raise SermmError(
            f"{table.path}: no training prior: pass --train-prior (a JSON file or class=p,...) or "
            f"--train-labels FILE (the training labels), or add \"train_prior\" to {table.path}.meta.json"
        )
    zero = [c for c, p in zip(table.columns, found[0], strict=True) if p <= 0]
    if zero:
        raise SermmError(f"{found[1]}: the training prior of class {', '.join(zero)} is 0; rebalancing "
                         "divides by it, so every class needs a positive training probability")
    return found


def format_prior(classes: list[str], prior: np.ndarray) -> str:
    """``anger=0.1234 disgust=...``."""
    return " ".join(f"{c}={p:.4f}" for c, p in zip(classes, prior, strict=True))
