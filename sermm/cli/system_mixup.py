"""``sermm-system mixup``: label-adaptive mixup + centre loss (Kang et al., ICASSP 2023); no torch import."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from sermm.cli.common import SermmGroup
from sermm.cli.system_options import (
    fold_options,
    predict_options,
    run_folds,
    run_predict,
    run_train,
    train_options,
)
from sermm.errors import SermmError

RECIPE = "sermm.systems.mixup:MixupRecipe"
#: The wav2vec2-family kinds these recipes take (as in sermm.systems.audio.utterance, without torch).
WAVEFORM_KINDS = ("wav2vec2", "xls-r", "hubert", "wavlm")


def audio_root(func):
    return click.option(
        "--audio-root",
        type=click.Path(file_okay=False),
        default=None,
        help="Folder that relative audio paths (and MSP-Podcast FileNames) are under; default: the "
        "manifest's folder.",
    )(func)


def skip_bad_option(func):
    return click.option(
        "--skip-bad",
        is_flag=True,
        help="Drop rows whose audio is missing, empty or unreadable (listed on stderr) instead of "
        "stopping at the first.",
    )(func)


def kind_option(func):
    return click.option(
        "--kind",
        type=click.Choice(WAVEFORM_KINDS),
        default=None,
        help="Backbone architecture; default: read from the checkpoint's config.json (model_type).",
    )(func)


def train_or_folds(recipe: str, opts: dict, given: dict, audio_root: str | None, skip_bad: bool) -> None:
    """``--folds``: cross-validation; otherwise one run on --train, chosen on --dev."""
    if opts.get("backbone") and Path(opts["backbone"]).is_dir():
        opts["backbone"] = str(Path(opts["backbone"]).resolve())  # the run must find it from anywhere
    kwargs = {"manifest_kwargs": {"audio_root": audio_root}, "config_given": given, "skip_bad": skip_bad}
    if opts.get("folds") is not None:
        run_folds(recipe, opts, **kwargs)
        return
    if not opts.get("dev"):
        raise SermmError("missing --dev (the manifest that chooses the best epoch), or pass --folds COLUMN")
    run_train(recipe, opts, **kwargs)


@click.group(cls=SermmGroup)
def mixup() -> None:
    """Label-adaptive mixup with centre loss (Kang, Zhang & Jiang, ICASSP 2023).

    A HuBERT (or any wav2vec2-family) backbone with its bottom --keep-layers transformer layers,
    the first output frame as the utterance feature, two dense layers. Training mixes pairs of
    waveforms of a batch (lambda 0.5) with labels weighted by their lengths, and trains on the
    KL divergence to those soft labels plus a centre loss on the first dense layer's feature.
    The authors' settings: --config examples/recipes/kang_mixup.yaml.

    \b
    Example:
      sermm-system mixup train --train train.csv --dev dev.csv \\
          --backbone facebook/hubert-large-ll60k --keep-layers 22 --out runs/mixup
      sermm-system mixup predict runs/mixup --manifest eval.csv --output m_eval.csv
    """


@mixup.command()
@functools.partial(train_options, dev_required=False)
@fold_options
@click.option(
    "--keep-layers",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Keep the bottom N transformer layers of the backbone (default 0: all).",
)
@kind_option
@audio_root
@skip_bad_option
def train(keep_layers, kind, audio_root, skip_bad, **opts) -> None:
    """Train a label-adaptive mixup system (or cross-validate it with --folds).

    The manifest is id,path,label (optional speaker and other columns), or MSP-Podcast's
    labels_consensus.csv with --train-split/--dev-split and --audio-root. Whole utterances train
    (cut to max_train_s at a random offset when longer); --set mixup_lambda, mixup_prob,
    centre_weight, centre_mode, hidden_dim change the recipe. Under `accelerate launch` the same
    command trains on many GPUs.

    \b
    Examples:
      sermm-system mixup train --train train.csv --dev dev.csv \\
          --backbone facebook/hubert-large-ll60k --out runs/mixup
      sermm-system mixup train --train iemocap.csv --folds session \\
          --backbone facebook/hubert-large-ll60k --out runs/mixup-cv
    """
    train_or_folds(RECIPE, opts, {"keep_layers": keep_layers, "kind": kind}, audio_root, skip_bad)


@mixup.command()
@predict_options
@audio_root
def predict(audio_root, **opts) -> None:
    """Score a manifest with a trained mixup run: a posterior file and its sidecar.

    Whole utterances in eval mode (no mixing); those longer than max_window_s are cut into equal
    windows whose posteriors are averaged. --embeddings writes the first dense layer's features.

    \b
    Example:
      sermm-system mixup predict runs/mixup --manifest eval.csv --output m_eval.csv
    """
    run_predict(RECIPE, opts, manifest_kwargs={"audio_root": audio_root})
