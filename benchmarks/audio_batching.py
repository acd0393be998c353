"""Audio batching benchmark: padded frames and utterances/s of length-bucketed against shuffled batches,
then training steps/s and peak memory of a tiny model, all on the CPU.

Durations follow an MSP-Podcast-like mix: log-normal with mean 5.8 s, clipped to 1-30 s. Target:
length bucketing pads at least 1.5x fewer frames than shuffled batches of the same size.

    .venv/bin/python benchmarks/audio_batching.py [--kind w2v-bert] [--utterances 240] [--threads 1]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sermm.systems.audio.backbones import load_backbone
from sermm.systems.audio.model import AudioModel
from sermm.systems.audio.scratch import save_random_backbone
from sermm.systems.batching import length_batches, padded_fraction
from sermm.systems.losses import weighted_cross_entropy

MEAN_S, SIGMA = 5.8, 0.65
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)
TINY_KINDS = {
    "w2v-bert": dict(
        **TINY, feature_projection_input_dim=160, conv_depthwise_kernel_size=15, mask_time_prob=0.0
    ),
    "wav2vec2": dict(
        **TINY,
        conv_dim=(32,) * 7,
        num_conv_pos_embeddings=32,
        num_conv_pos_embedding_groups=4,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        mask_time_prob=0.0,
    ),
}


def msp_like_durations(n: int, seed: int = 0) -> np.ndarray:
    """Log-normal durations with mean ``MEAN_S`` seconds (before clipping to [1, 30] s)."""
    mu = np.log(MEAN_S) - SIGMA**2 / 2
    return np.clip(np.random.default_rng(seed).lognormal(mu, SIGMA, n), 1.0, 30.0)


def shuffled_batches(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return [order[i : i + size] for i in range(0, n, size)]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def utterances_per_second(model, waves, batches) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        for rows in batches:
            model(model.backbone.features([waves[i] for i in rows]))
    return len(waves) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=sorted(TINY_KINDS), default="w2v-bert")
    parser.add_argument("--utterances", type=int, default=240, help="for the speed measurement")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(f"== padded frames: 20,000 MSP-like durations (mean {MEAN_S} s, 1-30 s), batches of 32")
    durations = msp_like_durations(20_000)
    shuffled = padded_fraction(durations, shuffled_batches(len(durations), 32))
    bucketed = padded_fraction(durations, length_batches(durations, max_items=32, shuffle=True, seed=0))
    predict = padded_fraction(durations, length_batches(durations, max_items=32))
    print(f"mean duration {durations.mean():.2f} s, median {np.median(durations):.2f} s")
    print(f"{'batching':<34}{'padded frames':>14}")
    print(f"{'shuffled':<34}{shuffled:>14.1%}")
    print(f"{'length-bucketed, shuffled buckets':<34}{bucketed:>14.1%}")
    print(f"{'sorted (prediction)':<34}{predict:>14.1%}")
    ratio = shuffled / bucketed
    verdict = "met" if ratio >= 1.5 else "NOT met"
    print(f"bucketed pads {ratio:.1f}x fewer frames than shuffled (target >= 1.5x: {verdict})")

    with tempfile.TemporaryDirectory() as tmp:
        path = save_random_backbone(args.kind, Path(tmp) / args.kind, **TINY_KINDS[args.kind])
        rng = np.random.default_rng(2)
        print(
            f"\n== training: tiny {args.kind} (hidden 64, 2 layers), batches of 8 random 3 s chunks "
            "(measured first, so that the peak memory is training's)"
        )
        for finetune in ("lora", "full"):
            model = AudioModel(load_backbone(path, finetune=finetune), 8).train()
            opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
            batch = model.backbone.features(
                [(0.1 * rng.standard_normal(48000)).astype(np.float32) for _ in range(8)]
            )
            target = torch.arange(8) % 8
            steps, before = 20, peak_rss_mb()
            start = time.perf_counter()
            for _ in range(steps):
                loss = weighted_cross_entropy(model(batch)["scores"], target)
                opt.zero_grad()
                loss.backward()
                opt.step()
            rate = steps / (time.perf_counter() - start)
            print(
                f"{finetune:<5}: {rate:.2f} steps/s ({rate * 8:.1f} chunks/s), "
                f"peak RSS {peak_rss_mb():.0f} MB (before the model: {before:.0f} MB)"
            )
        n = args.utterances
        sub = msp_like_durations(n, seed=1)
        waves = [(0.1 * rng.standard_normal(int(d * 16000))).astype(np.float32) for d in sub]
        print(
            f"\n== prediction speed: tiny {args.kind} (hidden 64, 2 layers), {n} utterances "
            f"({sub.sum() / 60:.1f} min of audio), batches of {args.batch}, "
            f"{args.threads} thread(s)"
        )
        model = AudioModel(load_backbone(path, finetune="lora"), 8).eval()
        utterances_per_second(model, waves[:4], [np.arange(4)])  # warm-up
        fast = utterances_per_second(model, waves, length_batches(sub, max_items=args.batch))
        slow = utterances_per_second(model, waves, shuffled_batches(n, args.batch))
        print(f"sorted: {fast:.1f} utterances/s, shuffled: {slow:.1f} utterances/s ({fast / slow:.2f}x)")

    print(f"\npython {sys.version.split()[0]}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
