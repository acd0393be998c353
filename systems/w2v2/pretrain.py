"""Continued pre-training on the task's audio before fine-tuning: TAPT (wav2vec 2.0's contrastive
objective) and P-TAPT (masked prediction of k-means pseudo-labels).

Both read each training utterance once as a fixed crop (its first ``max_train_s`` seconds; P-TAPT's
frame labels must stay aligned with the frames across epochs), in length-bucketed batches, train
with AdamW and the feature encoder (the CNN) frozen, and return the state dict of the bare
backbone model (``Wav2Vec2Model``, ``HubertModel``, ``WavLMModel`` keys), which the downstream
fine-tuning starts from. They run in one process.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from sermm.errors import SermmError, first_line
from sermm.systems.audio.backbones import conv_output_lengths, lengths_to_mask
from sermm.systems.audio.data import AudioItems
from sermm.systems.batching import length_batches
from sermm.systems.training import warmup_schedule

Log = Callable[[dict[str, Any]], None]


def crop_batches(
    items: AudioItems, features: Callable, *, batch_size: int, max_s: float, shuffle: bool, seed: int
) -> Iterator[tuple[np.ndarray, dict[str, torch.Tensor]]]:
    """(rows, model inputs) of every utterance's first ``max_s`` seconds, in length-bucketed batches."""
    durations = np.minimum(items.durations, max_s)
    for rows in length_batches(durations, max_items=batch_size, shuffle=shuffle, seed=seed):
        yield rows, features([items.read(int(i), 0.0, max_s) for i in rows])


def frame_mask(model: nn.Module, attention_mask: torch.Tensor, n_frames: int) -> torch.Tensor:
    """The (B, n_frames) bool mask of the real output frames of a wav2vec2-family model."""
    lengths = conv_output_lengths(attention_mask.long().sum(1), model.config, adapter=False)
    return lengths_to_mask(lengths, n_frames)


def n_frames(model: nn.Module, n_samples: int) -> int:
    """Output frames of the model's convolutional encoder for ``n_samples`` input samples."""
    return int(conv_output_lengths(torch.tensor([n_samples]), model.config, adapter=False)[0])


def span_mask(mask: torch.Tensor, prob: float, length: int) -> torch.Tensor:
    """wav2vec 2.0's random time-span mask (B, T) over the real frames ``mask``: spans of ``length``
    frames whose starts cover ``prob`` of each utterance (at least two spans), as transformers draws it."""
    from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices

    drawn = _compute_mask_indices(
        tuple(mask.shape), prob, length, attention_mask=mask.long().cpu(), min_masks=2
    )
    return torch.from_numpy(drawn).to(mask.device) & mask


# ---------------------------------------------------------------------------------------------- TAPT


def load_tapt_model(backbone: str, config: Any) -> nn.Module:
    """``Wav2Vec2ForPreTraining`` from a wav2vec2 / XLS-R checkpoint (the quantiser and projections
    start at random when the checkpoint has none, as a fine-tuned or bare ``Wav2Vec2Model`` one)."""
    from transformers import Wav2Vec2ForPreTraining

    try:
        model = Wav2Vec2ForPreTraining.from_pretrained(
            str(backbone),
            mask_time_prob=config.mask_time_prob,
            mask_time_length=config.mask_time_length,
            layerdrop=0.0,
        )
    except (OSError, ValueError) as exc:
        raise SermmError(
            f"{backbone}: cannot load it for wav2vec 2.0 pre-training ({first_line(exc)})"
        ) from None
    model.freeze_feature_encoder()
    return model


def tapt_step(model: nn.Module, inputs: dict[str, torch.Tensor], config: Any) -> tuple[torch.Tensor, dict]:
    """One contrastive step's loss: L_m + α L_d (wav2vec 2.0: contrastive loss over the masked frames
    against ``num_negatives`` distractors from the same utterance, plus the codebook diversity loss),
    divided by the number of masked frames; and its parts."""
    from transformers.models.wav2vec2.modeling_wav2vec2 import _sample_negative_indices

    values, attention = inputs["input_values"], inputs["attention_mask"]
    t = n_frames(model.wav2vec2, values.shape[1])
    real = frame_mask(model.wav2vec2, attention, t)
    masked = span_mask(real, config.mask_time_prob, config.mask_time_length)
    negatives = _sample_negative_indices(
        (values.shape[0], t), model.config.num_negatives, mask_time_indices=masked.cpu().numpy()
    )
    out = model(
        values,
        attention_mask=attention,
        mask_time_indices=masked,
        sampled_negative_indices=torch.from_numpy(negatives).to(values.device),
    )
    count = masked.sum().clamp(min=1)
    parts = {
        "contrastive": float(out.contrastive_loss.detach() / count),
        "diversity": float(out.diversity_loss.detach() / count),
    }
    return out.loss / count, parts


# -------------------------------------------------------------------------------------------- P-TAPT


