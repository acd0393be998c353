"""Prediction at scale: a saved run scores a manifest into a posterior (or attribute) file.

Rows go in length-bucketed batches (little padding), in eval mode, deterministically. Under
``accelerate launch`` each rank scores its share of the batches and writes part files into
``<output>.parts/``; rank 0 merges them, keeps one row per id, checks that every manifest id
is there, and writes the score file, its sidecar and the optional embedding file, each
atomically. A rerun after a crash skips the rows the part files already hold.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from sermm import __version__
from sermm.atomic import atomic_path
from sermm.errors import SermmError
from sermm.sidecar import Sidecar, write_sidecar
from sermm.systems.batching import length_batches
from sermm.systems.heads import ATTRIBUTES
from sermm.systems.manifest import Inventory, Manifest
from sermm.systems.rundir import RunDir, load_trainable_state
from sermm.systems.training import Labelled, Recipe, loader, make_accelerator, run_batches
from sermm.tables import ScoreTable, softmax, write_scores

#: Rows a rank scores between two part files (what a crash can lose).
FLUSH_ROWS = 4096


@dataclass
class Prediction:
    """What was written: the files and the number of rows."""

    output: str
    embeddings: str | None
    rows: int
    columns: list[str]
    #: Whether this is the main process (the one that prints).
    main_process: bool = True


def parts_dir(output: str | Path) -> Path:
    """The folder of a prediction's part files: ``<output>.parts/``."""
    return Path(f"{output}.parts")


def _done(parts: Path) -> np.ndarray:
    """The row indices the finished part files already hold."""
    if not parts.is_dir():
        return np.empty(0, np.int64)
    found = [np.empty(0, np.int64)]
    for part in sorted(parts.glob("part-*.safetensors")):
        with safe_open(str(part), framework="np") as handle:
            found.append(handle.get_tensor("index"))
    return np.unique(np.concatenate(found))


def _write_part(parts: Path, index: np.ndarray, scores: np.ndarray, embedding: np.ndarray, rank: int) -> None:
    """One part file (atomically: a crash never leaves half a part)."""
    parts.mkdir(parents=True, exist_ok=True)
    with atomic_path(parts / f"part-{rank}-{uuid.uuid4().hex}.safetensors") as tmp:
        save_file(
            {
                "index": torch.from_numpy(index),
                "scores": torch.from_numpy(scores),
                "embedding": torch.from_numpy(embedding),
            },
            str(tmp),
        )


