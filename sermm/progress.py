"""Progress of long work (cross-validation folds, the ``C auto`` grid) on stderr, with tqdm.

The bar shows only where stderr is a terminal, and is cleared when the work ends, so files
and pipes get the same output with or without it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str) -> Any:
    """A tqdm bar over ``iterable`` (or of ``total`` steps, advanced with ``update``)."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, file=sys.stderr, disable=None, leave=False)
