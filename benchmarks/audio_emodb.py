"""Real-data check of the audio system on EmoDB: a small Wav2Vec2-BERT-architecture model trained from
random initialisation (no pretrained weights exist offline here) with ``sermm-system audio train
--finetune full``, leave-two-speakers-out folds, beside a log-mel + logistic-regression baseline on the
same folds; then ``sermm-fuse plda`` on the embeddings the system wrote.

    nice -n 10 .venv/bin/python benchmarks/audio_emodb.py /work/shared/data/emodb > log 2>&1

Each fold holds out one female and one male speaker. The model is chosen on its own training
speakers (an 8-speaker corpus leaves none for a dev set); the held-out pair is scored once.
Outputs go to ``benchmarks/_data/emodb/`` (not committed: EmoDB is research-only).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sermm.metrics import macro_f1, unweighted_accuracy
from sermm.systems.audio.features import LogMelFeatures
from sermm.systems.audio.io import read_audio
from sermm.systems.audio.scratch import save_random_backbone

WORK = Path(__file__).resolve().parent / "_data" / "emodb"
BIN = Path(sys.executable).parent
#: The small Wav2Vec2-BERT architecture trained from scratch (the real one: hidden 1024, 24 layers).
MODEL = dict(
    hidden_size=96,
    num_hidden_layers=3,
    num_attention_heads=4,
    intermediate_size=384,
    feature_projection_input_dim=160,
    conv_depthwise_kernel_size=15,
    position_embeddings_type="relative_key",
    left_max_position_embeddings=64,
    right_max_position_embeddings=8,
    mask_time_prob=0.0,
)
#: Training settings for a from-scratch model on 300 clips (the recipe's defaults are for LoRA on a
#: pretrained backbone): higher learning rate, shorter chunks (the clips are 2 s), class weights.
SETTINGS = [
    "epochs=12",
    "lr=1e-3",
    "warmup_ratio=0.1",
    "batch_size=16",
    "effective_batch=16",
    "class_weighted=true",
    "chunk_min_s=1.5",
    "chunk_max_s=2.0",
    "embedding_dim=128",
    "num_workers=0",
]


def folds(rows: list[dict]) -> list[tuple[str, str]]:
    """Pairs of one male and one female speaker, in speaker order."""
    sex = {r["speaker"]: r["sex"] for r in rows}
    male = sorted(s for s, x in sex.items() if x == "m")
    female = sorted(s for s, x in sex.items() if x == "f")
    return list(zip(male, female, strict=True))


def write_manifest(path: Path, rows: list[dict], root: Path) -> None:
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["id", "path", "label", "speaker"])
        for r in rows:
            out.writerow([Path(r["file"]).stem, str(root / r["file"]), r["emotion"], r["speaker"]])


def baseline_features(paths: list[Path]) -> np.ndarray:
    """Per clip: mean and SD of 80 log-mel bins, and mean, SD, min, max of the frame log-energy."""
    from transformers import SeamlessM4TFeatureExtractor

    logmel = LogMelFeatures(SeamlessM4TFeatureExtractor())
    out = []
    for path in paths:
        mel = logmel.log_mel(read_audio(path), normalise=False)
        energy = np.log(np.exp(mel).sum(1))
        out.append(
            np.concatenate(
                [mel.mean(0), mel.std(0), [energy.mean(), energy.std(), energy.min(), energy.max()]]
            )
        )
    return np.array(out)


def run(cmd: list[str], log: Path) -> None:
    """Run a sermm command, its output into ``log``; stop with its tail on failure."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    with log.open("a") as handle:
        handle.write("$ " + " ".join(cmd) + "\n")
        handle.flush()
        done = subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env)
    if done.returncode:
        tail = log.read_text().splitlines()[-15:]
        raise SystemExit(f"{cmd[0]} failed ({done.returncode}):\n" + "\n".join(tail))


