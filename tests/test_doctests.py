"""Run the docstring examples of every sermm module, imported under its real ``sermm.*`` name.

(pytest's ``--doctest-modules`` would import ``fusion/`` and ``calibration/`` a second time as
top-level packages, because setuptools maps them into the ``sermm`` namespace.)
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import sermm


def _modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(sermm.__path__, prefix="sermm."):
        names.append(info.name)
    for package in ("sermm.fusion", "sermm.calibration", "sermm.systems"):
        module = importlib.import_module(package)
        names += [info.name for info in pkgutil.walk_packages(module.__path__, prefix=f"{package}.")]
    return sorted(set(names))


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctest(s) failed in {name}"


def test_the_doctests_are_found() -> None:
    found = sum(
        len(doctest.DocTestFinder().find(importlib.import_module(name))) for name in _modules()
    )
    assert found > 10
