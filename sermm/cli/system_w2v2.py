"""``sermm-system w2v2``: wav2vec 2.0 fine-tuning strategies V-FT, TAPT, P-TAPT (Chen & Rudnicky,
ICASSP 2023); no torch at import."""

from __future__ import annotations

import functools

import click

from sermm.cli.common import SermmGroup
from sermm.cli.system_mixup import audio_root, kind_option, skip_bad_option, train_or_folds
from sermm.cli.system_options import fold_options, predict_options, run_predict, train_options
from sermm.systems.w2v2 import STRATEGIES

RECIPE = "sermm.systems.w2v2.recipe:W2V2Recipe"


@click.group(cls=SermmGroup)
def w2v2() -> None:
    """Fine-tuning strategies for wav2vec 2.0 (Chen & Rudnicky, ICASSP 2023, FT-w2v2-ser).

    v-ft: fine-tune the backbone under mean pooling of its last layer, ReLU and a linear layer.
    tapt: first continue wav2vec 2.0's contrastive pre-training on the training audio (wav2vec2 /
    XLS-R backbones). p-tapt: first cluster frames with k-means (the pretrained model's, or with
    --set kmeans_model=RUN those of a fine-tuned w2v2 run, as the paper does) and train the model
    to predict the cluster ids of masked frames (any wav2vec2-family backbone). Both then
    fine-tune as v-ft does; the pre-training result stays in RUN_DIR/pretrained/. The authors'
    settings: --config examples/recipes/ftw2v2.yaml.

    \b
    Example:
      sermm-system w2v2 train --strategy p-tapt --train train.csv --dev dev.csv \\
          --backbone facebook/wav2vec2-base --out runs/ptapt
      sermm-system w2v2 predict runs/ptapt --manifest eval.csv --output w_eval.csv
    """


@w2v2.command()
@functools.partial(train_options, dev_required=False)
@fold_options
@click.option(
    "--strategy",
    type=click.Choice(STRATEGIES),
    default=None,
    help="v-ft (default): fine-tune directly; tapt: contrastive pre-training on the task audio "
    "first; p-tapt: k-means pseudo-label masked prediction first.",
)
@click.option(
    "--finetune",
    type=click.Choice(["full", "lora", "frozen"]),
    default=None,
    help="Downstream: full (default, everything but the CNN feature encoder), lora, or frozen.",
)
@kind_option
@audio_root
@skip_bad_option
def train(strategy, finetune, kind, audio_root, skip_bad, **opts) -> None:
    """Train a wav2vec 2.0 system with a fine-tuning strategy (or cross-validate it with --folds).

    The manifest is id,path,label (optional speaker, session...), or MSP-Podcast's
    labels_consensus.csv with --train-split/--dev-split and --audio-root. Pre-training (tapt,
    p-tapt) reads each training utterance's first max_train_s seconds; --set pretrain_epochs,
    pretrain_steps, pretrain_lr, pretrain_schedule, pretrain_warmup_steps, clusters (one or more
    counts: 64,512,4096), kmeans_layer, kmeans_model, mask_time_prob change it. With --folds each
    fold pre-trains on its own training audio only.

    \b
    Examples:
      sermm-system w2v2 train --strategy tapt --train train.csv --dev dev.csv \\
          --backbone facebook/wav2vec2-base --out runs/tapt
      sermm-system w2v2 train --strategy v-ft --train iemocap.csv --folds session \\
          --backbone facebook/wav2vec2-base --out runs/vft-cv
    """
    given = {"strategy": strategy, "finetune": finetune, "kind": kind}
    train_or_folds(RECIPE, opts, given, audio_root, skip_bad)


@w2v2.command()
@predict_options
@audio_root
def predict(audio_root, **opts) -> None:
    """Score a manifest with a trained w2v2 run: a posterior (or attribute) file and its sidecar.

    Whole utterances in eval mode; those longer than max_window_s are cut into equal windows whose
    posteriors are averaged. A tapt/p-tapt run rebuilds its backbone from RUN_DIR/pretrained/.

    \b
    Example:
      sermm-system w2v2 predict runs/tapt --manifest eval.csv --output w_eval.csv
    """
    run_predict(RECIPE, opts, manifest_kwargs={"audio_root": audio_root})
