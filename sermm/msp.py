"""MSP-Podcast conventions: emotion letter codes and the baseline's class order."""

from __future__ import annotations

from sermm.errors import SermmError

#: MSP-Podcast ``EmoClass`` letter codes and the class names sermm uses for them.
CODE_TO_CLASS = {
    "A": "angry",
    "S": "sad",
    "H": "happy",
    "U": "surprise",
    "F": "fear",
    "D": "disgust",
    "C": "contempt",
    "N": "neutral",
    "O": "other",
    "X": "no_agreement",
}
CLASS_TO_CODE = {name: code for code, name in CODE_TO_CLASS.items()}
#: The 8 challenge classes in the order the MSP-Podcast baseline writes its outputs.
BASELINE_ORDER = ["A", "S", "H", "U", "F", "D", "C", "N"]


def class_to_code(name: str) -> str:
    """The letter code of a class given by sermm name or already as a letter code."""
    if name in CODE_TO_CLASS:
        return name
    if name.lower() in CLASS_TO_CODE:
        return CLASS_TO_CODE[name.lower()]
    raise SermmError(
        f"class '{name}' has no MSP-Podcast letter code "
        f"(known: {', '.join(f'{c}={n}' for c, n in CODE_TO_CLASS.items())})"
    )
