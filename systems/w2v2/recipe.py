"""The wav2vec 2.0 fine-tuning strategies as a recipe of the shared loop (``sermm-system w2v2``).

Every strategy ends in the same downstream model, V-FT's: the backbone's last-layer frames,
averaged over the real frames, → ReLU → a linear output layer. TAPT and P-TAPT first continue
pre-training on the training manifest's audio (:mod:`.pretrain`) and write the result into the run
directory as ``RUN_DIR/pretrained/model.safetensors`` (with ``log.jsonl``); the downstream model
starts from it, and prediction rebuilds the backbone from it before loading the fine-tuned weights.
A resumed run keeps the pre-training it has.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from sermm.atomic import atomic_path
from sermm.errors import SermmError
from sermm.systems.audio.model import merge_windows
from sermm.systems.audio.utterance import UtteranceConfig, UtteranceRecipe, load_waveform_backbone
from sermm.systems.config import SCHEDULES
from sermm.systems.manifest import Inventory, Manifest
from sermm.systems.pooling import masked_mean
from sermm.systems.w2v2 import STRATEGIES

#: Where a TAPT / P-TAPT run keeps its continued-pre-training weights.
PRETRAINED = Path("pretrained") / "model.safetensors"


@dataclass
class W2V2Config(UtteranceConfig):
    """A wav2vec 2.0 fine-tuning run. The strategies, the V-FT head, the contrastive TAPT objective and
    the k-means masked prediction of P-TAPT are the paper's; the defaults are sermm's, smaller than
    FT-w2v2-ser's (docs/systems.md gives the command with the repository's settings)."""

    backbone: str = "facebook/wav2vec2-base"
    strategy: str = "v-ft"
    optimizer: str = "adamw"
    lr: float = 5e-5
    epochs: int = 15
    batch_size: int = 8
    effective_batch: int = 32
    #: Continued pre-training (tapt, p-tapt): epochs over the training audio, optional step cap, rate.
    pretrain_epochs: int = 5
    pretrain_steps: int = 0
    pretrain_lr: float = 5e-5
    #: The pre-training rate's schedule, as the training loop's: linear warm-up over
    #: ``pretrain_warmup_steps``, then constant, or a linear (FT-w2v2-ser's) or cosine decay to 0 at
    #: ``pretrain_steps`` (which a decay needs).
    pretrain_schedule: str = "constant"
    pretrain_warmup_steps: int = 0
    #: Span masking of pre-training: the share of frames that start a span, and the span length.
    mask_time_prob: float = 0.65
    mask_time_length: int = 10
    #: TAPT: Gumbel-softmax temperature of the quantiser, decayed per step from max to min.
    gumbel_max: float = 2.0
    gumbel_min: float = 0.5
    gumbel_decay: float = 0.999995
    #: P-TAPT: k-means cluster counts, one pseudo-label inventory and prediction head each
    #: (FT-w2v2-ser: 64,512,4096), and the hidden state clustered (−1: the last layer) ...
    clusters: list[int] = field(default_factory=lambda: [64])
    kmeans_layer: int = -1
    #: ... of this model: empty for the backbone itself, another wav2vec2-family checkpoint, or a
    #: ``sermm-system w2v2`` run directory (a model fine-tuned on the emotion labels, whose clusters
    #: are pseudo emotion labels: the paper's first phase).
    kmeans_model: str = ""

    def check(self) -> None:
        super().check()
        if self.strategy not in STRATEGIES:
            raise SermmError(
                f"config: strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}"
            )
        for key in ("pretrain_epochs", "mask_time_length"):
            if getattr(self, key) < 1:
                raise SermmError(f"config: {key} must be at least 1, got {getattr(self, key)}")
        if not self.clusters or min(self.clusters) < 2:
            raise SermmError(f"config: clusters must be counts of at least 2, got {self.clusters}")
        for key in ("pretrain_steps", "pretrain_warmup_steps"):
            if getattr(self, key) < 0:
                raise SermmError(f"config: {key} must not be negative, got {getattr(self, key)}")
        if self.pretrain_schedule not in SCHEDULES:
            raise SermmError(
                f"config: pretrain_schedule must be one of {', '.join(SCHEDULES)}, "
                f"got {self.pretrain_schedule!r}"
            )
        if self.pretrain_schedule != "constant" and not self.pretrain_steps:
            raise SermmError(
                f"config: pretrain_schedule {self.pretrain_schedule} decays to 0 at pretrain_steps; set it"
            )
        if self.pretrain_lr <= 0:
            raise SermmError(f"config: pretrain_lr must be positive, got {self.pretrain_lr}")
        if not 0 < self.mask_time_prob < 1:
            raise SermmError(f"config: mask_time_prob must lie in (0, 1), got {self.mask_time_prob}")
        if not 0 < self.gumbel_min <= self.gumbel_max or not 0 < self.gumbel_decay <= 1:
            raise SermmError("config: gumbel_min ≤ gumbel_max must be positive and gumbel_decay in (0, 1]")


class VFTModel(nn.Module):
    """V-FT: backbone → mean of the last layer's real frames → ReLU (the embedding) → linear."""

    def __init__(self, backbone: nn.Module, n_out: int, config: W2V2Config) -> None:
        super().__init__()
        self.backbone = backbone
        self.task = config.task
        self.frozen_backbone = config.finetune == "frozen"
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(backbone.hidden_size, n_out)

    def train(self, mode: bool = True) -> VFTModel:
        super().train(mode)
        if self.frozen_backbone:
            self.backbone.model.eval()
        return self

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        hidden, mask = self.backbone(batch)
        embedding = torch.relu(masked_mean(hidden, mask))
        return merge_windows(self.output(self.dropout(embedding)), embedding, batch, self.task)


