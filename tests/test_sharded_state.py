"""Checkpoint state under sharding: gathered from FSDP shards (FSDP2 on 2 CPU processes, gloo) it is
the state one process holds; the optimiser state saved and restored by name continues training
exactly; and the same functions serve a plain model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from sermm.systems.sharded_state import load_optimizer_state, model_state, optimizer_state, trainable_names

WORKER = '''
import sys
import torch
import torch.distributed as dist
from safetensors.torch import save_file
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from sermm.systems.sharded_state import load_optimizer_state, model_state, optimizer_state, trainable_names
sys.path.insert(0, sys.argv[2])
from test_sharded_state import make_model, steps

out = sys.argv[1]
dist.init_process_group("gloo")
mesh = init_device_mesh("cpu", (2,))
model = make_model()
names = trainable_names(model)
fully_shard(model[2], mesh=mesh)
fully_shard(model, mesh=mesh)
optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.05)
steps(model, optimizer, 0, 3)
weights = model_state(model, names, sharded=True)
saved = optimizer_state(model, optimizer, sharded=True)
if dist.get_rank() == 0:
    save_file(weights, out + "/three.safetensors")
    torch.save(saved, out + "/optimizer.pt")
dist.barrier()
# a fresh sharded model and optimiser, restored from the files, takes steps 3-4 as one would
# (its trained tensors first scrambled, so that only the files can make them right)
again = make_model()
for p in again.parameters():
    if p.requires_grad:
        p.data.normal_()
from safetensors.torch import load_file
again.load_state_dict({**again.state_dict(), **load_file(out + "/three.safetensors")})
fully_shard(again[2], mesh=mesh)
fully_shard(again, mesh=mesh)
optimizer = torch.optim.AdamW([p for p in again.parameters() if p.requires_grad], lr=0.05)
load_optimizer_state(again, optimizer, torch.load(out + "/optimizer.pt", weights_only=True), sharded=True)
steps(again, optimizer, 3, 5)
weights = model_state(again, names, sharded=True)
if dist.get_rank() == 0:
    save_file(weights, out + "/five.safetensors")
dist.destroy_process_group()
'''


def make_model() -> nn.Sequential:
    """A frozen first layer (a backbone, as from a checkpoint: the same in every build), BatchNorm
    (buffers), a trained head."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 10), nn.BatchNorm1d(10), nn.Linear(10, 3))
    model[0].requires_grad_(False)
    return model


def steps(model: nn.Module, optimizer: torch.optim.Optimizer, first: int, last: int) -> None:
    """Optimiser steps ``first..last-1``, each on the same full batch (every process sees it all)."""
    for step in range(first, last):
        torch.manual_seed(100 + step)
        x, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()


def reference(last: int, resume_at: int | None = None) -> dict[str, torch.Tensor]:
    """One process, no sharding: the trainable state after ``last`` steps (optionally saved and
    restored through the plain path at ``resume_at``)."""
    model = make_model()
    names = trainable_names(model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.05)
    steps(model, optimizer, 0, resume_at or last)
    if resume_at is not None:
        weights = model_state(model, names, sharded=False)
        saved = optimizer_state(model, optimizer, sharded=False)
        model = make_model()
        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad:
                    p.normal_()  # only the saved state can make these right
        model.load_state_dict({**model.state_dict(), **weights})
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.05)
        load_optimizer_state(model, optimizer, saved, sharded=False)
        steps(model, optimizer, resume_at, last)
    return model_state(model, names, sharded=False)


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)


def test_the_trainable_names_are_what_training_changes():
    names = trainable_names(make_model())
    assert not {"0.weight", "0.bias"} & names
    assert {"1.weight", "2.weight", "1.running_mean", "1.num_batches_tracked"} <= names


def test_a_plain_model_resumes_from_its_saved_optimiser_state_exactly():
    assert_same(reference(5, resume_at=3), reference(5))


def test_fsdp_shards_are_gathered_and_a_sharded_optimiser_resumes(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = Path(sys.executable).parent / "torchrun"
    command = [str(torchrun), "--nproc_per_node", "2", "--master_port", "29547", str(script), str(tmp_path),
               str(Path(__file__).parent)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # the gathered file is the whole state (not one process's shard), equal to one process's
    assert_same(load_file(str(tmp_path / "three.safetensors")), reference(3))
    assert_same(load_file(str(tmp_path / "five.safetensors")), reference(5))
