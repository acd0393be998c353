"""``sermm-system text``: train transcript classifiers (LLaMA2 4-bit LoRA, RoBERTa, ...), score manifests."""

from __future__ import annotations

import click

from sermm.cli.common import SermmGroup
from sermm.cli.system_options import predict_options, run_predict, run_train, train_options

RECIPE = "sermm.systems.text.recipe:TextRecipe"

transcripts_option = click.option(
    "--transcripts",
    default=None,
    type=click.Path(dir_okay=False),
    help="With labels_consensus.csv: the transcript file id,text of every utterance (its sidecar's "
    "model_id, the ASR model, is recorded in the score file's sidecar). An empty text is kept.",
)


@click.group(cls=SermmGroup)
def text() -> None:
    """Text systems: a sequence classifier or attribute regressor on transcripts.

    Decoder LLMs (LLaMA2 and any causal model with a sequence-classification class in
    transformers) pool the last real token and train LoRA adapters plus the linear head,
    optionally on a 4-bit base (--quantize 4bit: NF4, nested quantisation, bf16 compute);
    encoders (RoBERTa, BERT, XLM-R, MiniLM) are fully fine-tuned with their first-token head.
    Defaults are the TalTech LLaMA2-7B recipe (LoRA rank 256, alpha 256, dropout 0.1, AdamW,
    lr 2e-5, batch 16).

    \b
    Examples:
      sermm-system text train --train train.csv --dev dev.csv --backbone roberta-large --out runs/roberta
      sermm-system text train --train train.csv --dev dev.csv --backbone meta-llama/Llama-2-7b-hf \\
          --quantize 4bit --out runs/llama7b
      sermm-system text predict runs/llama7b --manifest eval.csv --output t_eval.csv
    """


@text.command()
@train_options
@click.option(
    "--finetune",
    type=click.Choice(["auto", "lora", "full", "frozen"]),
    default=None,
    help="lora (adapters + head), full (every weight) or frozen (head only). Default auto: LoRA "
    "for decoder LLMs, full for encoders.",
)
@click.option(
    "--quantize",
    type=click.Choice(["none", "4bit"]),
    default=None,
    help="4bit: load the frozen base in bitsandbytes NF4 (QLoRA); needs LoRA. Default none.",
)
@transcripts_option
def train(finetune, quantize, transcripts, **opts):
    """Fine-tune a text backbone on a manifest (id,text,label [,arousal,valence,dominance, speaker]).

    Writes the run directory --out: config.yaml, labels.json (classes and training prior),
    log.jsonl (dev macro-F1 or mean CCC per epoch), checkpoints and best/ (the adapter and head,
    or the full weights, as safetensors). Every config field can be set with --set, e.g.
    --set max_length=64 --set class_weighted=true --set lr=1e-4 --set epochs=4.

    \b
    Examples:
      sermm-system text train --train train.csv --dev dev.csv --backbone roberta-large \\
          --out runs/roberta --set lr=1e-5 --set class_weighted=true
      sermm-system text train --train labels_consensus.csv --train-split Train \\
          --dev labels_consensus.csv --dev-split Development --transcripts whisper.csv \\
          --backbone meta-llama/Llama-2-7b-hf --quantize 4bit --out runs/llama7b
    """
    run_train(
        RECIPE,
        opts,
        manifest_kwargs={"transcripts": transcripts},
        config_given={"finetune": finetune, "quantize": quantize},
    )


@text.command()
@predict_options
@transcripts_option
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=None, help="Rows per batch (default: the run's)."
)
@click.option(
    "--max-tokens",
    type=click.IntRange(min=1),
    default=None,
    help="At most this many padded tokens per batch (batches are sorted by length).",
)
def predict(transcripts, batch_size, max_tokens, **opts):
    """Score a manifest with a run's best model: a posterior file (or attribute file) and its sidecar.

    Every manifest id gets a row, an empty transcript included. Under `accelerate launch` each
    process scores a share and the main one merges; a rerun after a crash scores only the rows
    that are missing.

    \b
    Example:
      sermm-system text predict runs/roberta --manifest eval.csv --output t_eval.csv \\
          --embeddings t_eval.emb.parquet
    """
    run_predict(
        RECIPE,
        opts,
        manifest_kwargs={"transcripts": transcripts},
        max_items=batch_size,
        max_total=max_tokens,
    )
