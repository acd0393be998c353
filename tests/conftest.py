"""Helpers the test modules share: the shipped examples, CLI invocation and its error checks, sidecars.

Test modules import them (``from conftest import GO, invoke``): pytest puts this folder on the path.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner, Result

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
GO = EXAMPLES / "goemotions"
EB = EXAMPLES / "emobank"
DATA = Path(__file__).resolve().parent / "data"


def invoke(cli, *args: object) -> Result:
    """Run a click command with ``args`` (paths and numbers become strings)."""
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_line_error(result: Result, *fragments: str) -> str:
    """Exit code 1, a single 'Error: ...' line holding every fragment, and no traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def sidecar_json(path: str | Path) -> dict:
    """The sidecar of ``path`` as written (its raw JSON object)."""
    return json.loads(Path(f"{path}.meta.json").read_text())


def copy_examples(folder: Path, names: list[str], source: Path = GO) -> Path:
    """Copy example files (and their sidecars) into ``folder``; returns ``folder``."""
    for name in names:
        shutil.copy(source / name, folder / name)
        sidecar = source / f"{name}.meta.json"
        if sidecar.exists():
            shutil.copy(sidecar, folder / sidecar.name)
    return folder
