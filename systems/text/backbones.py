"""Text backbones by Hugging Face id or local directory: tokenizer, classification model, LoRA, 4-bit.

Decoder LLMs (LLaMA2 and any causal model that ``AutoModelForSequenceClassification`` knows) get LoRA
with peft's sequence-classification task type, so the linear head is trained and saved with the
adapter; ``quantize="4bit"`` loads the frozen base in bitsandbytes NF4 with nested quantisation and
bf16 compute (QLoRA). Encoders (RoBERTa, BERT, XLM-R, MiniLM) are fully fine-tuned by default.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedTokenizerBase,
)
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
)

from sermm.errors import SermmError
from sermm.systems.text.config import TextConfig

#: Files of which a backbone directory needs at least one to have a tokenizer.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
)
#: Names of the classification head in Hugging Face models: kept out of 4-bit and trained with LoRA.
HEAD_MODULES = ("score", "classifier")


def _reason(exc: BaseException) -> str:
    """The first line of an exception's message (library errors can run to many lines)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def load_tokenizer(backbone: str) -> PreTrainedTokenizerBase:
    """The backbone's tokenizer; a missing pad token is set to EOS (LLaMA ships none)."""
    path = Path(backbone)
    if path.is_dir() and not any((path / name).exists() for name in TOKENIZER_FILES):
        raise SermmError(
            f"{backbone}: backbone directory has no tokenizer "
            f"(none of {', '.join(TOKENIZER_FILES[:3])}, ...); "
            "save one there with tokenizer.save_pretrained(DIR)"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(backbone)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SermmError(f"{backbone}: cannot load the tokenizer ({_reason(exc)})") from None
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise SermmError(f"{backbone}: the tokenizer has neither a pad token nor an EOS token")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_hf_config(backbone: str) -> AutoConfig:
    """The backbone's ``config.json`` as a transformers config, with one-line errors."""
    path = Path(backbone)
    if path.is_dir() and not (path / "config.json").exists():
        raise SermmError(f"{backbone}: backbone directory has no config.json")
    try:
        return AutoConfig.from_pretrained(backbone)
    except (OSError, ValueError, KeyError) as exc:
        raise SermmError(f"{backbone}: cannot load the backbone ({_reason(exc)})") from None


def is_decoder(hf_config: AutoConfig) -> bool:
    """Decoder LLM: a causal-LM architecture without a masked-LM one (LLaMA, Mistral, GPT-2, ...).

    RoBERTa and BERT have causal-LM heads too, so a masked-LM head marks an encoder.
    """
    kind = hf_config.model_type
    return kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def decoder_backbone(config: TextConfig, hf_config: AutoConfig) -> bool:
    """Whether the backbone is a decoder LLM: the config's ``kind`` when set, else from ``model_type``."""
    return config.kind == "decoder" if config.kind else is_decoder(hf_config)


def resolve_finetune(config: TextConfig, decoder: bool) -> str:
    """``lora``, ``full`` or ``frozen``: ``auto`` is LoRA for decoders and full fine-tuning for encoders."""
    if config.finetune == "auto":
        return "lora" if decoder or config.quantize == "4bit" else "full"
    return config.finetune


def quantization_config(config: TextConfig):
    """bitsandbytes NF4 with nested (double) quantisation and bf16 compute; the head stays unquantised."""
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except Exception as exc:  # a broken bitsandbytes install fails in many ways, all of them here
        raise SermmError(f"--quantize 4bit: bitsandbytes cannot load ({_reason(exc)})") from None
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
        bnb_4bit_quant_storage=getattr(torch, config.quant_storage),
        llm_int8_skip_modules=list(HEAD_MODULES),
    )


@contextlib.contextmanager
def _quiet_load_report() -> Iterator[None]:
    """Hide transformers' load report: its "newly initialized" head is expected here (a new head is
    trained, or a run's trained one is loaded right after)."""
    from transformers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)


def _device_map() -> dict[str, object] | None:
    """Where a 4-bit model is loaded: this process's GPU (DDP: one copy per GPU), else the CPU default."""
    if not torch.cuda.is_available():
        return None
    from accelerate import PartialState

    return {"": PartialState().device}


def load_backbone(config: TextConfig, n_outputs: int, tokenizer: PreTrainedTokenizerBase) -> torch.nn.Module:
    """``AutoModelForSequenceClassification`` with ``n_outputs`` outputs, quantised and LoRA-wrapped.

    The model's ``pad_token_id`` is the tokenizer's (EOS for LLaMA). A head that the checkpoint
    already has with another number of outputs is replaced by a new one.
    """
    hf_config = load_hf_config(config.backbone)
    finetune = resolve_finetune(config, decoder_backbone(config, hf_config))
    hf_config.num_labels = n_outputs
    hf_config.pad_token_id = tokenizer.pad_token_id
    hf_config.problem_type = "regression" if config.task == "attributes" else "single_label_classification"
    # FSDP-QLoRA: FSDP flattens tensors of one dtype only, so the 4-bit weights are stored in the dtype
    # of every other weight and nothing is upcast (not the norms, as prepare_model_for_kbit_training
    # would, nor the adapters)
    sharded = config.quantize == "4bit" and config.quant_storage != "uint8"
    kwargs = {"dtype": getattr(torch, config.dtype)}
    if config.quantize == "4bit":
        kwargs["quantization_config"] = quantization_config(config)
        if not sharded:  # FSDP places the shards itself
            kwargs["device_map"] = _device_map()
    try:
        with _quiet_load_report():
            model = AutoModelForSequenceClassification.from_pretrained(
                config.backbone, config=hf_config, ignore_mismatched_sizes=True, **kwargs
            )
    except (OSError, ValueError, KeyError) as exc:
        raise SermmError(f"{config.backbone}: cannot load the backbone ({_reason(exc)})") from None
    checkpointing = {"use_reentrant": False}
    if config.quantize == "4bit" and not sharded:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=True, gradient_checkpointing_kwargs=checkpointing
        )
    elif config.gradient_checkpointing or sharded:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=checkpointing)
    if finetune == "lora":
        from peft import LoraConfig, TaskType, get_peft_model

        lora = LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=list(config.lora_targets) or None,
        )
        model = get_peft_model(model, lora, autocast_adapter_dtype=not sharded)
    elif finetune == "frozen":
        model.requires_grad_(False)
        for name in HEAD_MODULES:
            if hasattr(model, name):
                getattr(model, name).requires_grad_(True)
    return model
