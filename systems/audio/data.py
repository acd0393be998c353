"""Audio batches for training and prediction, each a dict of tensors the model and the loop read.

Training (:class:`TrainingBatches`): batches of utterances of similar length; per batch one chunk
length is drawn in [``chunk_min_s``, ``chunk_max_s``] and every utterance gives a random chunk of
that length (the whole utterance when shorter), so that training batches carry little padding;
a share of the batches is augmented. Prediction (:class:`PredictionBatches`): whole utterances in
length-sorted batches of at most ``batch_seconds`` of padded audio; an utterance longer than
``max_window_s`` is cut into equal windows that the model averages (``window_owner``).

A batch is produced whole by ``dataset[i]`` (use ``DataLoader(dataset, batch_size=None)``), seeded
by (seed, epoch, batch number), so it is the same in any worker process and on any rank.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from sermm.systems.audio.augment import Augmenter
from sermm.systems.audio.io import SAMPLE_RATE, AudioInfo, read_audio
from sermm.systems.batching import length_batches

Features = Callable[[Sequence[np.ndarray]], dict[str, torch.Tensor]]


@dataclass
class AudioItems:
    """Utterances to read: paths, their headers (from :func:`~sermm.systems.audio.io.probe_audio`),
    optional targets (class indices (N,) or attributes (N, 3)), and the manifest and its line numbers
    for error messages."""

    paths: list[Path]
    infos: list[AudioInfo]
    targets: np.ndarray | None = None
    source: str | None = None
    lines: list[int] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if len(self.paths) != len(self.infos):
            raise ValueError(f"{len(self.paths)} paths for {len(self.infos)} audio headers")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def durations(self) -> np.ndarray:
        """Each utterance's length in seconds."""
        return np.array([info.duration for info in self.infos], dtype=np.float64)

    def read(self, i: int, offset: float = 0.0, duration: float | None = None) -> np.ndarray:
        """Utterance ``i`` (or ``duration`` s of it from ``offset``) at 16 kHz."""
        line = None if self.lines is None else self.lines[i]
        return read_audio(self.paths[i], offset=offset, duration=duration, source=self.source, line=line,
                          info=self.infos[i])  # fmt: skip

    def target_tensor(self, rows: np.ndarray) -> torch.Tensor:
        """The targets of ``rows``: LongTensor class indices or FloatTensor (B, 3)."""
        values = self.targets[rows]
        return torch.from_numpy(values.astype(np.int64 if values.ndim == 1 else np.float32))


def window_bounds(n_samples: int, max_samples: int) -> list[tuple[int, int]]:
    """Cut ``n_samples`` into the fewest equal windows of at most ``max_samples`` (start, stop)."""
    count = max(1, math.ceil(n_samples / max_samples))
    edges = np.linspace(0, n_samples, count + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


class TrainingBatches(Dataset):
    """Length-bucketed training batches of random chunks, augmented on a share of the batches."""

    def __init__(
        self,
        items: AudioItems,
        features: Features,
        *,
        batch_size: int,
        chunk_min_s: float = 2.0,
        chunk_max_s: float = 4.0,
        augmenter: Augmenter | None = None,
        seed: int = 0,
    ) -> None:
        if items.targets is None:
            raise ValueError("training needs targets")
        if not 0 < chunk_min_s <= chunk_max_s:
            raise ValueError(f"chunk range [{chunk_min_s}, {chunk_max_s}] s is not valid")
        self.items, self.features = items, features
        self.batch_size, self.chunk = batch_size, (chunk_min_s, chunk_max_s)
        self.augmenter, self.seed = augmenter, seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Re-draw the batches for ``epoch`` (another seed, other neighbours in each bucket)."""
        self.epoch = epoch
        self.batches = length_batches(self.items.durations, max_items=self.batch_size, shuffle=True,
                                      seed=self.seed + 7919 * epoch)  # fmt: skip

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, b: int) -> dict[str, torch.Tensor]:
        # two streams: the chunks drawn do not depend on whether or how the batch is augmented
        rng = np.random.default_rng([self.seed, self.epoch, b, 0])
        aug_rng = np.random.default_rng([self.seed, self.epoch, b, 1])
        rows = self.batches[b]
        seconds = float(rng.uniform(*self.chunk))
        augment = self.augmenter is not None and self.augmenter.batch_is_augmented(aug_rng)
        waves = []
        for i in rows:
            speed = self.augmenter.draw_speed(aug_rng) if augment else 1.0
            span = seconds * speed  # read this much; speed perturbation brings it back to `seconds`
            total = self.items.infos[i].duration
            offset = float(rng.uniform(0, max(0.0, total - span)))
            wave = self.items.read(int(i), offset, span)
            waves.append(self.augmenter(wave, aug_rng, speed=speed) if augment else wave)
        batch = self.features(waves)
        batch["index"] = torch.from_numpy(rows.astype(np.int64))
        batch["target"] = self.items.target_tensor(rows)
        return batch


class PredictionBatches(Dataset):
    """Whole utterances in deterministic length-sorted batches (long ones as averaged windows)."""

    def __init__(
        self,
        items: AudioItems,
        features: Features,
        *,
        batch_seconds: float = 200.0,
        max_items: int = 64,
        max_window_s: float = 20.0,
        rows: np.ndarray | None = None,
    ) -> None:
        self.items, self.features = items, features
        self.max_window = max(1, int(round(max_window_s * SAMPLE_RATE)))
        rows = np.arange(len(items)) if rows is None else np.asarray(rows, dtype=np.int64)
        order = length_batches(items.durations[rows], max_items=max_items, max_total=batch_seconds)
        self.batches = [rows[b] for b in order]

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, b: int) -> dict[str, torch.Tensor]:
        rows = self.batches[b]
        waves, owner = [], []
        for k, i in enumerate(rows):
            wave = self.items.read(int(i))
            for start, stop in window_bounds(len(wave), self.max_window):
                waves.append(wave[start:stop])
                owner.append(k)
        batch = self.features(waves)
        batch["index"] = torch.from_numpy(rows.astype(np.int64))
        if len(waves) > len(rows):
            batch["window_owner"] = torch.tensor(owner, dtype=torch.int64)
        if self.items.targets is not None:
            batch["target"] = self.items.target_tensor(rows)
        return batch
