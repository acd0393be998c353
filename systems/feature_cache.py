"""A disk cache of frozen-backbone features, so that training epochs do not rerun the backbones.

::

    CACHE/<setting key>/setting.json                 what the features are (backbone, layers, ...)
    CACHE/<setting key>/<ab>/<item key>.safetensors  one utterance: tensor "states" (float16)

The setting key is a hash of everything that changes the features: the backbone (a Hub id, or a
local directory's path, config.json and weight files' sizes and times), the layers kept and the
input normalisation. The item key is a hash of the input itself: the audio file's bytes (so a
re-encoded or edited file is extracted anew, and the same file under two ids is stored once), or
the transcript's text. Files are written atomically, so an interrupted extraction is resumed by
running it again, and several processes may fill one cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from sermm.atomic import atomic_path, write_json
from sermm.errors import SermmError

#: Weight files whose size and modification time identify a local checkpoint's weights.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise SermmError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return h.hexdigest()


def text_digest(text: str) -> str:
    """SHA-256 of a transcript's UTF-8 bytes (hex)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def backbone_identity(name_or_path: str | os.PathLike) -> dict[str, Any]:
    """What identifies a backbone's weights: a Hub id as it is; a local directory by its resolved
    path, the hash of its config.json and the size and time of each weight file."""
    path = Path(name_or_path)
    if not path.is_dir():
        return {"id": str(name_or_path)}
    config = path / "config.json"
    weights = sorted(p for p in path.iterdir() if p.suffix in WEIGHT_SUFFIXES)
    return {
        "path": str(path.resolve()),
        "config": file_digest(config) if config.exists() else None,
        "weights": [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in weights],
    }


class FeatureCache:
    """Features of one setting (a JSON-able dict) under ``root``; items are looked up by key."""

    def __init__(self, root: str | os.PathLike, setting: dict[str, Any]) -> None:
        text = json.dumps(setting, sort_keys=True, separators=(",", ":"))
        self.key = hashlib.sha256(text.encode()).hexdigest()[:16]
        self.folder = Path(root) / self.key
        self.setting = setting
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SermmError(f"{root}: cannot create the feature cache ({exc.strerror or exc})") from None
        if not (self.folder / "setting.json").exists():
            write_json(self.folder / "setting.json", setting)

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.safetensors"

    def __contains__(self, key: str) -> bool:
        return self.path(key).exists()

    def load(self, key: str) -> torch.Tensor:
        """The stored states of item ``key`` (float16)."""
        try:
            return load_file(str(self.path(key)))["states"]
        except (OSError, KeyError, RuntimeError) as exc:
            raise SermmError(
                f"{self.path(key)}: unreadable cache entry ({exc}); delete it to extract it again"
            ) from None

    def save(self, key: str, states: torch.Tensor) -> None:
        """Store ``states`` as float16 (halves the disk; the features are frozen anyway), atomically."""
        target = self.path(key)
        target.parent.mkdir(exist_ok=True)
        with atomic_path(target) as tmp:
            save_file({"states": states.detach().to("cpu", torch.float16).contiguous()}, str(tmp))

    def fill(
        self,
        keys: Sequence[str],
        extract: Callable[[np.ndarray], list[torch.Tensor]],
        *,
        order: np.ndarray | None = None,
        batch_size: int = 8,
        rank: int = 0,
        world: int = 1,
        desc: str = "features",
        quiet: bool = False,
    ) -> int:
        """Extract the items not stored yet (this rank's share): ``extract(rows)`` gives each row's
        unpadded states. ``order`` (e.g. rows sorted by length) groups similar rows into a batch.
        Returns the number of items extracted here."""
        keys = list(keys)
        rows = np.arange(len(keys)) if order is None else np.asarray(order)
        seen: set[str] = set()
        todo = []
        for i in rows:
            if keys[i] not in seen and keys[i] not in self:
                todo.append(int(i))
            seen.add(keys[i])
        todo = np.array(todo[rank::world], dtype=np.int64)
        batches = [todo[s : s + batch_size] for s in range(0, len(todo), batch_size)]
        bar = tqdm(batches, desc=desc, unit="batch", file=sys.stderr, leave=False, disable=quiet or None)
        for batch in bar:
            for i, states in zip(batch, extract(batch), strict=True):
                self.save(keys[int(i)], states)
        return len(todo)
