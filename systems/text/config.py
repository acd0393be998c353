"""The text system's settings; the defaults are the TalTech LLaMA2-7B recipe."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sermm.errors import SermmError
from sermm.systems.config import SystemConfig

KINDS = ("", "decoder", "encoder")
QUANTIZE = ("none", "4bit")
DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class TextConfig(SystemConfig):
    """What to load and how to fine-tune it.

    ``finetune: auto`` is LoRA for decoder LLMs and full fine-tuning for encoders (``frozen``
    trains the head only). The LoRA and optimiser defaults are the paper's LLaMA2-7B ones (rank
    256, alpha 256, dropout 0.1, AdamW, lr 2e-5, batch 16); the 70B ones ship in
    ``examples/text/llama2_70b_qlora.yaml``. ``kind`` (``decoder``/``encoder``) overrides what
    is read from the checkpoint's ``model_type``.
    """

    finetune: str = "auto"
    lora_r: int = 256
    lora_alpha: int = 256
    lora_dropout: float = 0.1
    epochs: int = 3
    optimizer: str = "adamw"
    lr: float = 2e-5
    weight_decay: float = 0.01
    batch_size: int = 16
    effective_batch: int = 16
    #: Tokens kept per transcript (longer ones are truncated).
    max_length: int = 256
    #: ``4bit``: the frozen base in bitsandbytes NF4, nested quantisation, bf16 compute (QLoRA).
    quantize: str = "none"
    #: Storage dtype of the packed 4-bit weights; ``bfloat16`` (with ``dtype: bfloat16``) lets FSDP
    #: shard them (FSDP-QLoRA).
    quant_storage: str = "uint8"
    #: Dtype of the weights that are not quantised (``bfloat16`` halves a GPU run's memory).
    dtype: str = "float32"
    #: Recompute activations in the backward pass (always on with ``quantize: 4bit``).
    gradient_checkpointing: bool = False

    def check(self) -> None:
        finetune = "full" if self.finetune == "auto" else self.finetune
        SystemConfig.check(dataclasses.replace(self, finetune=finetune))
        for key, allowed in (("kind", KINDS), ("quantize", QUANTIZE), ("dtype", DTYPES)):
            if getattr(self, key) not in allowed:
                shown = ", ".join(a or "''" for a in allowed)
                raise SermmError(f"config: {key} must be one of {shown}, got {getattr(self, key)!r}")
        if self.quant_storage not in ("uint8", *DTYPES):
            raise SermmError(f"config: quant_storage must be uint8 or one of {', '.join(DTYPES)}")
        if self.max_length < 1:
            raise SermmError(f"config: max_length must be at least 1, got {self.max_length}")
        if self.quant_storage not in ("uint8", self.dtype):
            raise SermmError(
                f"config: quant_storage={self.quant_storage} (FSDP-QLoRA) needs dtype={self.quant_storage} "
                f"as well, not {self.dtype}: FSDP shards weights of one dtype"
            )
        if self.quantize == "4bit" and self.finetune in ("full", "frozen"):
            raise SermmError(f"--quantize 4bit trains LoRA adapters, not finetune={self.finetune}: use lora")
