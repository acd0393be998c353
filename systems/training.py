"""One training loop for every system: one CPU, one GPU or many (``accelerate launch``), same code.

A system is a :class:`Recipe`: it builds the model (the contract: ``forward(batch)`` returns
``scores`` and ``embedding``), the dataset of a manifest and the per-row lengths used to batch
it. The loop does the rest: length-bucketed shuffled batches (sharded by rank), gradient
accumulation up to the effective batch, Adam(W) with warm-up and decay, class-weighted
cross-entropy or −mean CCC (or the recipe's own ``loss``), dev evaluation each epoch, the best
model by dev macro-F1 (primary classes) or mean CCC, the learning rate cut on a dev plateau
(``plateau_patience``), early stopping (``patience``), a checkpoint each epoch, and ``resume``.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from sermm.errors import SermmError
from sermm.metrics import categorical_summary, ccc
from sermm.systems.batching import length_batches
from sermm.systems.config import SystemConfig, config_hash
from sermm.systems.losses import class_weights, neg_mean_ccc, weighted_cross_entropy
from sermm.systems.manifest import Inventory, Manifest
from sermm.systems.rundir import RunDir
from sermm.systems.sharded_state import load_optimizer_state, model_state, optimizer_state, trainable_names


class Recipe(Protocol):
    """What a system gives the shared training loop and prediction writer."""

    #: The run directory's system name ("audio", "text", ...).
    system: str
    #: The manifest column the system reads ("path" or "text").
    need: str
    config_class: type[SystemConfig]

    def build_model(self, config: Any, inventory: Inventory) -> nn.Module:
        """The model, its pretrained backbone loaded and wrapped (LoRA, frozen, ...) as configured."""

    def dataset(self, manifest: Manifest, config: Any, *, train: bool) -> Dataset:
        """Examples of ``manifest``; ``dataset.collate(examples)`` makes a batch of model inputs.

        A dataset with ``set_epoch(epoch)`` gets the epoch before each training epoch (random
        crops and augmentation draw from it).
        """

    def lengths(self, manifest: Manifest, config: Any, *, train: bool) -> np.ndarray:
        """The size of each row's model input (seconds, frames or tokens), for batching."""

    def validate(self, manifest: Manifest, *, skip_bad: bool) -> Manifest:
        """The manifest with its inputs checked (e.g. audio files readable): a bad row is an error,
        or with ``skip_bad`` it is left out and listed."""

    # Optional: ``loss(out, batch, config, weight) -> Tensor`` replaces ``compute_loss`` (focal,
    # soft-label or centre losses); ``out`` is the model's output dict in training mode.
    # Optional: ``prepare(config, train_manifest) -> config`` fills in settings computed from the
    # training data before the run directory is written (DMHA's waveform mean and SD).
    # Optional: ``setup_run(run, config, train, accelerator, quiet=...)`` runs before ``build_model``
    # with the run directory: in training (``train`` the training manifest) to do work whose result
    # the model is built from and the run keeps (continued pre-training), in prediction (``train``
    # None) to learn where that result is.


class Labelled(Dataset):
    """A recipe's dataset plus each row's index and target, added to every batch."""

    def __init__(self, base: Dataset, targets: np.ndarray | None) -> None:
        self.base = base
        self.targets = targets

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> tuple[int, Any]:
        return i, self.base[i]

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)

    def collate(self, items: list[tuple[int, Any]]) -> dict[str, torch.Tensor]:
        index = np.array([i for i, _ in items], dtype=np.int64)
        batch = self.base.collate([example for _, example in items])
        batch.setdefault("index", torch.from_numpy(index))
        if self.targets is not None and "target" not in batch:
            batch["target"] = torch.from_numpy(self.targets[index])
        return batch


