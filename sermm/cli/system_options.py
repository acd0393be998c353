"""What every ``sermm-system <kind> train|predict`` command shares: its options and its flow.

A system's command module declares a click group with a ``train`` and a ``predict`` command,
decorates them with :func:`train_options` / :func:`predict_options` plus its own options, and
calls :func:`run_train` / :func:`run_predict`. Nothing here imports torch; the flows import the
training and prediction code when they run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from sermm.cli.common import check_outputs
from sermm.errors import SermmError


def train_options(func: Callable, *, dev_required: bool = True) -> Callable:
    """--train, --dev (and their MSP splits), --backbone, --out, --task, --finetune, --config, --set,
    --resume, --quiet. With ``dev_required=False`` --dev may be left out (``--folds`` needs none)."""
    options = [
        click.option(
            "--train",
            "train",
            required=True,
            type=click.Path(dir_okay=False),
            help="Training manifest (CSV/Parquet), or MSP-Podcast's labels_consensus.csv with --train-split.",
        ),
        click.option(
            "--dev",
            "dev",
            required=dev_required,
            type=click.Path(dir_okay=False),
            help="Development manifest: scored each epoch to choose the best model"
            + ("." if dev_required else "; with --folds optional (default: part of each fold's training)."),
        ),
        click.option(
            "--train-split",
            default=None,
            help="With labels_consensus.csv: the training Split_Set (e.g. Train).",
        ),
        click.option(
            "--dev-split",
            default=None,
            help="With labels_consensus.csv: the dev Split_Set (e.g. Development).",
        ),
        click.option(
            "--backbone",
            default=None,
            metavar="ID_OR_DIR",
            help="Pretrained backbone: a Hugging Face model id or a local directory (from_pretrained).",
        ),
        click.option(
            "--out",
            "out",
            required=True,
            type=click.Path(file_okay=False),
            help="Run directory to write (config, labels, checkpoints, best model, log).",
        ),
        click.option(
            "--task",
            type=click.Choice(["categorical", "attributes"]),
            default=None,
            help="categorical (classes; best by dev macro-F1) or attributes (arousal, valence, "
            "dominance; loss -mean CCC, best by dev mean CCC). Default: categorical.",
        ),
        click.option(
            "--config",
            "config_path",
            type=click.Path(dir_okay=False),
            default=None,
            help="YAML file of config values (see docs/systems.md); options and --set win.",
        ),
        click.option(
            "--set",
            "sets",
            multiple=True,
            metavar="KEY=VALUE",
            help="Override one config value (repeatable), e.g. --set epochs=30 --set lr=1e-3.",
        ),
        click.option("--resume", is_flag=True, help="Continue the run in --out from its newest checkpoint."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bars or per-epoch lines."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def predict_options(func: Callable) -> Callable:
    """RUN_DIR, --manifest, --split, --output, --embeddings, --keep-all-classes, --quiet."""
    options = [
        click.argument("run_dir", type=click.Path(file_okay=False)),
        click.option(
            "--manifest",
            required=True,
            type=click.Path(dir_okay=False),
            help="Utterances to score (labels not needed), or labels_consensus.csv with --split.",
        ),
        click.option("--split", default=None, help="With labels_consensus.csv: the Split_Set to score."),
        click.option(
            "--output",
            "-o",
            required=True,
            type=click.Path(dir_okay=False),
            help="Posterior (or attribute) file to write, CSV or Parquet by extension, with its "
            ".meta.json sidecar.",
        ),
        click.option(
            "--embeddings",
            default=None,
            type=click.Path(dir_okay=False),
            help="Also write the utterance embeddings (id,e0..eN) here, for sermm-fuse lda|plda.",
        ),
        click.option(
            "--keep-all-classes",
            is_flag=True,
            help="Write every training class; by default MSP's O and X are dropped and the rest "
            "renormalised.",
        ),
        click.option("--quiet", "-q", is_flag=True, help="No progress bars."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def load_recipe(path: str) -> Any:
    """The recipe named ``module:Class`` (imported only when a command runs: it imports torch)."""
    import importlib

    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)()


def recipe_and_config(
    recipe_path: str, opts: dict[str, Any], config_given: dict[str, Any] | None
) -> tuple[Any, Any]:
    """The recipe and its config (YAML, then the given fields, then --set), checked before any output."""
    from sermm.systems.config import load_config

    recipe = load_recipe(recipe_path)
    config = load_config(
        recipe.config_class,
        opts["config_path"],
        opts["sets"],
        backbone=opts["backbone"],
        task=opts["task"],
        **(config_given or {}),
    )
    if not config.backbone:
        raise SermmError("no backbone: pass --backbone ID_OR_DIR (or set backbone: in --config)")
    if hasattr(recipe, "check_config"):  # what the config names (backbone, corpora), before any output
        recipe.check_config(config)
    return recipe, config


def run_train(
    recipe_path: str,
    opts: dict[str, Any],
    *,
    manifest_kwargs: dict[str, Any] | None = None,
    config_given: dict[str, Any] | None = None,
    skip_bad: bool = False,
) -> None:
    """Read the config and manifests, train, and print where the best model is."""
    from sermm.systems.manifest import read_manifest
    from sermm.systems.training import train_system

    recipe, config = recipe_and_config(recipe_path, opts, config_given)
    manifest_kwargs = manifest_kwargs or {}
    train = read_manifest(opts["train"], need=recipe.need, split=opts["train_split"], **manifest_kwargs)
    dev = read_manifest(opts["dev"], need=recipe.need, split=opts["dev_split"], **manifest_kwargs)
    train = recipe.validate(train, skip_bad=skip_bad)
    dev = recipe.validate(dev, skip_bad=skip_bad)
    result = train_system(recipe, config, train, dev, opts["out"], resume=opts["resume"], quiet=opts["quiet"])
    if not result.main_process:
        return
    shown = ", ".join(f"{k} {v:.4f}" for k, v in result.best.items())
    click.echo(
        f"{recipe.system} {config.task}: {len(train):,} training and {len(dev):,} dev utterances, "
        f"{result.epochs_run} epoch(s)"
    )
    click.echo(f"best epoch {result.best_epoch}: dev {shown}")
    click.echo(f"run: {result.run.path} (best model: {result.run.best_weights})")


def run_predict(
    recipe_path: str,
    opts: dict[str, Any],
    *,
    manifest_kwargs: dict[str, Any] | None = None,
    max_items: int | None = None,
    max_total: float | None = None,
) -> None:
    """Score a manifest with a run's best model and write the score file (and embeddings)."""
    from sermm.systems.manifest import read_manifest
    from sermm.systems.prediction import predict_system

    check_outputs([opts["manifest"]], {"--output": opts["output"], "--embeddings": opts["embeddings"]})
    recipe = load_recipe(recipe_path)
    manifest = read_manifest(
        opts["manifest"], need=recipe.need, split=opts["split"], **(manifest_kwargs or {})
    )
    manifest = recipe.validate(manifest, skip_bad=False)
    result = predict_system(
        recipe,
        opts["run_dir"],
        manifest,
        opts["output"],
        embeddings=opts["embeddings"],
        keep_all_classes=opts["keep_all_classes"],
        max_items=max_items,
        max_total=max_total,
        quiet=opts["quiet"],
    )
    if not result.main_process:
        return
    click.echo(f"wrote {result.rows:,} rows ({', '.join(result.columns)}): {result.output} (+ .meta.json)")
    if result.embeddings:
        click.echo(f"wrote embeddings: {result.embeddings} (+ .meta.json)")


