"""Class names: the one alias table, and matching of class names across files.

Teams name the MSP-Podcast classes three ways: by letter code (``A, S, H, U, F, D, C, N``
plus ``O`` and ``X``), as the official baseline does (``Angry, Sad, Happy, ...``) and as sermm
does (``angry, sad, happy, ...``, ``other``, ``no_agreement``). All three are aliases of one
another, and every class name matches case-insensitively. Every place that compares class
names (labels, ``--classes``, score columns, priors, models, submissions) compares their
:func:`class_key`; a file keeps the names it was written with, and outputs keep the naming
of the first input.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sermm.errors import SermmError

#: The MSP-Podcast classes: letter code, sermm name, and the name the official baseline uses.
MSP_CLASSES = (
    ("A", "angry", "Angry"),
    ("S", "sad", "Sad"),
    ("H", "happy", "Happy"),
    ("U", "surprise", "Surprise"),
    ("F", "fear", "Fear"),
    ("D", "disgust", "Disgust"),
    ("C", "contempt", "Contempt"),
    ("N", "neutral", "Neutral"),
    ("O", "other", "Other"),
    ("X", "no_agreement", "No_Agreement"),
)
#: The letter codes of MSP-Podcast classes that are not challenge classes (left out of scoring).
NON_CHALLENGE_CODES = ("O", "X")
CODE_TO_CLASS = {code: name for code, name, _ in MSP_CLASSES}
CLASS_TO_CODE = {name: code for code, name, _ in MSP_CLASSES}
_ALIASES = {
    alias.casefold(): name
    for code, name, baseline in MSP_CLASSES
    for alias in (code, name, baseline, name.replace("_", " "), name.replace("_", "-"))
}
_ALIASES["noagreement"] = "no_agreement"


def class_key(name: object) -> str:
    """The key a class name is compared by: the sermm name for an MSP alias (``"A"``,
    ``"Angry"``, ``"angry"`` -> ``"angry"``), else the name stripped and case-folded."""
    text = str(name).strip().casefold()
    return _ALIASES.get(text, text)


def is_non_challenge(name: object) -> bool:
    """Whether a class is MSP-Podcast's O (other) or X (no agreement)."""
    return class_key(name) in ("other", "no_agreement")


def class_code(name: str) -> str:
    """The MSP-Podcast letter code of a class given under any of its aliases."""
    key = class_key(name)
    if key in CLASS_TO_CODE:
        return CLASS_TO_CODE[key]
    raise SermmError(
        f"class '{name}' has no MSP-Podcast letter code "
        f"(known: {', '.join(f'{c}={n}' for c, n in CODE_TO_CLASS.items())}; any case, or the "
        "baseline's names Angry, Sad, ...)"
    )


def key_index(classes: Sequence[str]) -> dict[str, int]:
    """``{class_key: position}`` for a list of class names."""
    return {class_key(c): j for j, c in enumerate(classes)}


def same_classes(a: Iterable[str], b: Iterable[str]) -> bool:
    """Whether two class lists name the same set of classes (aliases and case aside)."""
    a, b = list(a), list(b)
    return len(a) == len(b) and {class_key(c) for c in a} == {class_key(c) for c in b}


def positions(names: Sequence[str], classes: Sequence[str]) -> list[int]:
    """Where each of ``names`` sits in ``classes``, matching by :func:`class_key`; a name that is
    not there is a KeyError carrying it."""
    index = key_index(classes)
    out = []
    for name in names:
        key = class_key(name)
        if key not in index:
            raise KeyError(name)
        out.append(index[key])
    return out


def spelled_as(names: Sequence[str], reference: Sequence[str]) -> list[str]:
    """``names`` in the spelling ``reference`` uses for them (names it lacks are kept as given)."""
    index = key_index(reference)
    return [reference[index[class_key(n)]] if class_key(n) in index else n for n in names]


def duplicate_alias(classes: Sequence[str]) -> tuple[str, str] | None:
    """Two names of ``classes`` that are aliases of one class (``A`` and ``angry``), or None."""
    seen: dict[str, str] = {}
    for name in classes:
        key = class_key(name)
        if key in seen:
            return seen[key], name
        seen[key] = name
    return None


def ox_hint(classes: Sequence[str]) -> str:
    """How to leave MSP-Podcast's O/X rows out of an evaluation over ``classes``."""
    kept = [c for c in classes if not is_non_challenge(c)]
    return (
        "MSP-Podcast's O (other) and X (no_agreement) rows are not among the score files' classes; "
        f"leave them out with --classes {','.join(kept)}"
    )