def read_posteriors(path: Path, ids: list[str], classes: list[str]) -> np.ndarray:
    import pandas as pd

    table = pd.read_csv(path).set_index("id").loc[ids]
    return table[classes].to_numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="the EmoDB folder (labels.csv, wav/)")
    parser.add_argument("--folds", type=int, default=None, help="run only the first N folds")
    args = parser.parse_args()
    began = time.perf_counter()
    rows = list(csv.DictReader((args.data / "labels.csv").open()))
    classes = sorted({r["emotion"] for r in rows})
    y = np.array([classes.index(r["emotion"]) for r in rows])
    speakers = np.array([r["speaker"] for r in rows])
    ids = [Path(r["file"]).stem for r in rows]
    WORK.mkdir(parents=True, exist_ok=True)
    log = WORK / "commands.log"
    log.write_text("")
    backbone = save_random_backbone("w2v-bert", WORK / "w2v-bert-scratch", **MODEL)
    X = baseline_features([args.data / r["file"] for r in rows])
    print(
        f"EmoDB: {len(rows)} clips, {len(set(speakers))} speakers, {len(classes)} classes; "
        f"model: Wav2Vec2-BERT architecture, hidden {MODEL['hidden_size']}, {MODEL['num_hidden_layers']} "
        f"layers, random init, --finetune full; {', '.join(SETTINGS)}",
        flush=True,
    )
    header = f"{'held out':<10}{'system':<28}{'UA':>8}{'macro-F1':>10}{'minutes':>9}"
    print(header)
    results: dict[str, list[tuple[float, float]]] = {"baseline": [], "system": [], "plda": []}
    for k, pair in enumerate(folds(rows)[: args.folds]):
        test = np.isin(speakers, pair)
        fold = WORK / f"fold{k}"
        fold.mkdir(exist_ok=True)
        write_manifest(fold / "train.csv", [r for r, t in zip(rows, test, strict=True) if not t], args.data)
        write_manifest(fold / "test.csv", [r for r, t in zip(rows, test, strict=True) if t], args.data)
        name = "+".join(pair)
        base = make_pipeline(
            StandardScaler(), LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced")
        )
        pred = base.fit(X[~test], y[~test]).predict(X[test])
        results["baseline"].append(
            (
                unweighted_accuracy(y[test], pred, n_classes=len(classes)),
                macro_f1(y[test], pred, n_classes=len(classes)),
            )
        )
        print(
            f"{name:<10}{'log-mel + logistic regr.':<28}{results['baseline'][-1][0]:>8.3f}"
            f"{results['baseline'][-1][1]:>10.3f}",
            flush=True,
        )
        start = time.perf_counter()
        run_dir = fold / "run"
        sets = [a for s in SETTINGS for a in ("--set", s)]
        run(
            [
                str(BIN / "sermm-system"),
                "audio",
                "train",
                "--train",
                str(fold / "train.csv"),
                "--dev",
                str(fold / "train.csv"),
                "--backbone",
                str(backbone),
                "--finetune",
                "full",
                "--out",
                str(run_dir),
                *sets,
            ],
            log,
        )
        for part in ("train", "test"):
            run(
                [
                    str(BIN / "sermm-system"),
                    "audio",
                    "predict",
                    str(run_dir),
                    "--manifest",
                    str(fold / f"{part}.csv"),
                    "--output",
                    str(fold / f"a_{part}.csv"),
                    "--embeddings",
                    str(fold / f"a_{part}.emb.parquet"),
                ],
                log,
            )
        minutes = (time.perf_counter() - start) / 60
        test_ids = [i for i, t in zip(ids, test, strict=True) if t]
        P = read_posteriors(fold / "a_test.csv", test_ids, classes)
        pred = P.argmax(1)
        results["system"].append(
            (
                unweighted_accuracy(y[test], pred, n_classes=len(classes)),
                macro_f1(y[test], pred, n_classes=len(classes)),
            )
        )
        print(
            f"{name:<10}{'sermm audio (w2v-bert arch.)':<28}{results['system'][-1][0]:>8.3f}"
            f"{results['system'][-1][1]:>10.3f}{minutes:>9.1f}",
            flush=True,
        )
        # PLDA fitted on the training speakers' embeddings, applied to the held-out pair
        run(
            [
                str(BIN / "sermm-fuse"),
                "plda",
                "--inputs",
                str(fold / "a_train.emb.parquet"),
                "--labels",
                str(fold / "train.csv"),
                "--save",
                str(fold / "plda.json"),
            ],
            log,
        )
        run(
            [
                str(BIN / "sermm-fuse"),
                "apply",
                str(fold / "plda.json"),
                "--inputs",
                str(fold / "a_test.emb.parquet"),
                "--output",
                str(fold / "plda_test.csv"),
            ],
            log,
        )
        pred = read_posteriors(fold / "plda_test.csv", test_ids, classes).argmax(1)
        results["plda"].append(
            (
                unweighted_accuracy(y[test], pred, n_classes=len(classes)),
                macro_f1(y[test], pred, n_classes=len(classes)),
            )
        )
        print(
            f"{name:<10}{'  embeddings -> LDA + PLDA':<28}{results['plda'][-1][0]:>8.3f}"
            f"{results['plda'][-1][1]:>10.3f}",
            flush=True,
        )
    print("\nmean over folds")
    labels = {
        "baseline": "log-mel + logistic regr.",
        "system": "sermm audio (w2v-bert arch.)",
        "plda": "  embeddings -> LDA + PLDA",
    }
    for key, values in results.items():
        ua, f1 = np.mean(values, axis=0)
        print(f"{'':<10}{labels[key]:<28}{ua:>8.3f}{f1:>10.3f}")
    print(f"chance UA {1 / len(classes):.3f}; total {(time.perf_counter() - began) / 60:.1f} min")


if __name__ == "__main__":
    main()
