"""Checkpoint state of a model that may be wrapped (DDP) or sharded (FSDP) across processes.

Under FSDP no process holds the whole model or optimiser state, so saving ``model.state_dict()``
on the first process would write one shard. These functions gather the full tensors with
``torch.distributed.checkpoint.state_dict`` (which knows DDP, FSDP1 and FSDP2, and names every
tensor by its unwrapped name); when ``sharded`` they are collectives every process must call.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def _options(sharded: bool, **more: Any) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    # sharded: gathered to the first process, in CPU memory (the others receive empty dicts);
    # else every process holds the whole state already
    return StateDictOptions(full_state_dict=sharded, cpu_offload=sharded, **more)


def trainable_names(model: nn.Module) -> set[str]:
    """The names of the tensors training changes, on the unwrapped model: parameters that require
    grad, and buffers outside ``backbone`` (BatchNorm statistics): what a run's weights file holds."""
    parameters = {name for name, p in model.named_parameters() if p.requires_grad}
    buffers = {name for name, _ in model.named_buffers() if not name.startswith("backbone.")}
    return parameters | buffers


def model_state(model: nn.Module, names: set[str], *, sharded: bool) -> dict[str, torch.Tensor]:
    """The full ``names`` tensors of ``model`` (prepared or not), on the CPU. Frozen parameters are
    never gathered: under FSDP-QLoRA they are the whole 70B base model."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    full = get_model_state_dict(model, options=_options(sharded, ignore_frozen_params=True))
    return {k: v.detach().contiguous().cpu() for k, v in full.items() if k in names}


def optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, *, sharded: bool) -> dict[str, Any]:
    """The optimiser's full state keyed by parameter name (not by position, which sharding changes)."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=_options(sharded))


def load_optimizer_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any], *, sharded: bool
) -> None:
    """Restore :func:`optimizer_state` into ``optimizer`` of the (prepared) ``model``; when
    ``sharded`` every process passes the full state and keeps its shard."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=sharded))