class ShardedBatches:
    """A batch sampler over precomputed index batches, this rank's share (every ``world``-th)."""

    def __init__(self, batches: list[np.ndarray], rank: int = 0, world: int = 1, *, even: bool) -> None:
        if even:  # every rank runs the same number of steps (DDP synchronises each one)
            batches = batches[: len(batches) // world * world] or batches[:world]
        self.batches = [b.tolist() for b in batches[rank::world]]

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def loader(
    dataset: Labelled,
    batches: list[np.ndarray],
    config: SystemConfig,
    *,
    rank: int = 0,
    world: int = 1,
    even: bool = False,
) -> DataLoader:
    """A DataLoader over rank ``rank``'s share of ``batches`` (all of them in one process)."""
    sampler = ShardedBatches(batches, rank, world, even=even)
    return DataLoader(
        dataset, batch_sampler=sampler, collate_fn=dataset.collate, num_workers=config.num_workers
    )


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The batch's tensors on ``device``."""
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def progress_off(quiet: bool, accelerator: Any) -> bool | None:
    """tqdm's ``disable``: off when quiet or not the local main process, and when stderr is no TTY (None)."""
    return True if quiet or not accelerator.is_local_main_process else None


def make_accelerator(config: SystemConfig) -> Any:
    """An Accelerator: bf16 autocast on a GPU that has it (``mixed_precision: auto``), DDP when launched."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    precision = config.mixed_precision
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    return Accelerator(
        mixed_precision=precision,
        # without a GPU, cpu=True is what makes accelerate see torchrun's ranks (MULTI_CPU over gloo);
        # otherwise every process would think it is alone, score everything and merge at once
        cpu=not torch.cuda.is_available(),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )


def warmup_schedule(schedule: str, warmup: int, total_steps: int) -> Callable[[int], float]:
    """Learning-rate factor per optimiser step: linear warm-up over ``warmup`` steps, then a
    linear or cosine decay to 0 at ``total_steps``, or constant (``schedule``)."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup + 1) / max(1, total_steps - warmup))
        if schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0 - progress

    return factor


def lr_lambda(config: SystemConfig, total_steps: int) -> Callable[[int], float]:
    """The training loop's schedule: warm-up over ``warmup_ratio`` of the steps, then ``schedule``."""
    return warmup_schedule(config.schedule, math.ceil(config.warmup_ratio * total_steps), total_steps)


def reduce_lr(optimizer: torch.optim.Optimizer, scheduler: Any, factor: float) -> None:
    """Scale the learning rate by ``factor`` from now on: the optimiser's and the schedule's base (a
    LambdaLR recomputes lr = base × factor(step) each step; its base_lrs are in its saved state)."""
    for group in optimizer.param_groups:
        group["lr"] *= factor
    scheduler.base_lrs = [lr * factor for lr in scheduler.base_lrs]
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]  # what get_last_lr() logs


def make_optimizer(model: nn.Module, config: SystemConfig) -> torch.optim.Optimizer:
    """Adam or AdamW over the parameters that require grad."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise SermmError("the model has no trainable parameters (check finetune and the LoRA targets)")
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=config.lr, weight_decay=config.weight_decay)


def compute_loss(
    out: dict[str, torch.Tensor], target: torch.Tensor, task: str, weight: torch.Tensor | None
) -> torch.Tensor:
    """The task's loss: (weighted) cross-entropy on logits, or −mean CCC on attribute predictions."""
    if task == "attributes":
        return neg_mean_ccc(out["scores"], target)
    return weighted_cross_entropy(out["scores"], target, weight)


def default_loss(
    out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], config: SystemConfig,
    weight: torch.Tensor | None,
) -> torch.Tensor:
    """The loop's loss when the recipe brings none: ``compute_loss`` on the batch's targets."""
    return compute_loss(out, batch["target"], config.task, weight)


