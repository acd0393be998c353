"""The audio system as a recipe of the shared training loop and prediction writer (``sermm-system audio``)."""

from __future__ import annotations

import sys

import numpy as np
from torch import nn

from sermm.errors import SermmError
from sermm.systems.audio.augment import Augmenter
from sermm.systems.audio.backbones import (
    check_lora_targets,
    detect_kind,
    load_backbone,
    load_features,
    lora_settings,
)
from sermm.systems.audio.config import AudioConfig
from sermm.systems.audio.data import AudioDataset, AudioItems, batch_lengths
from sermm.systems.audio.io import AudioInfo, probe_audio
from sermm.systems.audio.model import AudioModel
from sermm.systems.manifest import Inventory, Manifest


class AudioRecipe:
    """Backbone → attentive pooling → embedding layer → output, on the manifest's audio files."""

    system = "audio"
    need = "path"
    config_class = AudioConfig

    def __init__(self) -> None:
        # the audio headers read by validate(), per manifest (kept alive so that its id stays unique)
        self._headers: dict[int, tuple[Manifest, list[AudioInfo]]] = {}

    def build_model(self, config: AudioConfig, inventory: Inventory) -> nn.Module:
        backbone = load_backbone(
            config.backbone,
            kind=config.kind or None,
            layers=config.layers,
            finetune=config.finetune,
            lora=lora_settings(config),
            layerdrop=None if config.layerdrop == -1 else config.layerdrop,
            gradient_checkpointing=config.gradient_checkpointing,
        )
        return AudioModel(
            backbone,
            inventory.n_outputs,
            task=config.task,
            embedding_dim=config.embedding_dim,
            pooling=config.pooling,
            frozen_backbone=config.finetune == "frozen",
        )

    def check_config(self, config: AudioConfig) -> None:
        """Before training writes anything: the backbone's config and feature extractor can be read,
        the LoRA targets name modules of it, and the augmentation corpora exist and hold audio."""
        load_features(config.backbone, config.kind or None)
        if config.finetune == "lora":
            kind = detect_kind(config.backbone, config.kind or None)
            check_lora_targets(config.backbone, kind, config.lora_targets)
        settings = config.augment()
        if settings is not None:
            Augmenter(settings)

    def validate(self, manifest: Manifest, *, skip_bad: bool) -> Manifest:
        """Read every audio header (missing, empty, unreadable or zero-length files are one error);
        with ``skip_bad`` such rows are dropped and listed on stderr."""
        infos, bad = probe_audio(
            list(manifest.paths),
            source=manifest.source,
            lines=[int(n) for n in manifest.lines],
            skip_bad=skip_bad,
        )
        if bad:
            keep = np.array([i is not None for i in infos])
            if not keep.any():
                raise SermmError(f"{manifest.source}: no readable audio (first: {bad[0]})")
            print(f"skipped {len(bad)} bad row(s) of {manifest.source} (--skip-bad):", file=sys.stderr)
            for message in bad:
                print(f"  {message}", file=sys.stderr)
            manifest = manifest.take(np.flatnonzero(keep))
            infos = [i for i in infos if i is not None]
        self._headers[id(manifest)] = (manifest, infos)
        return manifest

    def _items(self, manifest: Manifest) -> AudioItems:
        if id(manifest) not in self._headers:
            self.validate(manifest, skip_bad=False)
        infos = self._headers[id(manifest)][1]
        return AudioItems(
            list(manifest.paths), infos, source=manifest.source, lines=[int(n) for n in manifest.lines]
        )

    def dataset(self, manifest: Manifest, config: AudioConfig, *, train: bool) -> AudioDataset:
        settings = config.augment() if train else None
        return AudioDataset(
            self._items(manifest),
            load_features(config.backbone, config.kind or None),
            train=train,
            chunk_min_s=config.chunk_min_s,
            chunk_max_s=config.chunk_max_s,
            augmenter=Augmenter(settings) if settings is not None else None,
            max_window_s=config.max_window_s,
            seed=config.seed,
        )

    def lengths(self, manifest: Manifest, config: AudioConfig, *, train: bool) -> np.ndarray:
        """Seconds of audio per row (in training at most the longest chunk)."""
        return batch_lengths(self._items(manifest).durations, train=train, chunk_max_s=config.chunk_max_s)
