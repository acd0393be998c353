"""A small fake MSP-Podcast corpus as teams hold it: labels_consensus.csv and posterior files.

The labels file has the real layout (FileName, EmoClass letter codes with O and X rows,
EmoAct/EmoVal/EmoDom, SpkrID, Gender, Split_Set); posterior files are written under any of the
class namings teams use (sermm's lowercase names, the official baseline's capitalised names,
or MSP letter codes), always with the challenge's 8 classes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CODES = ["A", "S", "H", "U", "F", "D", "C", "N"]
NAMINGS = {
    "lower": ["angry", "sad", "happy", "surprise", "fear", "disgust", "contempt", "neutral"],
    "baseline": ["Angry", "Sad", "Happy", "Surprise", "Fear", "Disgust", "Contempt", "Neutral"],
    "letters": CODES,
}
N_DEV, N_OX, N_TEST = 64, 6, 10


def dev_ids() -> list[str]:
    return [f"MSP-PODCAST_{i:04d}_0001.wav" for i in range(N_DEV + N_OX)]


def eval_ids() -> list[str]:
    return [f"MSP-PODCAST_{9000 + i:04d}_0001.wav" for i in range(N_TEST)]


def write_labels(folder: Path, *, name: str = "labels_consensus.csv") -> Path:
    """labels_consensus.csv: 64 dev rows of the 8 classes, 6 dev rows of O/X, 10 Test1 rows."""
    rng = np.random.default_rng(0)
    codes = [CODES[i % 8] for i in range(N_DEV)] + ["O", "X"] * (N_OX // 2)
    lines = ["FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set"]
    for i, (fid, code) in enumerate(zip(dev_ids(), codes, strict=True)):
        a, v, d = rng.uniform(1, 7, 3)
        gender = "Female" if i % 2 else "Male"
        lines.append(f"{fid},{code},{a:.2f},{v:.2f},{d:.2f},{i % 7},{gender},Development")
    for i, fid in enumerate(eval_ids()):
        lines.append(f"{fid},{CODES[i % 8]},4.0,4.0,4.0,{100 + i % 3},Male,Test1")
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


def posteriors(seed: int, ids: list[str]) -> np.ndarray:
    """Posteriors that lean towards the true class of each dev id (8 classes, rows sum to 1)."""
    rng = np.random.default_rng(seed)
    truth = np.array([i % 8 for i in range(len(ids))])
    logits = rng.normal(size=(len(ids), 8))
    logits[np.arange(len(ids)), truth] += 1.5
    P = np.exp(logits)
    return P / P.sum(axis=1, keepdims=True)


def write_posteriors(path: Path, P: np.ndarray, ids: list[str], columns: list[str], sep: str = ",") -> Path:
    lines = [sep.join(["id", *columns])]
    lines += [sep.join([i, *(f"{p:.8f}" for p in row)]) for i, row in zip(ids, P, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_systems(folder: Path, naming: str, *, with_ox_rows: bool = False) -> tuple[Path, Path]:
    """audio_dev.csv and text_dev.csv under one class naming (dev rows without O/X by default)."""
    ids = dev_ids() if with_ox_rows else dev_ids()[:N_DEV]
    audio = write_posteriors(folder / "audio_dev.csv", posteriors(1, ids), ids, NAMINGS[naming])
    text = write_posteriors(folder / "text_dev.csv", posteriors(2, ids), ids, NAMINGS[naming])
    return audio, text