@torch.no_grad()
def run_batches(
    model: nn.Module, data: DataLoader, accelerator: Any, *, desc: str, quiet: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """This rank's (index, scores, embedding) rows of ``data``, in eval mode."""
    model.eval()
    index, scores, embedding = [], [], []
    bar = tqdm(
        data,
        desc=desc,
        unit="batch",
        file=sys.stderr,
        leave=False,
        disable=progress_off(quiet, accelerator),
    )
    for batch in bar:
        batch = to_device(batch, accelerator.device)
        with accelerator.autocast():
            out = model(batch)
        index.append(batch["index"].cpu().numpy())
        scores.append(out["scores"].float().cpu().numpy())
        embedding.append(out["embedding"].float().cpu().numpy())
    if not index:
        return np.empty(0, np.int64), np.empty((0, 0), np.float32), np.empty((0, 0), np.float32)
    return np.concatenate(index), np.concatenate(scores), np.concatenate(embedding)


def gather_rows(accelerator: Any, *arrays: np.ndarray) -> list[np.ndarray]:
    """Every rank's rows of each array, concatenated (in rank order); no-op in one process."""
    if accelerator.num_processes == 1:
        return list(arrays)
    from accelerate.utils import gather_object

    parts = gather_object([arrays])
    return [np.concatenate([p[j] for p in parts if len(p[j])]) for j in range(len(arrays))]


def dev_metrics(scores: np.ndarray, targets: np.ndarray, inventory: Inventory) -> dict[str, float]:
    """Dev metrics: macro-F1/UA/WA over the primary classes (argmax among them), or CCC per attribute."""
    if inventory.task == "attributes":
        per = np.atleast_1d(ccc(targets, scores))
        metrics = {f"ccc_{a}": float(v) for a, v in zip(inventory.attributes, per, strict=True)}
        metrics["ccc"] = float(np.mean(per))
        return metrics
    primary = [inventory.classes.index(c) for c in inventory.primary]
    rows = np.isin(targets, primary)
    remap = np.full(len(inventory.classes), -1)
    remap[primary] = np.arange(len(primary))
    pred = np.argmax(scores[rows][:, primary], axis=1)
    summary = categorical_summary(remap[targets[rows]], pred, n_classes=len(primary))
    return {"macro_f1": float(summary["macro_f1"]), "ua": float(summary["ua"]), "wa": float(summary["wa"])}


def selection_key(task: str) -> str:
    """The dev metric the best model is chosen by."""
    return "ccc" if task == "attributes" else "macro_f1"


@dataclass
class TrainResult:
    """Where training ended: the best epoch and its dev metrics, and the epochs run."""

    run: RunDir
    best_epoch: int
    best: dict[str, float]
    epochs_run: int
    #: Whether this is the main process (the one that prints).
    main_process: bool = True


def train_system(
    recipe: Recipe,
    config: SystemConfig,
    train: Manifest,
    dev: Manifest,
    out: str,
    *,
    resume: bool = False,
    quiet: bool = False,
) -> TrainResult:
    """Train ``recipe``'s model on ``train``, choose it on ``dev``, and write the run directory ``out``.

    A recipe with ``prepare(config, train) -> config`` first fills in settings computed from the
    training data (e.g. waveform normalisation statistics); they are saved with the run's config.
    """
    if hasattr(recipe, "prepare"):
        config = recipe.prepare(config, train)
    inventory = Inventory.from_manifest(train, config.task)
    y_train, y_dev = inventory.encode(train), inventory.encode(dev)
    if resume:
        run = RunDir.open(out, system=recipe.system, task=config.task)
        if run.info.get("config_hash") != config_hash(config):
            raise SermmError(
                f"{out}: --resume with another config than the run's (config hash "
                f"{config_hash(config)} vs {run.info.get('config_hash')}); pass the same options"
            )
        if run.inventory.to_dict() != inventory.to_dict():
            raise SermmError(
                f"{out}: --resume with another training manifest (its labels differ from the run's)"
            )
    accelerator = make_accelerator(config)
    if not resume:
        run = (
            RunDir.create(out, system=recipe.system, config=config, inventory=inventory)
            if accelerator.is_main_process
            else None
        )
        accelerator.wait_for_everyone()
        run = run or RunDir.open(out, system=recipe.system)
    if hasattr(recipe, "setup_run"):
        recipe.setup_run(run, config, train, accelerator, quiet=quiet)
    torch.manual_seed(config.seed)
    model = recipe.build_model(config, inventory)
    train_set = Labelled(recipe.dataset(train, config, train=True), y_train)
    dev_set = Labelled(recipe.dataset(dev, config, train=False), y_dev)
    train_lengths = recipe.lengths(train, config, train=True)
    dev_batches = length_batches(recipe.lengths(dev, config, train=False), max_items=config.batch_size)
    world = accelerator.num_processes
    accumulate = max(1, round(config.effective_batch / (config.batch_size * world)))
    n_batches = len(
        ShardedBatches(length_batches(train_lengths, max_items=config.batch_size), 0, world, even=True)
    )
    steps_per_epoch = math.ceil(n_batches / accumulate)
    state = {"best_epoch": 0, "best": None, "stale": 0}
    saved = None
    if resume:
        loop_state, saved = run.load_checkpoint(model)
        state.update(loop_state)
    start = int(state.pop("epoch", 0)) + 1
    names = trainable_names(model)
    if world > 1 and accelerator.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    # the optimiser is made after prepare: FSDP replaces the parameters it shards
    model = accelerator.prepare(model)
    sharded = accelerator.distributed_type == "FSDP"  # accelerate's DistributedType.FSDP
    optimizer = make_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(config, steps_per_epoch * config.epochs)
    )
    if saved is not None:
        load_optimizer_state(model, optimizer, saved["optimizer"], sharded=sharded)
        scheduler.load_state_dict(saved["scheduler"])
    weight = None
    if config.task == "categorical" and config.class_weighted:
        weight = torch.tensor(
            class_weights(np.array(inventory.counts)), dtype=torch.float32, device=accelerator.device
        )
    key = selection_key(config.task)
    epoch = start - 1
    for epoch in range(start, config.epochs + 1):
        train_set.set_epoch(epoch)
        torch.manual_seed(config.seed * 100_003 + epoch)
        batches = length_batches(
            train_lengths, max_items=config.batch_size, shuffle=True, seed=config.seed * 100_003 + epoch
        )
        began = time.perf_counter()
        shard = {"rank": accelerator.process_index, "world": world}
        loss, seen = _train_epoch(
            model,
            loader(train_set, batches, config, even=True, **shard),
            optimizer,
            scheduler,
            accelerator,
            config,
            weight,
            accumulate,
            getattr(recipe, "loss", default_loss),
            desc=f"epoch {epoch}/{config.epochs}",
            quiet=quiet,
        )
        seconds = time.perf_counter() - began
        index, scores, _ = run_batches(
            model, loader(dev_set, dev_batches, config, **shard), accelerator, desc="dev", quiet=quiet
        )
        index, scores = gather_rows(accelerator, index, scores)
        metrics = dev_metrics(scores[np.argsort(index)], y_dev, inventory)
        better = state["best"] is None or metrics[key] > state["best"][key]
        if better:
            state.update(best_epoch=epoch, best=metrics, stale=0)
        else:
            state["stale"] += 1
            if config.plateau_patience and state["stale"] % config.plateau_patience == 0:
                reduce_lr(optimizer, scheduler, config.plateau_factor)
        # under FSDP every process takes part in gathering the state; the first one writes it
        weights = model_state(model, names, sharded=sharded)
        optimizer_saved = optimizer_state(model, optimizer, sharded=sharded)
        if accelerator.is_main_process:
            if better:
                run.save_best(weights, {"epoch": epoch, "metric": key, **metrics})
            run.save_checkpoint(epoch, weights, optimizer_saved, scheduler, state, config.keep_checkpoints)
            run.log(
                {
                    "epoch": epoch,
                    "train_loss": loss,
                    "lr": scheduler.get_last_lr()[0],
                    "seconds": round(seconds, 2),
                    "utterances_per_s": round(seen / seconds, 2),
                    "dev": metrics,
                    "best": better,
                }
            )
        accelerator.wait_for_everyone()
        if not quiet and accelerator.is_main_process:
            shown = " ".join(f"{k}={v:.4f}" for k, v in metrics.items())
            print(
                f"epoch {epoch}: train loss {loss:.4f}, dev {shown}{' (best)' if better else ''}",
                file=sys.stderr,
            )
        if config.patience and state["stale"] >= config.patience:
            break
    if state["best"] is None:
        raise SermmError(
            f"{out}: no epoch left to train (the run has already trained {config.epochs} epochs)"
        )
    return TrainResult(run, state["best_epoch"], state["best"], epoch, accelerator.is_main_process)