def load_ptapt_model(backbone: str, kind: str, config: Any) -> nn.Module:
    """The bare backbone model with its mask vector (``masked_spec_embed``, new when the checkpoint
    has none), for masked prediction."""
    from sermm.systems.audio.backbones import _load_model

    model = _load_model(
        kind,
        backbone,
        {
            "layerdrop": 0.0,
            "mask_time_prob": config.mask_time_prob,
            "mask_time_length": config.mask_time_length,
        },
    )
    model.feature_extractor.requires_grad_(False)
    return model


@torch.no_grad()
def frame_features(
    model: nn.Module, inputs: dict[str, torch.Tensor], layer: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden states (B, T, E) of ``layer`` (an index into ``hidden_states``: 0 the projected CNN
    features, −1 the last layer) and the real-frame mask, in eval mode."""
    out = model(inputs["input_values"], attention_mask=inputs["attention_mask"], output_hidden_states=True)
    states = out.hidden_states
    if not -len(states) <= layer < len(states):
        raise SermmError(f"kmeans_layer {layer} is outside the model's {len(states)} hidden states")
    h = states[layer]
    return h, frame_mask(model, inputs["attention_mask"], h.shape[1])


def kmeans_source(
    config: Any, model: nn.Module, features: Callable, device: torch.device
) -> tuple[nn.Module, Callable]:
    """The model whose frames P-TAPT clusters and its input features: ``model`` itself when
    ``kmeans_model`` is empty, else that checkpoint, or that ``sermm-system w2v2`` run's fine-tuned
    backbone. Its frames must be the backbone's (the same convolutional strides)."""
    if not config.kmeans_model:
        return model, features
    from sermm.systems.audio.backbones import load_backbone

    path = Path(config.kmeans_model)
    if (path / "run.json").exists():
        from sermm.systems.prediction import load_best_model
        from sermm.systems.rundir import RunDir
        from sermm.systems.w2v2.recipe import W2V2Config, W2V2Recipe

        run = RunDir.open(path, system="w2v2")
        backbone = load_best_model(W2V2Recipe(), run, run.config(W2V2Config)).backbone
    else:
        backbone = load_backbone(config.kmeans_model, layers="last", finetune="frozen")
    source = backbone.base_model.to(device)
    probe = 3 * 16000
    if n_frames(source, probe) != n_frames(model, probe):
        raise SermmError(
            f"kmeans_model {config.kmeans_model}: {n_frames(source, probe)} frames per 3 s, the backbone "
            f"{n_frames(model, probe)}; its frame labels would not align"
        )
    return source, backbone.features


def kmeans_targets(
    model: nn.Module,
    items: AudioItems,
    features: Callable,
    config: Any,
    device: torch.device,
    *,
    quiet: bool = False,
) -> tuple[list[np.ndarray], list[Any]]:
    """Cluster every real frame of the training crops with one ``MiniBatchKMeans`` per count of
    ``clusters`` (one streaming pass of ``partial_fit``), then label them (a second pass): each
    row's (frames, counts) labels, and the fitted models."""
    from sklearn.cluster import MiniBatchKMeans

    counts = list(config.clusters)
    models = [
        MiniBatchKMeans(n_clusters=k, batch_size=max(1024, 2 * k), random_state=config.seed, n_init=3)
        for k in counts
    ]
    chunk = max(m.batch_size for m in models)
    model.eval()
    buffer, fitted, total = [], False, 0
    passes = [("k-means fit", True), ("k-means labels", False)]
    labels: list[np.ndarray] = [np.empty((0, len(counts)), np.int64)] * len(items)
    for desc, fitting in passes:
        bar = tqdm(
            crop_batches(
                items, features, batch_size=config.batch_size, max_s=config.max_train_s, shuffle=False, seed=0
            ),
            desc=desc,
            unit="batch",
            file=sys.stderr,
            disable=True if quiet else None,
        )
        for rows, inputs in bar:
            inputs = {k: v.to(device) for k, v in inputs.items()}
            h, real = frame_features(model, inputs, config.kmeans_layer)
            frames = h[real].float().cpu().numpy()  # every real frame, row by row
            if fitting:
                buffer.append(frames)
                total += len(frames)
                if sum(len(b) for b in buffer) >= chunk:
                    block = np.concatenate(buffer)
                    for kmeans in models:
                        kmeans.partial_fit(block)
                    buffer, fitted = [], True
            else:
                ids = np.stack([m.predict(frames) for m in models], axis=1).astype(np.int64)
                ends = np.cumsum(real.sum(1).cpu().numpy())[:-1]
                for i, row in zip(rows, np.split(ids, ends), strict=True):
                    labels[int(i)] = row
        if fitting and buffer:
            rest = np.concatenate(buffer)
            if not fitted and len(rest) < max(counts):
                raise SermmError(
                    f"p-tapt: {total} training frames for {max(counts)} clusters; lower "
                    "--set clusters or give more audio"
                )
            for kmeans in models:
                kmeans.partial_fit(rest)
    return labels, models


def ptapt_step(
    model: nn.Module, heads: nn.ModuleList, inputs: dict[str, torch.Tensor], labels: torch.Tensor, config: Any
) -> torch.Tensor:
    """One masked-prediction step's loss (HuBERT's objective on k-means targets): spans of frames are
    replaced by the mask vector, and the cross-entropy of each head's cluster logits against the
    frames' cluster ids ``labels`` (B, T, heads; −100 on padding), averaged over the masked frames,
    is summed over the heads (one per cluster count, as FT-w2v2-ser does)."""
    values, attention = inputs["input_values"], inputs["attention_mask"]
    t = n_frames(model, values.shape[1])
    real = frame_mask(model, attention, t)
    masked = span_mask(real, config.mask_time_prob, config.mask_time_length)
    hidden = model(values, attention_mask=attention, mask_time_indices=masked).last_hidden_state
    loss = hidden.new_zeros((), dtype=torch.float32)
    for k, head in enumerate(heads):
        logits = head(hidden)
        target = labels[..., k].masked_fill(~masked, -100)
        loss = loss + F.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100
        )
    return loss


