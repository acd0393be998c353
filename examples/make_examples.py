"""Regenerate the example score files under ``examples/`` from GoEmotions and EmoBank.

Trains small text systems on the openly licensed corpora in ``--data-dir`` and writes posterior,
attribute, embedding, label and group files (with ``.meta.json`` sidecars) into ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, f1_score
from sklearn.naive_bayes import MultinomialNB

SEED = 0
CREATED = "2025-01-01T00:00:00Z"
EMB_DIM = 32
N_GROUPS = 10
FLOAT_FORMAT = "%.6g"
EKMAN = ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]
ATTRIBUTES = ["arousal", "valence", "dominance"]
GOEMOTIONS_SOURCE = (
    "GoEmotions (Apache-2.0), Demszky et al. 2020, Google Research; Ekman, single-label"
)
EMOBANK_SOURCE = "EmoBank (CC-BY-SA 4.0), Buechel & Hahn, EACL 2017; reader+writer mean VAD, 1-5"
REPO_ROOT = Path(__file__).resolve().parent.parent


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT / ".." / "shared" / "data")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    return parser.parse_args()


def check_unique(ids: pd.Series, name: str) -> pd.Series:
    """Return a mask keeping the first occurrence of each id, reporting any duplicates."""
    dup = ids.duplicated()
    if dup.any():
        print(f"{name}: dropping {int(dup.sum())} rows with duplicate ids")
    return ~dup


def write_meta(path: Path, meta: dict) -> None:
    """Write ``meta`` as the ``<file>.meta.json`` sidecar of ``path``."""
    sidecar = path.with_name(path.name + ".meta.json")
    sidecar.write_text(json.dumps(meta, indent=2) + "\n")


def write_posteriors(path: Path, ids: pd.Series, probs: np.ndarray, meta: dict) -> None:
    """Write a posterior CSV and its sidecar, checking rows still sum to 1 after rounding."""
    frame = pd.DataFrame(probs, columns=EKMAN)
    frame.insert(0, "id", ids.to_numpy())
    frame.to_csv(path, index=False, float_format=FLOAT_FORMAT)
    row_sums = pd.read_csv(path, dtype={"id": str})[EKMAN].to_numpy().sum(axis=1)
    if np.abs(row_sums - 1.0).max() > 1e-4:
        raise ValueError(f"{path}: rows do not sum to 1 after rounding")
    write_meta(path, meta)


def write_embeddings(path: Path, ids: pd.Series, emb: np.ndarray, meta: dict) -> None:
    """Write a float32 embedding Parquet file (``id,e0..eN``) and its sidecar."""
    frame = pd.DataFrame(emb.astype(np.float32), columns=[f"e{i}" for i in range(emb.shape[1])])
    frame.insert(0, "id", ids.to_numpy())
    frame.to_parquet(path, index=False, compression="zstd", use_dictionary=False)
    write_meta(path, meta)


def read_goemotions(ekman_dir: Path, split: str) -> pd.DataFrame:
    """Read one Ekman split, keeping single-label examples with a ``label`` name column."""
    frame = pd.read_csv(
        ekman_dir / f"{split}.tsv",
        sep="\t",
        header=None,
        names=["text", "labels", "id"],
        quoting=csv.QUOTE_NONE,
        dtype=str,
        keep_default_na=False,
    )
    names = (ekman_dir / "labels.txt").read_text().split()
    if names != EKMAN:
        raise ValueError(f"unexpected Ekman labels {names}")
    frame = frame[~frame["labels"].str.contains(",")]
    frame = frame[check_unique(frame["id"], f"goemotions/{split}")].reset_index(drop=True)
    frame["label"] = np.asarray(EKMAN)[frame["labels"].astype(int).to_numpy()]
    return frame


def ccc(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Population concordance correlation coefficient per column."""
    mx, my = x.mean(axis=0), y.mean(axis=0)
    cov = ((x - mx) * (y - my)).mean(axis=0)
    return 2 * cov / (x.var(axis=0) + y.var(axis=0) + (mx - my) ** 2)