def fold_options(func: Callable) -> Callable:
    """--folds COLUMN and --fold-dev-every N (leave-one-group-out cross-validation)."""
    options = [
        click.option(
            "--folds",
            default=None,
            metavar="COLUMN",
            help="Leave-one-group-out cross-validation over the --train manifest's COLUMN (speaker, "
            "session, ...): one run per group in OUT/fold-<group>, the group scored by it; OUT/cv.csv "
            "pools the held-out posteriors, OUT/cv.json holds WA and UA per fold and pooled.",
        ),
        click.option(
            "--fold-dev-every",
            type=click.IntRange(min=2),
            default=10,
            show_default=True,
            metavar="N",
            help="With --folds and no --dev: every N-th training row of a fold is held out of its "
            "training to choose the epoch (the held-out group never is).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def run_folds(
    recipe_path: str,
    opts: dict[str, Any],
    *,
    manifest_kwargs: dict[str, Any] | None = None,
    config_given: dict[str, Any] | None = None,
    skip_bad: bool = False,
) -> None:
    """Leave-one-group-out cross-validation of a recipe over ``--folds COLUMN`` of ``--train``."""
    from sermm.systems.folds import cross_validate, read_groups
    from sermm.systems.manifest import read_manifest

    recipe, config = recipe_and_config(recipe_path, opts, config_given)
    manifest_kwargs = manifest_kwargs or {}
    train = read_manifest(opts["train"], need=recipe.need, split=opts["train_split"], **manifest_kwargs)
    read_groups(train, opts["folds"])  # a missing or empty column is an error before the audio checks
    train = recipe.validate(train, skip_bad=skip_bad)
    groups = read_groups(train, opts["folds"])  # of the rows --skip-bad left
    dev = None
    if opts.get("dev"):
        dev = read_manifest(opts["dev"], need=recipe.need, split=opts["dev_split"], **manifest_kwargs)
        dev = recipe.validate(dev, skip_bad=skip_bad)
    result = cross_validate(
        recipe,
        config,
        train,
        groups,
        opts["out"],
        dev=dev,
        dev_every=opts["fold_dev_every"],
        resume=opts["resume"],
        quiet=opts["quiet"],
    )
    if not result.main_process:
        return
    report = result.report
    for name, m in [*(("fold " + g, m) for g, m in report["folds"].items()), ("pooled", report["pooled"])]:
        click.echo(f"{name}: n {m['n']}, WA {m['wa']:.4f}, UA {m['ua']:.4f}, macro-F1 {m['macro_f1']:.4f}")
    click.echo(f"wrote {result.out / 'cv.csv'} (+ .meta.json) and {result.out / 'cv.json'}")
