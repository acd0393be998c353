"""Checks shared by the CLI tests: a user mistake is one 'Error:' line, exit code 1, no traceback."""

from __future__ import annotations


def assert_one_line_error(result, *fragments: str) -> str:
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
