"""What every sermm command shares: one-line errors, and the input options of the file contract."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from sermm.errors import SermmError
from sermm.estimator import ParamError
from sermm.formats import held_notes, parse_delimiter, reading_options

#: Where the reading options (--delimiter, --renormalise, --group-column) wait, in ``ctx.meta``,
#: for :meth:`SermmCommand.invoke` to put them in force.
READ_OPTIONS_KEY = "sermm.read_options"

#: What every sermm command and group accepts: ``-h`` beside ``--help``.
CONTEXT = {"help_option_names": ["-h", "--help"]}


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from sermm import __version__

    click.echo(f"{ctx.find_root().info_name or 'sermm'} (sermm) {__version__}")
    ctx.exit()


def _with_shared(params: list[click.Parameter] | None) -> list[click.Parameter]:
    """``params`` plus ``--version`` (eager, like ``--help``), unless a command declares its own."""
    params = list(params or [])
    if not any(isinstance(p, click.Option) and "--version" in p.opts for p in params):
        params.append(click.Option(["--version"], is_flag=True, expose_value=False, is_eager=True,
                                   callback=_print_version, help="Print the sermm version and exit."))
    return params


class SermmCommand(click.Command):
    """A click command that turns :class:`SermmError` into one line on stderr and exit code 1.

    Options declared ``multiple=True`` take several values after one flag
    (``--inputs a.csv t.csv``), up to the next option, as the README writes them. Every
    command takes ``-h``/``--help`` and ``--version``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["params"] = _with_shared(kwargs.get("params"))
        kwargs["context_settings"] = {**CONTEXT, **(kwargs.get("context_settings") or {})}
        super().__init__(*args, **kwargs)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _expand_multi(self, args))

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with held_notes(), reading_options(**ctx.meta.get(READ_OPTIONS_KEY, {})):
                return super().invoke(ctx)
        except ParamError as exc:
            raise click.ClickException(exc.render(flag_of(self, exc.param))) from None
        except SermmError as exc:
            raise click.ClickException(str(exc)) from None


def flag_of(command: click.Command, param: str) -> str:
    """The flag that sets an estimator parameter: the option stored under its name, else
    ``--`` + the name with dashes (``lda_dim`` -> ``--lda-dim``)."""
    for option in command.params:
        if isinstance(option, click.Option) and option.name == param:
            return max(option.opts, key=len)
    return "--" + param.replace("_", "-")


class SermmGroup(click.Group):
    """A click group whose subcommands are :class:`SermmCommand` s; it takes ``-h`` and ``--version`` too."""

    command_class = SermmCommand
    group_class = type

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["params"] = _with_shared(kwargs.get("params"))
        kwargs["context_settings"] = {**CONTEXT, **(kwargs.get("context_settings") or {})}
        super().__init__(*args, **kwargs)


def check_outputs(
    inputs: Iterable[str | None],
    outputs: dict[str, str | None],
    directories: dict[str, str | None] | None = None,
) -> None:
    """Refuse, before any work, an output that would overwrite an input or another output, or cannot be made.

    ``outputs`` maps each file option (``"--output"``) to its path or None, ``directories`` each
    directory option (``"--plots"``); inputs are compared with their sidecars ``<path>.meta.json``.
    """
    def key(path: str) -> str:
        return os.path.normcase(os.path.realpath(path))

    sources = {key(p) for p in inputs if p} | {key(f"{p}.meta.json") for p in inputs if p}
    seen: dict[str, str] = {}
    for option, path, is_dir in [*((o, p, False) for o, p in outputs.items()),
                                 *((o, p, True) for o, p in (directories or {}).items())]:
        if not path:
            continue
        if key(path) in sources:
            raise SermmError(f"{option} {path}: that is an input file; write the output to another path")
        if key(path) in seen:
            raise SermmError(f"{option} {path}: {seen[key(path)]} writes to the same path")
        seen[key(path)] = option
        if not is_dir and os.path.isdir(path):
            raise SermmError(f"{option} {path}: is a directory, expected a file name")
        ancestor = Path(path).absolute().parent
        while not ancestor.exists():
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise SermmError(f"{option} {path}: {ancestor} is not a directory")
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise SermmError(f"{option} {path}: no permission to write in {ancestor}")


