"""A tiny recipe for testing the shared training loop and prediction writer without audio or text.

Each manifest row's ``text`` holds a sequence of numbers; the "backbone" lifts each number to a
vector, then attentive pooling, the embedding head and the output head follow, as in the real
systems.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sermm.errors import SermmError
from sermm.systems.config import SystemConfig
from sermm.systems.heads import EmbeddingHead, OutputHead
from sermm.systems.manifest import Inventory, Manifest
from sermm.systems.pooling import AttentivePooling


@dataclass
class ToyConfig(SystemConfig):
    dim: int = 8
    backbone: str = "toy"
    finetune: str = "full"
    lr: float = 0.02
    warmup_ratio: float = 0.0
    batch_size: int = 8
    effective_batch: int = 16
    epochs: int = 3


class ToyModel(nn.Module):
    def __init__(self, config: ToyConfig, inventory: Inventory) -> None:
        super().__init__()
        self.backbone = nn.Linear(1, config.dim)
        if config.finetune == "frozen":
            self.backbone.requires_grad_(False)
        self.pool = AttentivePooling(config.dim)
        self.embed = EmbeddingHead(config.dim, config.dim)
        self.out = OutputHead(config.dim, inventory.n_outputs, config.task)

    def forward(self, batch):
        h = torch.relu(self.backbone(batch["values"].unsqueeze(-1)))
        embedding = self.embed(self.pool(h, batch["attention_mask"]))
        return {"scores": self.out(embedding), "embedding": embedding}


class ToyDataset(torch.utils.data.Dataset):
    def __init__(self, manifest: Manifest) -> None:
        self.rows = [np.array(t.split(), dtype=np.float32) for t in manifest.texts]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    def collate(self, rows):
        longest = max(len(r) for r in rows)
        values = torch.zeros(len(rows), longest)
        mask = torch.zeros(len(rows), longest, dtype=torch.long)
        for j, r in enumerate(rows):
            values[j, : len(r)] = torch.from_numpy(r)
            mask[j, : len(r)] = 1
        return {"values": values, "attention_mask": mask}


class ToyRecipe:
    system = "toy"
    need = "text"
    config_class = ToyConfig

    def build_model(self, config, inventory):
        return ToyModel(config, inventory)

    def dataset(self, manifest, config, *, train):
        return ToyDataset(manifest)

    def lengths(self, manifest, config, *, train):
        return np.array([len(t.split()) for t in manifest.texts], dtype=np.float64)

    def validate(self, manifest, *, skip_bad):
        for row, text in enumerate(manifest.texts):
            if not text.split():
                raise SermmError(f"{manifest.where(row)}: no numbers")
        return manifest


def write_manifest(path, n, *, seed=0, classes=("high", "low", "other"), noise=1.5):
    """Rows whose numbers are high (mean +1), low (mean -1) or neither (mean 0: other), lengths 3..12;
    the attributes are functions of the numbers' mean."""
    rng = np.random.default_rng(seed)
    lines = ["id,text,label,arousal,valence,dominance"]
    for i in range(n):
        label = classes[i % len(classes)]
        centre = {"high": 1.0, "low": -1.0}.get(label, 0.0)
        values = rng.normal(centre, noise, rng.integers(3, 13))
        a = float(values.mean())
        text = " ".join(f"{v:.3f}" for v in values)
        lines.append(f"u{seed}_{i:04d},{text},{label},{a:.4f},{-a:.4f},{a / 2:.4f}")
    path.write_text("\n".join(lines) + "\n")
    return path
