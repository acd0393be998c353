"""MSP-Podcast conventions: emotion letter codes and the baseline's class order.

The alias table itself lives in :mod:`sermm.classes`; this module keeps the MSP-specific names.
"""

from __future__ import annotations

from sermm.classes import CLASS_TO_CODE, CODE_TO_CLASS, class_code

__all__ = ["BASELINE_ORDER", "CLASS_TO_CODE", "CODE_TO_CLASS", "class_to_code"]

#: The 8 challenge classes in the order the MSP-Podcast baseline writes its outputs.
BASELINE_ORDER = ["A", "S", "H", "U", "F", "D", "C", "N"]


def class_to_code(name: str) -> str:
    """The letter code of a class given by any alias: sermm name, baseline name or letter (any case)."""
    return class_code(name)
