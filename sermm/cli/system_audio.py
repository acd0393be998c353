"""``sermm-system audio``: train the audio system and score manifests with it (no torch at import)."""

from __future__ import annotations

from pathlib import Path

import click

from sermm.cli.common import SermmGroup
from sermm.cli.system_options import predict_options, run_predict, run_train, train_options
from sermm.systems.audio.kinds import FINETUNE_MODES, KINDS, LAYER_MODES

RECIPE = "sermm.systems.audio.recipe:AudioRecipe"


def _audio_root(func):
    return click.option(
        "--audio-root",
        type=click.Path(file_okay=False),
        default=None,
        help="Folder that relative audio paths (and MSP-Podcast FileNames) are under; default: the "
        "manifest's folder.",
    )(func)


@click.group(cls=SermmGroup)
def audio() -> None:
    """Speech emotion recognition from audio (TalTech's Odyssey 2024 audio system).

    A pretrained speech encoder - Wav2Vec2-BERT, a converted SONAR speech encoder, wav2vec2/XLS-R,
    HuBERT or WavLM, by Hugging Face id or local directory - fine-tuned with LoRA (or fully, or
    frozen), attentive pooling over its frames, a dense + ReLU + BatchNorm embedding layer, and a
    softmax over the training classes (or three attribute outputs trained on -mean CCC).

    \b
    Example:
      sermm-system audio train --train train.csv --dev dev.csv \\
          --backbone facebook/w2v-bert-2.0 --out runs/w2vbert
      sermm-system audio predict runs/w2vbert --manifest eval.csv \\
          --output a_eval.csv --embeddings a_eval.emb.parquet
    """


@audio.command()
@train_options
@click.option(
    "--finetune",
    type=click.Choice(FINETUNE_MODES),
    default=None,
    help="lora: adapters on the attention query/value projections, base frozen (default); "
    "full: train everything; frozen: train the head only.",
)
@click.option(
    "--kind",
    type=click.Choice(KINDS),
    default=None,
    help="Backbone architecture; default: read from the checkpoint's config.json (model_type).",
)
@click.option(
    "--layers",
    type=click.Choice(LAYER_MODES),
    default=None,
    help="Pool the last layer (default) or a learned softmax-weighted sum of all layers.",
)
@_audio_root
@click.option(
    "--skip-bad",
    is_flag=True,
    help="Drop rows whose audio is missing, empty or unreadable (listed on stderr) instead of "
    "stopping at the first.",
)
def train(finetune, kind, layers, audio_root, skip_bad, **opts) -> None:
    """Train an audio system on a manifest and write the run directory.

    The manifest is a CSV/Parquet file id,path,label (optional arousal,valence,dominance and
    speaker), or MSP-Podcast's labels_consensus.csv with --train-split/--dev-split and
    --audio-root. Audio of any sample rate is resampled to 16 kHz, stereo averaged to mono. Every
    file is checked before training starts; a bad one stops it (one line naming the file and
    manifest line) unless --skip-bad.

    Each training batch holds random chunks of one length drawn in [chunk_min_s, chunk_max_s]
    (2-4 s); with augmentation (--set noise=DIR, --set rir=DIR, speed 0.9/1.1) on half of the
    batches. The best epoch by dev macro-F1 (or mean CCC) is kept in RUN_DIR/best. Under
    `accelerate launch` the same command trains on many GPUs (DDP).

    \b
    Examples:
      sermm-system audio train --train train.csv --dev dev.csv \\
          --backbone facebook/w2v-bert-2.0 --out runs/w2vbert --set epochs=10
      sermm-system audio train --train labels_consensus.csv --train-split Train \\
          --dev labels_consensus.csv --dev-split Development --audio-root Audios \\
          --backbone microsoft/wavlm-large --layers weighted --out runs/wavlm \\
          --set noise=musan/noise --set rir=rirs_noises/simulated_rirs
    """
    if opts.get("backbone") and Path(opts["backbone"]).is_dir():
        opts["backbone"] = str(Path(opts["backbone"]).resolve())  # the run must find it from anywhere
    run_train(
        RECIPE,
        opts,
        manifest_kwargs={"audio_root": audio_root},
        config_given={"finetune": finetune, "kind": kind, "layers": layers},
        skip_bad=skip_bad,
    )


@audio.command()
@predict_options
@_audio_root
@click.option(
    "--batch-seconds",
    type=click.FloatRange(min=1.0),
    default=None,
    metavar="S",
    help="Cap each batch at S seconds of padded audio (batches sorted by length); default: "
    "the run's batch_size utterances per batch.",
)
def predict(audio_root, batch_seconds, **opts) -> None:
    """Score a manifest with a trained audio run: a posterior (or attribute) file and its sidecar.

    Whole utterances are scored in eval mode in batches sorted by length; utterances longer than
    the run's max_window_s are cut into equal windows whose posteriors are averaged. The sidecar
    carries the system name, the classes, the training class prior, the backbone and the run's
    config hash, so `sermm-calibrate prior --uniform` and `sermm-fuse` take the file as it is.
    MSP-Podcast's O and X are dropped and the rest renormalised unless --keep-all-classes.
    Under `accelerate launch` each process scores a share and the first merges; a rerun after a
    crash scores only what is missing.

    \b
    Example:
      sermm-system audio predict runs/w2vbert --manifest labels_consensus.csv \\
          --split Test1 --audio-root Audios --output a_test.csv --embeddings a_test.emb.parquet
    """
    run_predict(
        RECIPE,
        opts,
        manifest_kwargs={"audio_root": audio_root},
        max_total=batch_seconds,
        max_items=256 if batch_seconds else None,
    )
