"""The audio system's configuration: one dataclass, loadable from YAML and overridable with ``--set``.

The defaults are TalTech's Odyssey 2024 recipe (Härm & Alumäe): Wav2Vec2-BERT with LoRA (rank 32,
alpha 32, dropout 0.05) on the attention query and value projections, attentive pooling, a 256-unit
dense + ReLU + BatchNorm embedding, Adam at a peak learning rate of 1e-4 with warm-up and decay,
weight decay 1e-3, an effective batch of 64, random 2-4 s chunks, augmentation on half of the batches.
"""

from __future__ import annotations

from dataclasses import dataclass

from sermm.errors import SermmError
from sermm.systems.audio.augment import AugmentSettings
from sermm.systems.audio.backbones import FINETUNE_MODES, KINDS, LAYER_MODES, LoraSettings
from sermm.systems.audio.model import POOLINGS
from sermm.systems.heads import TASKS


@dataclass
class AudioConfig:
    """Everything that defines an audio run (saved as the run's config.yaml)."""

    # backbone
    backbone: str = "facebook/w2v-bert-2.0"
    kind: str | None = None
    layers: str = "last"
    finetune: str = "lora"
    lora_rank: int = 32
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    #: Module names LoRA adapts, comma-separated; empty: the backbone's attention query and value.
    lora_targets: str = ""
    gradient_checkpointing: bool = False
    # head
    task: str = "categorical"
    pooling: str = "attentive"
    embedding_dim: int = 256
    # training
    epochs: int = 10
    lr: float = 1e-4
    weight_decay: float = 1e-3
    warmup: float = 0.1
    batch_size: int = 8
    effective_batch: int = 64
    class_weighted: bool = False
    chunk_min_s: float = 2.0
    chunk_max_s: float = 4.0
    seed: int = 0
    num_workers: int = 2
    # augmentation (corpora are folders or list files of the user's own audio)
    noise: str | None = None
    rir: str | None = None
    snr_min_db: float = 0.0
    snr_max_db: float = 15.0
    #: Speed factors, comma-separated; empty: no speed perturbation.
    speeds: str = "0.9,1.1"
    augment_prob: float = 0.5
    noise_prob: float = 0.5
    reverb_prob: float = 0.5
    # prediction
    max_window_s: float = 20.0
    batch_seconds: float = 200.0

    def __post_init__(self) -> None:
        for name, allowed in (("task", TASKS), ("finetune", FINETUNE_MODES), ("layers", LAYER_MODES),
                              ("pooling", POOLINGS)):  # fmt: skip
            if getattr(self, name) not in allowed:
                raise SermmError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.kind is not None and self.kind not in KINDS:
            raise SermmError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not 0 < self.chunk_min_s <= self.chunk_max_s:
            raise SermmError(f"chunk_min_s/chunk_max_s [{self.chunk_min_s}, {self.chunk_max_s}] is not a range")
        if self.batch_size < 1 or self.effective_batch < self.batch_size:
            raise SermmError(f"effective_batch ({self.effective_batch}) must be >= batch_size ({self.batch_size})")
        self.speed_factors()

    def lora(self) -> LoraSettings:
        targets = tuple(t.strip() for t in self.lora_targets.split(",") if t.strip())
        return LoraSettings(rank=self.lora_rank, alpha=self.lora_alpha, dropout=self.lora_dropout,
                            targets=targets or None)  # fmt: skip

    def speed_factors(self) -> tuple[float, ...]:
        try:
            return tuple(float(f) for f in str(self.speeds).split(",") if f.strip())
        except ValueError:
            raise SermmError(f"speeds must be comma-separated numbers, got {self.speeds!r}") from None

    def augment(self) -> AugmentSettings:
        return AugmentSettings(
            noise=self.noise, rir=self.rir, snr_min_db=self.snr_min_db, snr_max_db=self.snr_max_db,
            speeds=self.speed_factors(), batch_prob=self.augment_prob, noise_prob=self.noise_prob,
            reverb_prob=self.reverb_prob,
        )  # fmt: skip
