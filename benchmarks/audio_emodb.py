"""Real-data check of the audio system on EmoDB: a small Wav2Vec2-BERT-architecture model trained from
random initialisation (no pretrained weights exist offline here) with ``sermm-system audio train
--finetune full``, leave-two-speakers-out folds, beside a log-mel + logistic-regression baseline on the
same folds; then ``sermm-fuse plda`` on the embeddings the system wrote.

    nice -n 10 .venv/bin/python benchmarks/audio_emodb.py /work/shared/data/emodb > log 2>&1

Each fold holds out one female and one male speaker. An 8-speaker corpus leaves no speakers for a
dev set, so the epoch is chosen on every fifth training clip (seen in training: in effect the latest
epochs win); the held-out pair is scored once, with the chosen model.
Outputs go to ``benchmarks/_data/emodb/`` (not committed: EmoDB is research-only).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import time
from pathlib import Path

import numpy as np
from emodb_common import folds, read_posteriors, run, sermm
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sermm.metrics import macro_f1, unweighted_accuracy
from sermm.systems.audio.features import LogMelFeatures
from sermm.systems.audio.io import read_audio
from sermm.systems.audio.scratch import save_random_backbone

WORK = Path(__file__).resolve().parent / "_data" / "emodb"
#: The small Wav2Vec2-BERT architecture trained from scratch (the real one: hidden 1024, 24 layers).
MODEL = dict(
    hidden_size=96,
    num_hidden_layers=3,
    num_attention_heads=4,
    intermediate_size=384,
    feature_projection_input_dim=160,
    conv_depthwise_kernel_size=15,
    position_embeddings_type=None,  # position from the convolutions: half the time of relative_key
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


def split_embeddings(path: Path, ids: list[str], test: np.ndarray, fold: Path) -> None:
    """The embedding file of all clips as a_train/a_test.emb.parquet (the training and held-out clips)."""
    import pandas as pd

    table = pd.read_parquet(path).set_index("id").loc[ids]
    for part, rows in (("train", ~test), ("test", test)):
        table[rows].reset_index().to_parquet(fold / f"a_{part}.emb.parquet", index=False)


LABELS = {
    "baseline": "log-mel + logistic regr.",
    "system": "sermm audio (w2v-bert arch.)",
    "plda": "  embeddings -> LDA + PLDA",
}


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
    print(f"{'held out':<10}{'system':<30}{'UA':>7}{'macro-F1':>10}{'minutes':>9}")
    results: dict[str, list[tuple[float, float]]] = {key: [] for key in LABELS}

    def score(key: str, name: str, truth: np.ndarray, pred: np.ndarray, minutes: float | None = None) -> None:
        ua = unweighted_accuracy(truth, pred, n_classes=len(classes))
        f1 = macro_f1(truth, pred, n_classes=len(classes))
        results[key].append((ua, f1))
        took = "" if minutes is None else f"{minutes:>9.1f}"
        print(f"{name:<10}{LABELS[key]:<30}{ua:>7.3f}{f1:>10.3f}{took}", flush=True)

    for k, pair in enumerate(folds(rows)[: args.folds]):
        test = np.isin(speakers, pair)
        fold = WORK / f"fold{k}"
        fold.mkdir(exist_ok=True)
        train_rows = [r for r, t in zip(rows, test, strict=True) if not t]
        write_manifest(fold / "train.csv", train_rows, args.data)
        write_manifest(fold / "select.csv", train_rows[::5], args.data)  # model selection: seen clips
        write_manifest(fold / "test.csv", [r for r, t in zip(rows, test, strict=True) if t], args.data)
        name = "+".join(pair)
        test_ids = [i for i, t in zip(ids, test, strict=True) if t]

        base = make_pipeline(
            StandardScaler(), LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced")
        )
        score("baseline", name, y[test], base.fit(X[~test], y[~test]).predict(X[test]))

        start = time.perf_counter()
        run_dir, sets = fold / "run", [a for s in SETTINGS for a in ("--set", s)]
        shutil.rmtree(run_dir, ignore_errors=True)
        run(
            sermm(
                "sermm-system",
                "audio",
                "train",
                "--train",
                fold / "train.csv",
                "--dev",
                fold / "select.csv",
                "--backbone",
                backbone,
                "--finetune",
                "full",
                "--out",
                run_dir,
                *sets,
            ),
            log,
        )
        write_manifest(fold / "all.csv", rows, args.data)  # one process scores both sides of the fold
        run(
            sermm(
                "sermm-system",
                "audio",
                "predict",
                run_dir,
                "--manifest",
                fold / "all.csv",
                "--output",
                fold / "a_all.csv",
                "--embeddings",
                fold / "a_all.emb.parquet",
            ),
            log,
        )
        split_embeddings(fold / "a_all.emb.parquet", ids, test, fold)
        minutes = (time.perf_counter() - start) / 60
        score(
            "system",
            name,
            y[test],
            read_posteriors(fold / "a_test.csv", test_ids, classes).argmax(1),
            minutes,
        )

        # PLDA fitted on the training speakers' embeddings, applied to the held-out pair
        run(
            sermm(
                "sermm-fuse",
                "plda",
                "--inputs",
                fold / "a_train.emb.parquet",
                "--labels",
                fold / "train.csv",
                "--save",
                fold / "plda.json",
            ),
            log,
        )
        run(
            sermm(
                "sermm-fuse",
                "apply",
                fold / "plda.json",
                "--inputs",
                fold / "a_test.emb.parquet",
                "--output",
                fold / "plda_test.csv",
            ),
            log,
        )
        score("plda", name, y[test], read_posteriors(fold / "plda_test.csv", test_ids, classes).argmax(1))

    print("\nmean over folds")
    for key, values in results.items():
        ua, f1 = np.mean(values, axis=0)
        print(f"{'':<10}{LABELS[key]:<30}{ua:>7.3f}{f1:>10.3f}")
    print(f"chance UA {1 / len(classes):.3f}; total {(time.perf_counter() - began) / 60:.1f} min")


if __name__ == "__main__":
    main()
