"""Transcripts to model batches: tokenise once, pad each batch to its longest row (dynamic padding)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase


def tokenize(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of every text, truncated to ``max_length``, with the tokenizer's special tokens.

    An empty transcript is the empty string to the model; when that gives no token at all (a
    tokenizer that adds no special tokens) it becomes one EOS (or pad) token, so the row still gets
    a prediction.
    """
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False)["input_ids"]
    filler = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.pad_token_id
    return [ids if ids else [filler] for ids in encoded]


class TextDataset(torch.utils.data.Dataset):
    """Tokenised rows with their manifest index and, when labelled, their target."""

    def __init__(self, input_ids: list[list[int]], targets: np.ndarray | None = None) -> None:
        if targets is not None and len(targets) != len(input_ids):
            raise ValueError("one target per row is needed")
        self.input_ids = input_ids
        self.targets = targets
        self.lengths = np.fromiter((len(ids) for ids in input_ids), dtype=np.int64, count=len(input_ids))

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, i: int) -> dict:
        item = {"input_ids": self.input_ids[i], "index": i}
        if self.targets is not None:
            item["target"] = self.targets[i]
        return item


class TextCollator:
    """Pads a list of items to the longest one; ``side`` is where the padding goes (``right``/``left``).

    Encoders need right padding (their heads read position 0); decoder LLMs take either, the model
    pools the last real token.
    """

    def __init__(self, pad_id: int, side: str = "right") -> None:
        if side not in ("right", "left"):
            raise ValueError(f"padding side must be right or left, got {side!r}")
        self.pad_id = pad_id
        self.side = side

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(item["input_ids"]) for item in items)
        ids = torch.full((len(items), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        for row, item in enumerate(items):
            n = len(item["input_ids"])
            cols = slice(width - n, width) if self.side == "left" else slice(0, n)
            ids[row, cols] = torch.as_tensor(item["input_ids"], dtype=torch.long)
            mask[row, cols] = 1
        batch = {
            "input_ids": ids,
            "attention_mask": mask,
            "index": torch.as_tensor([item["index"] for item in items], dtype=torch.long),
        }
        if "target" in items[0]:
            target = np.stack([np.asarray(item["target"]) for item in items])
            dtype = torch.long if np.issubdtype(target.dtype, np.integer) else torch.float32
            batch["target"] = torch.as_tensor(target, dtype=dtype)
        return batch