def pad_labels(labels: list[np.ndarray], rows: np.ndarray, n: int, device: torch.device) -> torch.Tensor:
    """The (frames, heads) labels of ``rows`` as a (B, n, heads) LongTensor padded (or cut) to ``n``
    frames with −100."""
    heads = labels[int(rows[0])].shape[1]
    out = torch.full((len(rows), n, heads), -100, dtype=torch.long)
    for k, i in enumerate(rows):
        row = torch.from_numpy(labels[int(i)][:n])
        out[k, : len(row)] = row
    return out.to(device)


# ------------------------------------------------------------------------------------------- the loop


def continue_pretraining(
    strategy: str,
    config: Any,
    kind: str,
    items: AudioItems,
    features: Callable,
    device: torch.device,
    log: Log,
    *,
    quiet: bool = False,
) -> dict[str, torch.Tensor]:
    """Run TAPT or P-TAPT on the training audio; the bare backbone's state dict afterwards."""
    torch.manual_seed(config.seed)
    np.random.seed(config.seed % 2**32)  # transformers draws the negatives from numpy's global generator
    if strategy == "tapt":
        if kind not in ("wav2vec2", "xls-r"):
            raise SermmError(
                f"tapt continues wav2vec 2.0's contrastive pre-training: it needs a wav2vec2 / XLS-R "
                f"backbone, not {kind} (p-tapt works with any wav2vec2-family one)"
            )
        model = load_tapt_model(config.backbone, config).to(device)
        head = None
        labels = None
    else:
        model = load_ptapt_model(config.backbone, kind, config).to(device)
        source, source_features = kmeans_source(config, model, features, device)
        labels, _ = kmeans_targets(source, items, source_features, config, device, quiet=quiet)
        del source
        head = nn.ModuleList(nn.Linear(model.config.hidden_size, k) for k in config.clusters).to(device)
    params = [p for p in model.parameters() if p.requires_grad] + (
        [] if head is None else list(head.parameters())
    )
    optimizer = torch.optim.AdamW(params, lr=config.pretrain_lr, weight_decay=config.weight_decay)
    schedule = warmup_schedule(config.pretrain_schedule, config.pretrain_warmup_steps, config.pretrain_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    step, began = 0, time.perf_counter()
    max_steps = config.pretrain_steps or None
    for epoch in range(1, config.pretrain_epochs + 1):
        model.train()
        total, count = 0.0, 0
        batches = crop_batches(
            items,
            features,
            batch_size=config.batch_size,
            max_s=config.max_train_s,
            shuffle=True,
            seed=config.seed * 100_003 + epoch,
        )
        bar = tqdm(
            batches,
            desc=f"{strategy} epoch {epoch}/{config.pretrain_epochs}",
            unit="batch",
            file=sys.stderr,
            disable=True if quiet else None,
        )
        for rows, inputs in bar:
            inputs = {k: v.to(device) for k, v in inputs.items()}
            if strategy == "tapt":
                temperature = max(config.gumbel_max * config.gumbel_decay**step, config.gumbel_min)
                model.set_gumbel_temperature(temperature)
                loss, _ = tapt_step(model, inputs, config)
            else:
                t = n_frames(model, inputs["input_values"].shape[1])
                loss = ptapt_step(model, head, inputs, pad_labels(labels, rows, t, device), config)
            if not torch.isfinite(loss):
                raise SermmError(f"{strategy}: the pre-training loss became {loss.item()} at step {step + 1}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            step += 1
            total, count = total + loss.item(), count + 1
            bar.set_postfix(loss=f"{total / count:.4f}")
            if max_steps and step >= max_steps:
                break
        log(
            {
                "strategy": strategy,
                "epoch": epoch,
                "steps": step,
                "loss": total / max(1, count),
                "seconds": round(time.perf_counter() - began, 2),
            }
        )
        if max_steps and step >= max_steps:
            break
    bare = model.wav2vec2 if strategy == "tapt" else model
    return {k: v.detach().cpu().contiguous() for k, v in bare.state_dict().items()}
