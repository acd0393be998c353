"""The audio system's configuration: the shared :class:`SystemConfig` plus the audio fields.

The defaults are TalTech's Odyssey 2024 recipe (Härm & Alumäe): LoRA (rank 32, alpha 32, dropout
0.05) on the attention query and value projections, attentive pooling, a 256-unit dense + ReLU +
BatchNorm embedding, Adam at a peak learning rate of 1e-4 with warm-up and decay, weight decay 1e-3,
an effective batch of 64, random 2-4 s chunks, augmentation on half of the batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sermm.errors import SermmError
from sermm.systems.audio.augment import AugmentSettings
from sermm.systems.audio.kinds import KINDS, LAYER_MODES, POOLINGS
from sermm.systems.config import SystemConfig


@dataclass
class AudioConfig(SystemConfig):
    """Everything that defines an audio run (saved as the run's config.yaml)."""

    #: Hidden states into the pooling: "last" layer, or a learned softmax-"weighted" sum of all layers.
    layers: str = "last"
    #: The backbone's layer drop (0: every layer runs, as DDP needs); -1 keeps the checkpoint's value.
    layerdrop: float = 0.0
    gradient_checkpointing: bool = False
    pooling: str = "attentive"
    embedding_dim: int = 256
    #: Training chunk lengths: one drawn per batch in [chunk_min_s, chunk_max_s].
    chunk_min_s: float = 2.0
    chunk_max_s: float = 4.0
    #: Augmentation corpora: a folder (searched recursively) or a list file of the user's audio.
    noise: str = ""
    rir: str = ""
    snr_min_db: float = 0.0
    snr_max_db: float = 15.0
    speeds: list[float] = field(default_factory=lambda: [0.9, 1.1])
    #: The share of training batches augmented at all (speed, then reverberation, then noise).
    augment_prob: float = 0.5
    #: Within an augmented batch, each utterance's chance of reverberation and of noise.
    reverb_prob: float = 0.5
    noise_prob: float = 0.5
    #: Prediction: utterances longer than this are cut into equal windows whose posteriors are averaged.
    max_window_s: float = 20.0
    num_workers: int = 4

    def check(self) -> None:
        super().check()
        for key, allowed in (("layers", LAYER_MODES), ("pooling", POOLINGS)):
            if getattr(self, key) not in allowed:
                raise SermmError(
                    f"config: {key} must be one of {', '.join(allowed)}, got {getattr(self, key)!r}"
                )
        if self.kind and self.kind not in KINDS:
            raise SermmError(f"config: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not 0 < self.chunk_min_s <= self.chunk_max_s:
            raise SermmError(
                f"config: chunk_min_s and chunk_max_s must be a range of positive seconds, "
                f"got {self.chunk_min_s} and {self.chunk_max_s}"
            )
        if self.snr_min_db > self.snr_max_db:
            raise SermmError(
                f"config: snr_min_db ({self.snr_min_db}) is above snr_max_db ({self.snr_max_db})"
            )
        for key in ("augment_prob", "reverb_prob", "noise_prob"):
            if not 0 <= getattr(self, key) <= 1:
                raise SermmError(f"config: {key} must lie in [0, 1], got {getattr(self, key)}")
        if any(f <= 0 for f in self.speeds):
            raise SermmError(f"config: speeds must be positive factors, got {self.speeds}")
        for key in ("embedding_dim", "max_window_s"):
            if getattr(self, key) <= 0:
                raise SermmError(f"config: {key} must be positive, got {getattr(self, key)}")
        if not (self.layerdrop == -1 or 0 <= self.layerdrop < 1):
            raise SermmError(f"config: layerdrop must lie in [0, 1) or be -1, got {self.layerdrop}")

    def augment(self) -> AugmentSettings | None:
        """The augmentation settings, or None when nothing would change (no speeds, no corpora)."""
        if not (self.speeds or self.noise or self.rir) or self.augment_prob == 0:
            return None
        return AugmentSettings(
            noise=self.noise or None,
            rir=self.rir or None,
            snr_min_db=self.snr_min_db,
            snr_max_db=self.snr_max_db,
            speeds=tuple(self.speeds),
            batch_prob=self.augment_prob,
            noise_prob=self.noise_prob,
            reverb_prob=self.reverb_prob,
        )