def _train_epoch(
    model: nn.Module,
    data: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    accelerator: Any,
    config: SystemConfig,
    weight: torch.Tensor | None,
    accumulate: int,
    loss_fn: Any,
    *,
    desc: str,
    quiet: bool,
) -> tuple[float, int]:
    """One pass over this rank's batches; the mean training loss and the utterances seen."""
    model.train()
    total, seen, count = 0.0, 0, len(data)
    began = time.perf_counter()
    bar = tqdm(data, desc=desc, unit="batch", file=sys.stderr, disable=progress_off(quiet, accelerator))
    for i, batch in enumerate(bar):
        batch = to_device(batch, accelerator.device)
        group_end = (i + 1) % accumulate == 0 or i + 1 == count
        group = accumulate if i < count - count % accumulate else count % accumulate
        sync = contextlib.nullcontext() if group_end or accelerator.num_processes == 1 else model.no_sync()
        with sync, accelerator.autocast():
            loss = loss_fn(model(batch), batch, config, weight)
            accelerator.backward(loss / group)
        if not torch.isfinite(loss):
            raise SermmError(
                f"the training loss became {loss.item()} at batch {i + 1}; lower lr or check the inputs"
            )
        if group_end:
            if config.max_grad_norm:
                accelerator.clip_grad_norm_(
                    [p for p in model.parameters() if p.requires_grad], config.max_grad_norm
                )
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        total += loss.item()
        seen += len(batch["index"])
        bar.set_postfix(loss=f"{total / (i + 1):.4f}", utt_s=f"{seen / (time.perf_counter() - began):.1f}")
    return total / max(1, count), seen * accelerator.num_processes
