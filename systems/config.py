"""Run configurations: dataclasses loaded from YAML, every field overridable with ``--set key=value``.

Each system subclasses :class:`SystemConfig`; its defaults are its paper's. A config is saved
into the run directory as YAML, and its hash (of the canonical JSON) goes into every sidecar
the run writes, so two score files can be traced to the same settings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

from sermm.atomic import write_text
from sermm.errors import SermmError, first_line

C = TypeVar("C", bound="SystemConfig")

FINETUNE = ("lora", "full", "frozen")
SCHEDULES = ("linear", "cosine", "constant")
OPTIMIZERS = ("adam", "adamw")


@dataclass
class SystemConfig:
    """Settings every system shares: task, backbone, fine-tuning, optimisation, selection.

    The optimisation defaults follow TalTech's audio recipe (Adam, peak lr 1e-4 with warm-up
    and decay, weight decay 1e-3, effective batch 64).
    """

    #: Name written into the score files' sidecars ("system"); default: the run directory's name.
    name: str = ""
    task: str = "categorical"
    backbone: str = ""
    #: Backbone kind; empty: read from the checkpoint's config (``model_type``).
    kind: str = ""
    finetune: str = "lora"
    lora_r: int = 32
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    #: Module names LoRA adapts; empty: the attention query and value projections of the kind.
    lora_targets: list[str] = dataclasses.field(default_factory=list)
    epochs: int = 10
    optimizer: str = "adam"
    lr: float = 1e-4
    weight_decay: float = 1e-3
    #: Linear warm-up over this share of the optimiser steps, then ``schedule`` down to 0.
    warmup_ratio: float = 0.1
    schedule: str = "linear"
    #: Examples per forward pass on each device.
    batch_size: int = 8
    #: Examples per optimiser step over all devices (gradient accumulation makes up the rest).
    effective_batch: int = 64
    class_weighted: bool = False
    max_grad_norm: float = 1.0
    #: Stop after this many epochs without a better dev score (0: never).
    patience: int = 0
    #: Multiply the learning rate by ``plateau_factor`` after every this many epochs without a better
    #: dev score (0: never; BSC-UPC's DMHA halves it after 5).
    plateau_patience: int = 0
    plateau_factor: float = 0.5
    #: Checkpoints kept besides the best model (the newest ones).
    keep_checkpoints: int = 2
    seed: int = 0
    #: "auto": bf16 autocast on a GPU that supports it, full precision on the CPU.
    mixed_precision: str = "auto"
    num_workers: int = 0

    def check(self) -> None:
        """Refuse values outside their range, naming the field (the CLI's ``--set`` key)."""
        choices = {
            "task": ("categorical", "attributes"),
            "finetune": FINETUNE,
            "schedule": SCHEDULES,
            "optimizer": OPTIMIZERS,
            "mixed_precision": ("auto", "no", "bf16", "fp16"),
        }
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise SermmError(
                    f"config: {key} must be one of {', '.join(allowed)}, got {getattr(self, key)!r}"
                )
        positive = ("epochs", "batch_size", "effective_batch", "lora_r", "keep_checkpoints")
        for key in positive:
            if getattr(self, key) < 1:
                raise SermmError(f"config: {key} must be at least 1, got {getattr(self, key)}")
        for key in ("lr", "lora_alpha"):
            if getattr(self, key) <= 0:
                raise SermmError(f"config: {key} must be positive, got {getattr(self, key)}")
        for key in ("lora_dropout", "warmup_ratio"):
            if not 0 <= getattr(self, key) < 1:
                raise SermmError(f"config: {key} must lie in [0, 1), got {getattr(self, key)}")
        if not 0 < self.plateau_factor <= 1:
            raise SermmError(f"config: plateau_factor must lie in (0, 1], got {self.plateau_factor}")
        for key in ("weight_decay", "max_grad_norm", "patience", "plateau_patience", "num_workers"):
            if getattr(self, key) < 0:
                raise SermmError(f"config: {key} must not be negative, got {getattr(self, key)}")

    def to_dict(self) -> dict[str, Any]:
        """The config as plain values (what config.yaml holds)."""
        return dataclasses.asdict(self)


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, kind: Any, key: str, source: str) -> Any:
    """``value`` (from YAML or a ``--set`` string) as the field's type, or a clear error."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [k for k in typing.get_args(kind) if k is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        return _coerce(value, options[0], key, source)
    if origin is list:
        (item,) = typing.get_args(kind) or (str,)
        if isinstance(value, str):
            value = [] if not value.strip() else [v.strip() for v in value.split(",")]
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]  # one number where a list of them goes (``clusters: 64``)
        if not isinstance(value, list):
            raise SermmError(f"{source}: {key} must be a list (or comma-separated), got {value!r}")
        return [_coerce(v, item, key, source) for v in value]
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "yes", "1", "on"):
                return True
            if text in ("false", "no", "0", "off"):
                return False
            raise ValueError(value)
        if kind is int:
            number = float(value) if isinstance(value, (str, float)) else value
            if isinstance(value, bool) or not float(number).is_integer():
                raise ValueError(value)
            return int(number)
        if kind is float:
            return float(value)
        if kind is str:
            return "" if value is None else str(value)
    except (TypeError, ValueError):
        raise SermmError(f"{source}: {key} must be {kind.__name__}, got {value!r}") from None
    return value


def load_config(
    cls: type[C], yaml_path: str | Path | None = None, sets: tuple[str, ...] | list[str] = (), **given: Any
) -> C:
    """A config of class ``cls``: its defaults, then the YAML file, then ``given`` values (the CLI's
    own options), then ``--set key=value`` overrides; each value typed by its field."""
    types_ = _field_types(cls)
    names = [f.name for f in fields(cls)]
    values: dict[str, Any] = {}

    def put(key: str, value: Any, source: str) -> None:
        if key not in types_:
            close = [n for n in names if key.replace("-", "_") == n]
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise SermmError(f"{source}: unknown config key {key!r}{hint}; known: {', '.join(names)}")
        values[key] = _coerce(value, types_[key], key, source)

    if yaml_path is not None:
        path = Path(yaml_path)
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SermmError(f"{path}: no such file") from None
        except (OSError, yaml.YAMLError) as exc:
            raise SermmError(f"{path}: not a YAML config ({first_line(exc)})") from None
        if doc is None:
            doc = {}
        if not isinstance(doc, dict):
            raise SermmError(f"{path}: a config is a YAML mapping of key: value")
        for key, value in doc.items():
            put(str(key), value, str(path))
    for key, value in given.items():
        if value is not None:
            put(key, value, f"--{key.replace('_', '-')}")
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SermmError(f"--set {item!r}: expected key=value (e.g. --set epochs=30)")
        put(key.strip(), value.strip(), f"--set {key.strip()}")
    config = cls(**values)
    config.check()
    return config


def config_from_dict(cls: type[C], doc: dict[str, Any], source: str) -> C:
    """A config from a saved run's values; unknown keys are an error naming ``source``."""
    unknown = sorted(set(doc) - {f.name for f in fields(cls)})
    if unknown:
        raise SermmError(
            f"{source}: unknown config key(s) {', '.join(unknown)} (made by another sermm version?)"
        )
    config = cls(**{k: _coerce(v, _field_types(cls)[k], k, source) for k, v in doc.items()})
    config.check()
    return config


def save_config(config: SystemConfig, path: str | Path) -> None:
    """Write the config as YAML, in field order."""
    write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))


def config_hash(config: SystemConfig) -> str:
    """12 hex digits of the SHA-256 of the config's canonical JSON."""
    text = json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]