def inputs_option(required: bool = True, help: str | None = None) -> Callable:
    """``--inputs A.csv B.csv ...`` (or ``--input``, the same option): one or more score files."""
    return click.option(
        "--inputs",
        "--input",
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
    return on_missing_option(scores_option(func))


def _store_read_option(name: str, convert: Callable[[Any], Any] = lambda v: v) -> Callable:
    """A click callback that keeps an option for :func:`sermm.formats.reading_options`."""

    def store(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is not None and value is not False:
            try:
                converted = convert(value)
            except SermmError as exc:
                raise click.BadParameter(str(exc).split(": ", 1)[-1]) from None
            ctx.meta.setdefault(READ_OPTIONS_KEY, {})[name] = converted

    return store


def reading_options_option(func: Callable) -> Callable:
    """``--delimiter`` and ``--renormalise``: how every file of the command is read."""
    func = click.option(
        "--renormalise",
        "--renormalize",
        is_flag=True,
        expose_value=False,
        callback=_store_read_option("renormalise"),
        help="Rescale each posterior row to sum to 1 (for files whose classes were dropped without "
        "renormalising) instead of refusing rows that do not sum to 1.",
    )(func)
    return click.option(
        "--delimiter",
        default=None,
        metavar="SEP",
        expose_value=False,
        callback=_store_read_option("delimiter", parse_delimiter),
        help="Field separator of CSV/TSV inputs (one character, or tab, semicolon, pipe, space); "
        "default: by extension (.tsv: tab, else comma).",
    )(func)


def group_column_option(func: Callable) -> Callable:
    """``--group-column NAME``: the column of the --groups file that holds the groups."""
    return click.option(
        "--group-column",
        default=None,
        metavar="NAME",
        expose_value=False,
        callback=_store_read_option("group_column"),
        help="Column of the --groups file holding the groups (default: group, else MSP-Podcast's "
        "SpkrID), so labels_consensus.csv can serve as the groups file.",
    )(func)


def split_option(help: str | None = None) -> Callable:
    """``--split NAME``: the Split_Set of an MSP-Podcast labels_consensus.csv to use."""
    return click.option(
        "--split",
        default=None,
        help=help or "With an MSP-Podcast labels_consensus.csv: the Split_Set to use (e.g. Development).",
    )


def scores_option(func: Callable) -> Callable:
    """``--scores auto|probability|logit``: logits are accepted only when declared (with the
    reading options, --delimiter and --renormalise)."""
    func = reading_options_option(func)
    return click.option(
        "--scores",
        type=click.Choice(["auto", "probability", "logit"]),
        default="auto",
        show_default=True,
        help="What the class columns hold. 'auto' reads the sidecar's \"values\" "
        "(probability unless it says logit); logits are softmaxed.",
    )(func)


def on_missing_option(func: Callable) -> Callable:
    """``--on-missing error|drop``: what to do with ids present in one file and not another."""
    return click.option(
        "--on-missing",
        type=click.Choice(["error", "drop"]),
        default="error",
        show_default=True,
        help="When an id is in one file and not another: stop, or keep only the common ids.",
    )(func)


def labels_option(required: bool = False, help: str | None = None) -> Callable:
    """``--labels FILE`` plus ``--split`` for MSP-Podcast's labels_consensus.csv."""

    def decorate(func: Callable) -> Callable:
        func = split_option()(func)
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


# --------------------------------------------------------------------------- method commands


@dataclass
class MethodSpec:
    """A method command, declared once: the registered ``method``, its own click ``options``
    (each stored under the estimator parameter it sets) and its manual text."""

    method: str
    options: list[Callable]
    help: str

    @property
    def params(self) -> list[str]:
        """The estimator parameters the options set."""
        names = []
        for option in self.options:
            probe = option(lambda **kwargs: None)
            names.append(probe.__click_params__[-1].name)
        return names


def method_command(spec: MethodSpec, shared: list[Callable], callback: Callable) -> click.Command:
    """The command of a method: the ``shared`` options, then its own, calling ``callback(**options)``."""
    for option in reversed([*shared, *spec.options]):
        callback = option(callback)
    return click.command(spec.method, cls=SermmCommand, help=spec.help)(callback)


def number_or_auto(ctx: click.Context, param: click.Parameter, value: str) -> float | str:
    """A number, or ``auto``; anything else is passed on as given, for the estimator to refuse."""
    if value.strip().lower() == "auto":
        return "auto"
    try:
        return float(value)
    except ValueError:
        return value


def class_weight_option(help: str | None) -> Callable:
    """``--class-weight none|balanced``, stored as None or ``balanced``."""
    return click.option(
        "--class-weight",
        type=click.Choice(["none", "balanced"]),
        default="none",
        show_default=True,
        callback=lambda ctx, param, value: None if value == "none" else value,
        help=help,
    )


def chain_options(func: Callable) -> Callable:
    """``--save-chain FILE``: also save the models applied, in order, as one chain model file."""
    return click.option(
        "--save-chain",
        type=click.Path(dir_okay=False),
        default=None,
        help="Also save the models applied, in order, as one model file (apply it like any model).",
    )(func)


def quiet_option(func: Callable) -> Callable:
    """``--quiet/-q``: no progress bars (they show only where stderr is a terminal anyway)."""
    return click.option("--quiet", "-q", is_flag=True, help="No progress bars on stderr.")(func)