class W2V2Recipe(UtteranceRecipe):
    """V-FT, TAPT + fine-tuning, P-TAPT + fine-tuning (``--strategy``)."""

    system = "w2v2"
    need = "path"
    config_class = W2V2Config

    def __init__(self) -> None:
        super().__init__()
        self._run: Path | None = None

    def check_config(self, config: W2V2Config) -> None:
        """Before anything is written: a wav2vec2-family backbone, and for TAPT a wav2vec2 / XLS-R one
        (the contrastive objective needs its quantiser)."""
        super().check_config(config)
        from sermm.systems.audio.backbones import detect_kind

        kind = detect_kind(config.backbone, config.kind or None)
        if config.strategy == "tapt" and kind not in ("wav2vec2", "xls-r"):
            raise SermmError(
                f"{config.backbone}: tapt continues wav2vec 2.0's contrastive pre-training and needs a "
                f"wav2vec2 / XLS-R backbone, not {kind} (p-tapt works with any wav2vec2-family one)"
            )
        if config.kmeans_model:
            self._check_kmeans_model(config)

    @staticmethod
    def _check_kmeans_model(config: W2V2Config) -> None:
        """``kmeans_model`` is for p-tapt, and is a w2v2 run directory or a wav2vec2-family checkpoint."""
        from sermm.systems.audio.backbones import detect_kind
        from sermm.systems.audio.utterance import WAVEFORM_KINDS
        from sermm.systems.rundir import RunDir

        if config.strategy != "p-tapt":
            raise SermmError(
                f"kmeans_model is the source of p-tapt's clusters; strategy is {config.strategy}"
            )
        path = Path(config.kmeans_model)
        if (path / "run.json").exists():
            RunDir.open(path, system="w2v2")
            return
        kind = detect_kind(config.kmeans_model)
        if kind not in WAVEFORM_KINDS:
            raise SermmError(
                f"kmeans_model {config.kmeans_model}: a {kind} model; its frames must be a "
                f"wav2vec2-family model's ({', '.join(WAVEFORM_KINDS)})"
            )

    def setup_run(
        self, run: Any, config: W2V2Config, train: Manifest | None, accelerator: Any, *, quiet: bool = False
    ) -> None:
        """Training: run the strategy's continued pre-training on ``train``'s audio unless the run
        has it; prediction (``train`` None): only note the run directory it reads it from."""
        self._run = Path(run.path)
        if config.strategy == "v-ft":
            return
        path = self._run / PRETRAINED
        if train is not None and not path.exists():
            if accelerator.is_main_process:
                from sermm.systems.audio.backbones import detect_kind, load_features
                from sermm.systems.w2v2.pretrain import continue_pretraining

                path.parent.mkdir(parents=True, exist_ok=True)
                log_file = path.parent / "log.jsonl"

                def log(record: dict[str, Any]) -> None:
                    with open(log_file, "a", encoding="utf-8") as handle:
                        handle.write(json.dumps(record) + "\n")

                state = continue_pretraining(
                    config.strategy,
                    config,
                    detect_kind(config.backbone, config.kind or None),
                    self._items(train),
                    load_features(config.backbone, config.kind or None),
                    accelerator.device,
                    log,
                    quiet=quiet,
                )
                with atomic_path(path) as tmp:
                    save_file(state, str(tmp))
            accelerator.wait_for_everyone()
        if not path.exists():
            raise SermmError(
                f"{self._run}: a {config.strategy} run without its continued pre-training weights "
                f"({PRETRAINED})"
            )

    def build_model(self, config: W2V2Config, inventory: Inventory) -> nn.Module:
        state, source = None, ""
        if config.strategy != "v-ft":
            if self._run is None:
                raise SermmError(
                    f"{config.strategy}: the run directory is not known (setup_run() was not called)"
                )
            source = str(self._run / PRETRAINED)
            state = load_file(source)
        return VFTModel(
            load_waveform_backbone(config, state=state, source=source), inventory.n_outputs, config
        )