def _merge(parts: Path, n: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Scores and embeddings of rows 0..n-1 from the part files (one row per index, first kept)."""
    index, scores, embedding = [], [], []
    for part in sorted(parts.glob("part-*.safetensors")):
        with safe_open(str(part), framework="np") as handle:
            index.append(handle.get_tensor("index"))
            scores.append(handle.get_tensor("scores"))
            embedding.append(handle.get_tensor("embedding"))
    if not index:
        raise SermmError(f"{parts}: no predictions were written")
    index_all = np.concatenate(index)
    unique, first = np.unique(index_all, return_index=True)
    if len(unique) != n:
        missing = np.setdiff1d(np.arange(n), unique)
        raise SermmError(
            f"{source}: {len(missing)} row(s) have no prediction (a rank stopped?); "
            "run the same command again to score only those"
        )
    return np.concatenate(scores)[first], np.concatenate(embedding)[first]


def output_columns(inventory: Inventory, keep_all_classes: bool) -> list[str]:
    """The score file's columns: the primary classes (without MSP's O and X), all, or the attributes."""
    if inventory.task == "attributes":
        return list(ATTRIBUTES)
    return list(inventory.classes if keep_all_classes else inventory.primary)


def output_values(scores: np.ndarray, inventory: Inventory, keep_all_classes: bool) -> np.ndarray:
    """The score file's values: posteriors from a softmax over the kept classes' logits (the same as
    dropping O and X and renormalising), or the attribute predictions."""
    if inventory.task == "attributes":
        return scores.astype(np.float64)
    keep = [inventory.classes.index(c) for c in output_columns(inventory, keep_all_classes)]
    return softmax(np.asarray(scores[:, keep], dtype=np.float64))


def load_best_model(
    recipe: Recipe, run: RunDir, config: Any, accelerator: Any = None, *, quiet: bool = False
) -> nn.Module:
    """The run's best model, unwrapped: the recipe's prediction setup (``setup_run`` with no
    training manifest, before the model is built), its architecture, the best weights."""
    if hasattr(recipe, "setup_run"):
        recipe.setup_run(run, config, None, accelerator, quiet=quiet)
    model = recipe.build_model(config, run.inventory)
    load_trainable_state(model, run.best_weights)
    return model


def predict_system(
    recipe: Recipe,
    run_dir: str,
    manifest: Manifest,
    output: str,
    *,
    embeddings: str | None = None,
    keep_all_classes: bool = False,
    max_items: int | None = None,
    max_total: float | None = None,
    quiet: bool = False,
) -> Prediction:
    """Score ``manifest`` with the best model of ``run_dir``; write ``output`` (+ sidecar, + embeddings)."""
    run = RunDir.open(run_dir, system=recipe.system)
    config = run.config(recipe.config_class)
    accelerator = make_accelerator(config)
    model = accelerator.prepare(load_best_model(recipe, run, config, accelerator, quiet=quiet))
    dataset = Labelled(recipe.dataset(manifest, config, train=False), None)
    parts = parts_dir(output)
    todo = np.setdiff1d(np.arange(len(manifest)), _done(parts))
    accelerator.wait_for_everyone()  # every rank has read what is done before any writes more
    lengths = recipe.lengths(manifest, config, train=False)
    batches = [
        todo[b]
        for b in length_batches(lengths[todo], max_items=max_items or config.batch_size, max_total=max_total)
    ]
    mine = batches[accelerator.process_index :: accelerator.num_processes]
    per_part = max(1, FLUSH_ROWS // (max_items or config.batch_size))
    for start in range(0, len(mine), per_part):
        chunk = mine[start : start + per_part]
        data = loader(dataset, chunk, config)
        index, scores, embedding = run_batches(model, data, accelerator, desc="predict", quiet=quiet)
        _write_part(parts, index, scores, embedding, accelerator.process_index)
    accelerator.wait_for_everyone()
    columns = output_columns(run.inventory, keep_all_classes)
    if accelerator.is_main_process:
        scores, embedding = _merge(parts, len(manifest), output)
        values = output_values(scores, run.inventory, keep_all_classes)
        _write_outputs(run, config, manifest, output, values, columns, embeddings, embedding)
        shutil.rmtree(parts, ignore_errors=True)
    accelerator.wait_for_everyone()
    return Prediction(output, embeddings, len(manifest), list(columns), accelerator.is_main_process)


def _write_outputs(
    run: RunDir,
    config: Any,
    manifest: Manifest,
    output: str,
    values: np.ndarray,
    columns: list[str],
    embeddings: str | None,
    embedding: np.ndarray,
) -> None:
    """The score file and its sidecar, then the embedding file and its sidecar."""
    inventory = run.inventory
    attributes = inventory.task == "attributes"
    extra = {
        "model_id": config.backbone,
        "config_hash": run.info.get("config_hash"),
        "task": inventory.task,
        "sermm_version": __version__,
        **manifest.extra,
    }
    if config.kind:
        extra["kind"] = config.kind
    if not attributes and config.class_weighted:
        extra["label_prior"] = inventory.prior(list(columns))  # train_prior is uniform: class weights
    if attributes:
        extra["attributes"] = list(columns)
    sidecar = Sidecar(
        system=run.name,
        classes=None if attributes else list(columns),
        values="regression" if attributes else "probability",
        train_prior=None if attributes else inventory.output_prior(list(columns), config.class_weighted),
        inputs=[manifest.source],
        models=[str(run.path)],
        extra=extra,
    )
    write_scores(
        ScoreTable(manifest.ids, values, list(columns), "attribute" if attributes else "posterior"), output
    )
    write_sidecar(output, sidecar)
    if embeddings:
        names = [f"e{j}" for j in range(embedding.shape[1])]
        write_scores(ScoreTable(manifest.ids, embedding.astype(np.float64), names, "embedding"), embeddings)
        write_sidecar(
            embeddings,
            Sidecar(
                system=run.name,
                values="embedding",
                inputs=[manifest.source],
                models=[str(run.path)],
                extra={**extra, "dim": len(names)},
            ),
        )
