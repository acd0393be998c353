"""``sermm-system dmha``: BSC-UPC's multimodal DMHA system, train and predict (no torch at import)."""

from __future__ import annotations

from pathlib import Path

import click

from sermm.cli.common import SermmGroup
from sermm.cli.system_options import predict_options, run_predict, run_train, train_options

RECIPE = "sermm.systems.dmha:DMHARecipe"


def _inputs(func):
    func = click.option(
        "--transcripts",
        default=None,
        type=click.Path(dir_okay=False),
        help="With labels_consensus.csv: the transcript file id,text of every utterance.",
    )(func)
    return click.option(
        "--audio-root",
        type=click.Path(file_okay=False),
        default=None,
        help="Folder that relative audio paths (and MSP-Podcast FileNames) are under; default: the "
        "manifest's folder.",
    )(func)


def _absolute(value: str | None) -> str | None:
    """A local backbone directory as an absolute path (the run must find it from anywhere)."""
    return str(Path(value).resolve()) if value and Path(value).is_dir() else value


@click.group(cls=SermmGroup)
def dmha() -> None:
    """Multimodal early fusion with double multi-head attention (BSC-UPC, Odyssey 2024).

    Frozen speech features (wav2vec2, XLS-R, HuBERT or WavLM: a learned softmax-weighted sum of
    every layer) and frozen BERT features (last layer) are concatenated along time, go through a
    standard multi-head attention (4 heads, one output per position) or a sub-vector multi-head
    attention (one vector per head), a single-query attention pooling, 4 dense layers of 512
    (LayerNorm, GELU, dropout 0.1) and a softmax. The manifest needs both `path` and `text`.

    \b
    Example:
      sermm-system dmha train --train train.csv --dev dev.csv \\
          --backbone facebook/wav2vec2-large-robust --text-backbone bert-base-uncased \\
          --feature-cache cache/ --out runs/dmha
      sermm-system dmha predict runs/dmha --manifest eval.csv --output d_eval.csv --plot-attention 4
    """


@dmha.command()
@train_options
@click.option(
    "--text-backbone",
    default=None,
    metavar="ID_OR_DIR",
    help="The frozen text encoder (BERT-like), by Hugging Face id or local directory.",
)
@click.option(
    "--kind",
    type=click.Choice(["wav2vec2", "xls-r", "hubert", "wavlm"]),
    default=None,
    help="Speech backbone architecture; default: read from its config.json (model_type).",
)
@click.option(
    "--first-attention",
    type=click.Choice(["mha", "subvector"]),
    default=None,
    help="mha: standard multi-head self-attention, one output per position (default); subvector: "
    "each position split into one sub-vector per head, one learned query per head, one output per head.",
)
@click.option(
    "--loss",
    type=click.Choice(["wce", "focal"]),
    default=None,
    help="wce: inverse-frequency weighted cross-entropy (default); focal: focal loss (gamma 2).",
)
@click.option(
    "--feature-cache",
    type=click.Path(file_okay=False),
    default=None,
    help="Extract the frozen features once into this folder and train from there (safetensors, "
    "float16, keyed by backbone and audio/text hash). Augmented training batches are still extracted "
    "on the fly (see docs/systems.md).",
)
@_inputs
@click.option("--skip-bad", is_flag=True, help="Drop rows whose audio is unreadable instead of stopping.")
def train(
    text_backbone, kind, first_attention, loss, feature_cache, audio_root, transcripts, skip_bad, **opts
):
    """Train a DMHA system on a manifest id,path,text,label and write the run directory.

    Every config field can be set with --set (see docs/systems.md), e.g. --set speeds= --set
    noise=musan/noise --set rir=rirs --set crop_s=5.5 --set lr=1e-4 --set heads=4. The waveform
    mean and SD are computed from the training audio before the first epoch and saved with the
    run's config. The learning rate is halved after 5 epochs without dev macro-F1 gain, training
    stops after 15.

    \b
    Example:
      sermm-system dmha train --train train.csv --dev dev.csv --backbone microsoft/wavlm-large \\
          --text-backbone bert-base-uncased --first-attention subvector --loss focal \\
          --feature-cache cache/ --out runs/dmha-sub-focal
    """
    opts["backbone"] = _absolute(opts.get("backbone"))
    run_train(
        RECIPE,
        opts,
        manifest_kwargs={"audio_root": audio_root, "transcripts": transcripts},
        config_given={
            "text_backbone": _absolute(text_backbone),
            "kind": kind,
            "first_attention": first_attention,
            "loss": loss,
            "feature_cache": str(Path(feature_cache).resolve()) if feature_cache else None,
        },
        skip_bad=skip_bad,
    )


@dmha.command()
@predict_options
@_inputs
@click.option(
    "--plot-attention",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="Also write PNG heat maps of the attention weights of the first N utterances into --attention-dir.",
)
@click.option(
    "--attention-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder of the --plot-attention PNGs (one per utterance id); default: OUTPUT.attention/.",
)
def predict(audio_root, transcripts, plot_attention, attention_dir, **opts):
    """Score a manifest (id,path,text) with a trained DMHA run: a posterior file and its sidecar.

    Whole utterances are scored; with the run's feature cache their features are read from (or
    added to) it. Under `accelerate launch` each process scores a share and the first merges.

    \b
    Example:
      sermm-system dmha predict runs/dmha --manifest test.csv --output d_test.csv \\
          --embeddings d_test.emb.parquet --plot-attention 4
    """
    kwargs = {"audio_root": audio_root, "transcripts": transcripts}
    run_predict(RECIPE, opts, manifest_kwargs=kwargs)
    if plot_attention:
        from sermm.systems.dmha import DMHARecipe
        from sermm.systems.dmha import plot_attention as plot
        from sermm.systems.manifest import read_manifest

        manifest = read_manifest(opts["manifest"], need=DMHARecipe.need, split=opts["split"], **kwargs)
        folder = attention_dir or f"{opts['output']}.attention"
        written = plot(opts["run_dir"], manifest, plot_attention, folder)
        click.echo(f"wrote {len(written)} attention map(s) into {folder}/")
