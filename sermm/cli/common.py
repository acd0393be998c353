"""What every sermm command shares: one-line errors, and the input options of the file contract."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from sermm.errors import SermmError


class SermmCommand(click.Command):
    """A click command that turns :class:`SermmError` into one line on stderr and exit code 1.

    Options declared ``multiple=True`` take several values after one flag
    (``--inputs a.csv t.csv``), up to the next option, as the design card writes them.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _expand_multi(self, args))

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SermmError as exc:
            raise click.ClickException(str(exc)) from None


class SermmGroup(click.Group):
    """A click group whose subcommands are :class:`SermmCommand` s."""

    command_class = SermmCommand


def inputs_option(required: bool = True, help: str | None = None) -> Callable:
    """``--inputs A.csv B.csv ...``: one or more score files (space separated)."""
    return click.option(
        "--inputs",
        "-i",
        "inputs",
        required=required,
        multiple=True,
        type=click.Path(dir_okay=False),
        callback=_split_multi,
        help=help or "Score files, one per system (CSV or Parquet); repeat or list after one flag.",
    )


def _split_multi(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> list[str]:
    return list(value)


def score_options(func: Callable) -> Callable:
    """The options that say how to read posterior files: classes, logits, missing ids."""
    func = click.option(
        "--classes",
        default=None,
        metavar="A,B,...",
        help="Keep only these classes (comma separated) and renormalise each row over them; "
        "labels of other classes are left out (e.g. drop MSP-Podcast's O and X).",
    )(func)
    func = click.option(
        "--scores",
        type=click.Choice(["auto", "probability", "logit"]),
        default="auto",
        show_default=True,
        help="What the class columns hold. 'auto' reads the sidecar's \"values\" "
        "(probability unless it says logit); logits are softmaxed.",
    )(func)
    func = click.option(
        "--on-missing",
        type=click.Choice(["error", "drop"]),
        default="error",
        show_default=True,
        help="When an id is in one file and not another: stop, or keep only the common ids.",
    )(func)
    return func


def labels_option(required: bool = False, help: str | None = None) -> Callable:
    """``--labels FILE`` plus ``--split`` for MSP-Podcast's labels_consensus.csv."""

    def decorate(func: Callable) -> Callable:
        func = click.option(
            "--split",
            default=None,
            help="With an MSP-Podcast labels_consensus.csv: the Split_Set to use "
            "(e.g. Development).",
        )(func)
        return click.option(
            "--labels",
            "-l",
            required=required,
            type=click.Path(dir_okay=False),
            help=help
            or "Label file: id,label and/or id,arousal,valence,dominance, or MSP-Podcast's "
            "labels_consensus.csv.",
        )(func)

    return decorate


def _expand_multi(command: click.Command, args: list[str]) -> list[str]:
    """Rewrite ``--inputs a b --x`` as ``--inputs a --inputs b --x`` for options with many values."""
    multi = {
        opt: param.opts[0]
        for param in command.params
        if isinstance(param, click.Option) and param.multiple
        for opt in param.opts
    }
    out: list[str] = []
    current: str | None = None
    first = False
    for arg in args:
        if arg.startswith("-") and len(arg) > 1:
            current = None if "=" in arg else multi.get(arg)
            first = True
        elif current is not None and not first:
            out.append(current)
        else:
            first = False
        out.append(arg)
    return out
