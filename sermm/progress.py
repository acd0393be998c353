"""Progress of long work (cross-validation folds, the ``C auto`` grid, ``compare``) on stderr, with tqdm.

The bar shows only where stderr is a terminal, and is cleared when the work ends, so files
and pipes get the same output with or without it. :func:`set_quiet` (the commands' ``-q``)
turns every bar off.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

_QUIET = [False]


def set_quiet(quiet: bool = True) -> None:
    """Show no progress bars (``--quiet``), or show them again where stderr is a terminal."""
    _QUIET[0] = bool(quiet)


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str) -> Any:
    """A tqdm bar over ``iterable`` (or of ``total`` steps, advanced with ``update``)."""
    from tqdm import tqdm

    disable = True if _QUIET[0] else None  # None: only where stderr is a terminal
    return tqdm(iterable, total=total, desc=desc, file=sys.stderr, disable=disable, leave=False)
