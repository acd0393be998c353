"""Audio batches for training and prediction, each a dict of tensors the model and the loop read.

The batches themselves (which rows go together) come from length bucketing
(:func:`sermm.systems.batching.length_batches` over :meth:`AudioDataset.lengths`); the dataset
turns a batch of rows into model inputs in :meth:`AudioDataset.collate`.
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
        return read_audio(
            self.paths[i], offset=offset, duration=duration, source=self.source, line=line, info=self.infos[i]
        )

    def target_tensor(self, rows: np.ndarray) -> torch.Tensor:
        """The targets of ``rows``: LongTensor class indices or FloatTensor (B, 3)."""
        values = self.targets[rows]
        return torch.from_numpy(values.astype(np.int64 if values.ndim == 1 else np.float32))


def batch_lengths(durations: np.ndarray, *, train: bool, chunk_max_s: float) -> np.ndarray:
    """What length bucketing sorts by: seconds, and in training at most the longest chunk (every
    longer utterance gives a chunk of the batch's one length)."""
    return np.minimum(durations, chunk_max_s) if train else durations


def window_bounds(n_samples: int, max_samples: int) -> list[tuple[int, int]]:
    """Cut ``n_samples`` into the fewest equal windows of at most ``max_samples`` (start, stop)."""
    count = max(1, math.ceil(n_samples / max_samples))
    edges = np.linspace(0, n_samples, count + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


class AudioDataset(Dataset):
    """The utterances of a manifest for training or prediction; ``dataset[i]`` is row ``i`` and
    :meth:`collate` reads, cuts, augments and featurises a whole batch of rows at once.

    Training (``train=True``): one chunk length per batch, drawn in [``chunk_min_s``,
    ``chunk_max_s``]; each utterance gives a random chunk of it (all of it when shorter); the
    augmenter (if any) decides per batch. The draws come from (seed, epoch, rows), so a batch is
    the same in any worker process or rank. Prediction: whole utterances, those longer than
    ``max_window_s`` as equal windows (``window_owner``) that the model averages.
    """

    def __init__(
        self,
        items: AudioItems,
        features: Features,
        *,
        train: bool,
        chunk_min_s: float = 2.0,
        chunk_max_s: float = 4.0,
        augmenter: Augmenter | None = None,
        max_window_s: float = 20.0,
        seed: int = 0,
    ) -> None:
        if train and not 0 < chunk_min_s <= chunk_max_s:
            raise ValueError(f"chunk range [{chunk_min_s}, {chunk_max_s}] s is not valid")
        self.items, self.features, self.train = items, features, train
        self.chunk = (chunk_min_s, chunk_max_s)
        self.augmenter = augmenter if train else None
        self.max_window = max(1, int(round(max_window_s * SAMPLE_RATE)))
        self.seed, self.epoch = seed, 0

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> int:
        return int(i)

    def set_epoch(self, epoch: int) -> None:
        """Draw other chunks and augmentations in ``epoch``."""
        self.epoch = int(epoch)

    def lengths(self) -> np.ndarray:
        """Each row's input length in seconds for batching (in training, at most the longest chunk)."""
        return batch_lengths(self.items.durations, train=self.train, chunk_max_s=self.chunk[1])

    def collate(self, rows: Sequence[int]) -> dict[str, torch.Tensor]:
        rows = np.asarray(rows, dtype=np.int64)
        if self.train:
            waves, owner = self._chunks(rows), None
        else:
            waves, owner = self._windows(rows)
        batch = self.features(waves)
        batch["index"] = torch.from_numpy(rows)
        if owner is not None:
            batch["window_owner"] = torch.tensor(owner, dtype=torch.int64)
        if self.items.targets is not None:
            batch["target"] = self.items.target_tensor(rows)
        return batch

    def _chunks(self, rows: np.ndarray) -> list[np.ndarray]:
        # two streams: the chunks drawn do not depend on whether or how the batch is augmented
        seeds = np.random.SeedSequence([self.seed, self.epoch, *rows.tolist()]).spawn(2)
        rng, aug_rng = np.random.default_rng(seeds[0]), np.random.default_rng(seeds[1])
        seconds = float(rng.uniform(*self.chunk))
        augment = self.augmenter is not None and self.augmenter.batch_is_augmented(aug_rng)
        waves = []
        for i in rows:
            speed = self.augmenter.draw_speed(aug_rng) if augment else 1.0
            span = seconds * speed  # read this much; speed perturbation brings it back to `seconds`
            offset = float(rng.uniform(0, max(0.0, self.items.infos[i].duration - span)))
            wave = self.items.read(int(i), offset, span)
            waves.append(self.augmenter(wave, aug_rng, speed=speed) if augment else wave)
        return waves

    def _windows(self, rows: np.ndarray) -> tuple[list[np.ndarray], list[int] | None]:
        waves, owner = [], []
        for k, i in enumerate(rows):
            wave = self.items.read(int(i))
            for start, stop in window_bounds(len(wave), self.max_window):
                waves.append(wave[start:stop])
                owner.append(k)
        return waves, (owner if len(waves) > len(rows) else None)
