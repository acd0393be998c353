"""Transcripts to model batches: tokenise once, pad each batch to its longest row (dynamic padding)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

#: Transcripts tokenised per call (bounds the Python lists the tokenizer returns).
CHUNK = 8192


@dataclass
class TokenIds:
    """Token ids of many rows, packed: row ``i`` is ``flat[offsets[i]:offsets[i + 1]]``."""

    flat: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.flat[self.offsets[i] : self.offsets[i + 1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def tokenize(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int) -> TokenIds:
    """Token ids of every text, truncated to ``max_length``, with the tokenizer's special tokens.

    An empty transcript is the empty string to the model; when that gives no token at all (a
    tokenizer that adds no special tokens) it becomes one EOS (or pad) token, so the row still gets
    a prediction.
    """
    filler = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.pad_token_id
    flat, lengths = [], []
    for start in range(0, len(texts), CHUNK):
        chunk = list(texts[start : start + CHUNK])
        encoded = tokenizer(chunk, truncation=True, max_length=max_length, padding=False)["input_ids"]
        rows = [ids if ids else [filler] for ids in encoded]
        lengths.append(np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows)))
        flat.append(np.fromiter((t for r in rows for t in r), dtype=np.int64, count=int(lengths[-1].sum())))
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    if lengths:
        np.cumsum(np.concatenate(lengths), out=offsets[1:])
    return TokenIds(np.concatenate(flat) if flat else np.empty(0, np.int64), offsets)


class TextDataset(torch.utils.data.Dataset):
    """Tokenised transcripts; ``collate`` pads a list of them to the longest (``side``: where the pads go).

    Encoders need right padding (their heads read position 0); decoder LLMs take either, the model
    pools the last real token.
    """

    def __init__(self, input_ids: TokenIds, pad_id: int, side: str = "right") -> None:
        if side not in ("right", "left"):
            raise ValueError(f"padding side must be right or left, got {side!r}")
        self.input_ids = input_ids
        self.pad_id = pad_id
        self.side = side

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.input_ids[i]

    def collate(self, rows: list[np.ndarray]) -> dict[str, torch.Tensor]:
        """``input_ids`` and ``attention_mask`` (1 on real tokens), padded to the batch's longest row."""
        width = max(len(ids) for ids in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for row, tokens in enumerate(rows):
            cols = slice(width - len(tokens), width) if self.side == "left" else slice(0, len(tokens))
            ids[row, cols] = torch.from_numpy(np.asarray(tokens, dtype=np.int64))
            mask[row, cols] = 1
        return {"input_ids": ids, "attention_mask": mask}
