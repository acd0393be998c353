"""The run directory a training writes and prediction reads.

::

    RUN_DIR/
      run.json            format, version, sermm version, system (audio/text/...), task, config hash
      config.yaml         the full config (every field, as trained)
      labels.json         the label inventory: classes, training counts and prior, or the attributes
      log.jsonl           one line per epoch: train loss, dev metrics, learning rate, time, throughput
      checkpoints/epoch-NNN/model.safetensors, optimizer.pt, state.json   (the newest few)
      best/model.safetensors, best/state.json                               (best dev score)

Weights are safetensors; the optimiser state is a ``torch.save`` file read back with
``weights_only=True``. ``model.safetensors`` holds what training changes: the parameters that
require grad and the buffers outside the pretrained backbone (BatchNorm statistics).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from sermm import __version__
from sermm.atomic import atomic_path, write_json
from sermm.errors import SermmError
from sermm.sidecar import now
from sermm.systems.config import C, config_from_dict, config_hash, save_config
from sermm.systems.manifest import Inventory

FORMAT = "sermm-run"
VERSION = 1
WEIGHTS = "model.safetensors"


def load_trainable_state(model: nn.Module, path: str | Path) -> None:
    """Load the trainable tensors saved at ``path`` (:func:`~sermm.systems.sharded_state.model_state`)
    into ``model``; every key must match."""
    state = load_file(str(path))
    own = model.state_dict()
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise SermmError(
            f"{path}: weights for {len(unknown)} tensor(s) the model does not have "
            f"(e.g. {unknown[0]}): was the run made with another backbone or config?"
        )
    bad = [k for k, v in state.items() if tuple(v.shape) != tuple(own[k].shape)]
    if bad:
        raise SermmError(
            f"{path}: tensor {bad[0]} has shape {tuple(state[bad[0]].shape)}, "
            f"the model's is {tuple(own[bad[0]].shape)}"
        )
    model.load_state_dict(state, strict=False)


class RunDir:
    """A run directory: create it for training, open it for prediction or resuming."""

    def __init__(self, path: str | Path, info: dict[str, Any], inventory: Inventory) -> None:
        self.path = Path(path)
        self.info = info
        self.inventory = inventory

    # ------------------------------------------------------------------ create / open

    @classmethod
    def create(cls, path: str | Path, *, system: str, config: Any, inventory: Inventory) -> RunDir:
        """A new run directory; an existing run there is refused (``--resume`` continues it)."""
        path = Path(path)
        if (path / "run.json").exists():
            raise SermmError(
                f"{path}: already holds a run: pass --resume to continue it, or choose another --out"
            )
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise SermmError(f"{path}: exists and is not an empty directory; choose another --out")
        info = {
            "format": FORMAT,
            "version": VERSION,
            "sermm_version": __version__,
            "system": system,
            "name": config.name or path.resolve().name,
            "task": config.task,
            "backbone": config.backbone,
            "config_hash": config_hash(config),
            "created": now(),
        }
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SermmError(f"{path}: cannot create the run directory ({exc.strerror or exc})") from None
        save_config(config, path / "config.yaml")
        write_json(path / "labels.json", inventory.to_dict())
        write_json(path / "run.json", info)
        return cls(path, info, inventory)

    @classmethod
    def open(cls, path: str | Path, *, system: str | None = None, task: str | None = None) -> RunDir:
        """An existing run directory, checked: its format version, system and task."""
        path = Path(path)
        info = _read_json(path / "run.json", f"{path}: not a sermm run directory (no run.json)")
        if info.get("format") != FORMAT:
            raise SermmError(f'{path}/run.json: not a sermm run (no "format": "{FORMAT}")')
        if info.get("version") != VERSION:
            raise SermmError(
                f"{path}: run format version {info.get('version')} (made by sermm "
                f"{info.get('sermm_version')}); this sermm {__version__} reads version {VERSION}"
            )
        if system is not None and info.get("system") != system:
            raise SermmError(
                f"{path}: a run of the '{info.get('system')}' system, not '{system}' "
                f"(use sermm-system {info.get('system')})"
            )
        if task is not None and info.get("task") != task:
            raise SermmError(f"{path}: trained for the {info.get('task')} task, not {task}")
        inventory = Inventory.from_dict(_read_json(path / "labels.json", f"{path}: no labels.json"))
        return cls(path, info, inventory)

    def config(self, cls: type[C]) -> C:
        """The run's config, as trained."""
        import yaml

        path = self.path / "config.yaml"
        if not path.exists():
            raise SermmError(f"{self.path}: no config.yaml")
        return config_from_dict(cls, yaml.safe_load(path.read_text(encoding="utf-8")) or {}, str(path))

    @property
    def name(self) -> str:
        """The system name its score files carry: the config's ``name``, else the directory's name."""
        return str(self.info.get("name") or self.path.resolve().name)

    # ------------------------------------------------------------------ training state

    def log(self, record: dict[str, Any]) -> None:
        """Append one epoch's record to log.jsonl."""
        with open(self.path / "log.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def history(self) -> list[dict[str, Any]]:
        """The records of log.jsonl, in order."""
        log = self.path / "log.jsonl"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]

    def save_checkpoint(
        self,
        epoch: int,
        weights: dict[str, torch.Tensor],
        optimizer: dict[str, Any],
        scheduler: Any,
        state: dict[str, Any],
        keep: int,
    ) -> None:
        """Write the epoch's checkpoint (the trainable ``weights``, the optimiser state of
        :func:`~sermm.systems.sharded_state.optimizer_state`, the scheduler, the loop state);
        keep the newest ``keep``."""
        target = self.path / "checkpoints" / f"epoch-{epoch:03d}"
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_file(weights, str(tmp / WEIGHTS))
        torch.save({"optimizer": optimizer, "scheduler": scheduler.state_dict()}, tmp / "optimizer.pt")
        write_json(tmp / "state.json", {"epoch": epoch, **state})
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
        for old in self.checkpoints()[:-keep]:
            shutil.rmtree(old, ignore_errors=True)

    def checkpoints(self) -> list[Path]:
        """Complete checkpoint folders, oldest first."""
        folder = self.path / "checkpoints"
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.glob("epoch-[0-9][0-9][0-9]") if (p / "state.json").exists())

    def load_checkpoint(self, model: nn.Module) -> tuple[dict[str, Any], dict[str, Any]]:
        """Restore the newest checkpoint's weights into the (unwrapped) model; return its loop state
        and its optimiser and scheduler states (``optimizer``, ``scheduler``), which the loop loads
        once the optimiser exists, after the model is prepared."""
        found = self.checkpoints()
        if not found:
            raise SermmError(f"{self.path}: no checkpoint to resume from")
        latest = found[-1]
        load_trainable_state(model, latest / WEIGHTS)
        saved = torch.load(latest / "optimizer.pt", weights_only=True, map_location="cpu")
        return _read_json(latest / "state.json", f"{latest}: no state.json"), saved

    def save_best(self, weights: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        """Write the best model so far (its trainable ``weights``, then its state.json)."""
        best = self.path / "best"
        best.mkdir(exist_ok=True)
        with atomic_path(best / WEIGHTS) as tmp:
            save_file(weights, str(tmp))
        write_json(best / "state.json", state)

    @property
    def best_weights(self) -> Path:
        """The best model's weights, or a clear error when training never finished an epoch."""
        path = self.path / "best" / WEIGHTS
        if not path.exists():
            raise SermmError(f"{self.path}: no best model yet (training has not finished an epoch)")
        return path


def _read_json(path: Path, missing: str) -> dict[str, Any]:
    if not path.exists():
        raise SermmError(missing)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SermmError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise SermmError(f"{path}: expected a JSON object")
    return doc