def make_goemotions(data_dir: Path, out: Path) -> list[str]:
    """Train the three GoEmotions systems and write their files; return report lines."""
    ekman_dir = data_dir / "goemotions" / "ekman"
    out.mkdir(parents=True, exist_ok=True)
    train, *evals = (read_goemotions(ekman_dir, s) for s in ("train", "dev", "test"))
    splits = dict(zip(("dev", "test"), evals, strict=True))
    prior = train["label"].value_counts(normalize=True).reindex(EKMAN)
    train_prior = {c: round(float(p), 6) for c, p in prior.items()}
    y_train = train["label"].to_numpy()

    vec_words = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    vec_chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=3, sublinear_tf=True)
    vec_counts = CountVectorizer(ngram_range=(1, 1))
    logreg = LogisticRegression(C=4.0, solver="saga", tol=1e-3, max_iter=1000, random_state=SEED)
    systems = {
        "words": (vec_words, clone(logreg), "tfidf-word-1-2gram+logreg"),
        "chars": (vec_chars, clone(logreg), "tfidf-charwb-2-5gram+logreg"),
        "nb": (vec_counts, MultinomialNB(alpha=0.1), "counts-word-1gram+multinomialnb"),
    }
    lines = ["| system | model_id | macro-F1 | accuracy | mean max-prob |", "|---|---|---|---|---|"]
    for name, (vec, clf, model_id) in systems.items():
        x_train = vec.fit_transform(train["text"])
        clf.fit(x_train, y_train)
        if list(clf.classes_) != EKMAN:
            raise ValueError(f"{name}: unexpected class order {list(clf.classes_)}")
        meta = {
            "system": name,
            "classes": EKMAN,
            "train_prior": train_prior,
            "model_id": model_id,
            "created": CREATED,
            "values": "probability",
            "source": GOEMOTIONS_SOURCE,
        }
        emb_meta = {
            "system": name,
            "dim": EMB_DIM,
            "model_id": model_id.split("+")[0] + f"+svd{EMB_DIM}",
            "created": CREATED,
            "values": "embedding",
            "source": GOEMOTIONS_SOURCE,
        }
        svd = TruncatedSVD(EMB_DIM, random_state=SEED).fit(x_train) if name != "nb" else None
        for split, frame in splits.items():
            x = vec.transform(frame["text"])
            probs = clf.predict_proba(x)
            base = f"{name}_{split}"
            write_posteriors(out / f"{base}.csv", frame["id"], probs, meta)
            if svd is not None:
                write_embeddings(
                    out / f"{base}.emb.parquet", frame["id"], svd.transform(x), emb_meta
                )
            if split == "test":
                pred = np.asarray(EKMAN)[probs.argmax(axis=1)]
                f1 = f1_score(frame["label"], pred, average="macro")
                acc = accuracy_score(frame["label"], pred)
                conf = probs.max(axis=1).mean()
                lines.append(f"| {name} | `{model_id}` | {f1:.3f} | {acc:.3f} | {conf:.3f} |")

    for split, frame in splits.items():
        frame[["id", "label"]].to_csv(out / f"labels_{split}.csv", index=False)
    dev_ids = splits["dev"]["id"]
    groups = [f"spk{zlib.crc32(i.encode()) % N_GROUPS:02d}" for i in dev_ids]
    pd.DataFrame({"id": dev_ids, "group": groups}).to_csv(out / "groups_dev.csv", index=False)
    return lines


def make_emobank(data_dir: Path, out: Path) -> list[str]:
    """Train the two EmoBank attribute regressors and write their files; return report lines."""
    out.mkdir(parents=True, exist_ok=True)
    frame = pd.read_csv(
        data_dir / "emobank" / "emobank.csv", dtype={"id": str}, keep_default_na=False
    )
    frame = frame[check_unique(frame["id"], "emobank")]
    frame = frame.rename(columns={"A": "arousal", "V": "valence", "D": "dominance"})
    splits = {
        s: frame[frame["split"] == s].reset_index(drop=True) for s in ("train", "dev", "test")
    }
    y_train = splits["train"][ATTRIBUTES].to_numpy()

    systems = {
        "ridge_words": (
            TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
            "tfidf-word-1-2gram+ridge",
        ),
        "ridge_chars": (
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True),
            "tfidf-charwb-2-5gram+ridge",
        ),
    }
    lines = [
        "| system | model_id | CCC arousal | CCC valence | CCC dominance |",
        "|---|---|---|---|---|",
    ]
    for name, (vec, model_id) in systems.items():
        reg = Ridge(alpha=1.0).fit(vec.fit_transform(splits["train"]["text"]), y_train)
        meta = {
            "system": name,
            "attributes": ATTRIBUTES,
            "model_id": model_id,
            "created": CREATED,
            "values": "regression",
            "source": EMOBANK_SOURCE,
        }
        for split in ("dev", "test"):
            part = splits[split]
            pred = reg.predict(vec.transform(part["text"]))
            path = out / f"{name}_{split}.csv"
            result = pd.DataFrame(pred, columns=ATTRIBUTES)
            result.insert(0, "id", part["id"].to_numpy())
            result.to_csv(path, index=False, float_format=FLOAT_FORMAT)
            write_meta(path, meta)
            if split == "test":
                scores = " | ".join(f"{v:.3f}" for v in ccc(pred, part[ATTRIBUTES].to_numpy()))
                lines.append(f"| {name} | `{model_id}` | {scores} |")
    for split in ("dev", "test"):
        labels = splits[split][["id", *ATTRIBUTES]]
        labels.to_csv(out / f"labels_{split}.csv", index=False, float_format=FLOAT_FORMAT)
    return lines


def main() -> None:
    """Build every example file and print the test-set quality tables."""
    args = parse_args()
    data_dir = args.data_dir.resolve()
    out = args.out.resolve()
    print("GoEmotions (Ekman, single-label), test set:")
    print("\n".join(make_goemotions(data_dir, out / "goemotions")))
    print("\nEmoBank, test set:")
    print("\n".join(make_emobank(data_dir, out / "emobank")))


if __name__ == "__main__":
    main()
