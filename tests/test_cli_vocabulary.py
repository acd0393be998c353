"""One vocabulary: every sermm command takes -h and --version; a shared option is spelt alike everywhere."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from sermm import __version__
from sermm.cli import calibrate, data, fuse, report, submit, system

ENTRY_POINTS = {"sermm-fuse": fuse.main, "sermm-calibrate": calibrate.main, "sermm-report": report.main,
                "sermm-submit": submit.main, "sermm-data": data.main, "sermm-system": system.main}


def every_command() -> list[tuple[str, list[str], click.Command]]:
    """(entry point, subcommand path, command) for every group and command of every entry point."""
    found = []

    def walk(name: str, path: list[str], command: click.Command) -> None:
        found.append((name, path, command))
        if isinstance(command, click.Group):
            for sub, child in command.commands.items():
                walk(name, [*path, sub], child)

    for name, main in ENTRY_POINTS.items():
        walk(name, [], main)
    return found


COMMANDS = every_command()
IDS = [" ".join([name, *path]) for name, path, _ in COMMANDS]


def options(command: click.Command) -> dict[str, list[str]]:
    return {p.name: [*p.opts, *p.secondary_opts] for p in command.params if isinstance(p, click.Option)}


@pytest.mark.parametrize(("name", "path", "command"), COMMANDS, ids=IDS)
def test_every_command_has_help_h_and_version(name, path, command):
    main = ENTRY_POINTS[name]
    runner = CliRunner()
    for flag in ("-h", "--help"):
        result = runner.invoke(main, [*path, flag])
        assert result.exit_code == 0, result.output
        assert result.output.startswith("Usage: ")
    result = runner.invoke(main, [*path, "--version"], prog_name=name)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{name} (sermm) {__version__}"


@pytest.mark.parametrize(("name", "path", "command"), COMMANDS, ids=IDS)
def test_shared_options_are_spelt_alike(name, path, command):
    opts = options(command)
    flags = {flag for spelled in opts.values() for flag in spelled}
    if "inputs" in opts or "input_path" in opts:  # one file or several: both spellings, and -i
        spelled = opts.get("inputs") or opts["input_path"]
        assert {"--input", "--inputs", "-i"} <= set(spelled), spelled
    if "output" in opts:
        assert {"-o", "--output"} <= set(opts["output"])
    if "save" in opts:
        assert {"-s", "--save"} <= set(opts["save"])
    if "labels" in opts:
        assert "--split" in flags  # a labels_consensus.csv needs its partition
    for flag in ("--markdown",):
        if flag in flags:
            assert "--report" in flags  # the Markdown file is --report everywhere
    if "quiet" in opts:
        assert set(opts["quiet"]) == {"-q", "--quiet"}


def test_options_shown_only_where_they_apply():
    mean = fuse.main.commands["mean"]
    text = CliRunner().invoke(fuse.main, ["mean", "-h"]).output
    assert "--cv" not in text and "--C" not in text and "C auto" not in text
    assert {"cv", "groups", "cv_output"}.isdisjoint(options(mean))
    assert "C auto" in CliRunner().invoke(fuse.main, ["logreg", "-h"]).output
    assert "C auto" not in CliRunner().invoke(fuse.main, ["interp", "-h"]).output
    assert "L-BFGS in numpy" in CliRunner().invoke(fuse.main, ["logreg", "-h"]).output
    for command in ("logreg", "interp", "vote", "mean", "compare"):
        assert "quiet" in options(fuse.main.commands[command])


def test_system_help_does_not_import_torch():
    code = ("import sys; from click.testing import CliRunner; from sermm.cli.system import main; "
            "r = CliRunner().invoke(main, ['audio', 'train', '-h']); "
            "r2 = CliRunner().invoke(main, ['text', 'predict', '-h']); "
            "print(r.exit_code, r2.exit_code, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "0", "False"], out.stderr
