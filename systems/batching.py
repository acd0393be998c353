"""Batches of similar lengths, so that padding stays small (prediction, and text training)."""

from __future__ import annotations

import numpy as np

#: With ``shuffle``, items are sorted by length within random buckets of this many batches.
BUCKET_BATCHES = 50


def _greedy(
    order: np.ndarray, lengths: np.ndarray, max_items: int, max_total: float | None
) -> list[np.ndarray]:
    """Cut items already sorted by ascending length into consecutive batches."""
    if max_total is None:
        return np.split(order, range(max_items, len(order), max_items)) if len(order) else []
    batches, start = [], 0
    counts = np.arange(1, max_items + 1)
    while start < len(order):
        window = lengths[order[start : start + max_items]]
        fits = counts[: len(window)] * window <= max_total  # padded size of c items: c × c-th length
        size = max(1, int(np.count_nonzero(fits)))
        batches.append(order[start : start + size])
        start += size
    return batches


def length_batches(
    lengths: np.ndarray,
    *,
    max_items: int,
    max_total: float | None = None,
    shuffle: bool = False,
    seed: int = 0,
) -> list[np.ndarray]:
    """Index batches of items sorted by length: at most ``max_items`` each and, with ``max_total``,
    at most that padded size (batch size × longest length; a longer item still gets a batch).

    Without ``shuffle`` the order is deterministic (prediction). With it, items are sorted by
    length inside random buckets of :data:`BUCKET_BATCHES` batches' worth and the batch order is
    shuffled (training: each epoch's seed gives other batches).
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    if max_items < 1:
        raise ValueError("max_items must be at least 1")
    if not shuffle:
        return _greedy(np.argsort(lengths, kind="stable"), lengths, max_items, max_total)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    step = max_items * BUCKET_BATCHES
    batches: list[np.ndarray] = []
    for start in range(0, len(order), step):
        bucket = order[start : start + step]
        batches += _greedy(bucket[np.argsort(lengths[bucket], kind="stable")], lengths, max_items, max_total)
    return [batches[i] for i in rng.permutation(len(batches))]


def padded_fraction(lengths: np.ndarray, batches: list[np.ndarray]) -> float:
    """The share of padded positions when every batch is padded to its longest item."""
    lengths = np.asarray(lengths, dtype=np.float64)
    padded = sum(len(b) * lengths[b].max() for b in batches if len(b))
    real = sum(lengths[b].sum() for b in batches)
    return float(1 - real / padded) if padded else 0.0
