"""The text system's settings as one dataclass; the defaults are the TalTech LLaMA2-7B recipe."""

from __future__ import annotations

from dataclasses import dataclass, field

from sermm.errors import SermmError

FINETUNE = ("auto", "lora", "full")
QUANTIZE = ("none", "4bit")
DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class TextConfig:
    """What to load and how to fine-tune it.

    ``finetune="auto"`` means LoRA for decoder LLMs and full fine-tuning for encoders.
    LoRA defaults are the paper's LLaMA2-7B ones (rank 256, alpha 256, dropout 0.1); the 70B
    ones (rank 16, alpha 16, dropout 0.05) ship in ``examples/text/llama2_70b_qlora.yaml``.
    ``lora_target_modules`` empty means peft's default for the architecture (LLaMA: q_proj, v_proj).
    """

    backbone: str = ""
    task: str = "categorical"
    finetune: str = "auto"
    quantize: str = "none"
    #: Storage dtype of the packed 4-bit weights; ``bfloat16`` lets FSDP shard them (FSDP-QLoRA).
    quant_storage: str = "uint8"
    #: Dtype of the weights that are not quantised (``bfloat16`` halves a GPU run's memory).
    dtype: str = "float32"
    max_length: int = 256
    lora_r: int = 256
    lora_alpha: int = 256
    lora_dropout: float = 0.1
    lora_target_modules: list[str] = field(default_factory=list)
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        for name, allowed in (("finetune", FINETUNE), ("quantize", QUANTIZE), ("dtype", DTYPES)):
            if getattr(self, name) not in allowed:
                raise SermmError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.quant_storage not in ("uint8", *DTYPES):
            raise SermmError(f"quant_storage must be uint8 or one of {', '.join(DTYPES)}")
        if self.max_length < 1:
            raise SermmError("max_length must be at least 1")
