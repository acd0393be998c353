"""Speed and memory of ``sermm-fuse`` on large synthetic score files, next to a bare pyarrow floor.

Generates (once, into ``benchmarks/_data/``) three systems' posteriors for ``--rows``
evaluation utterances (default 1,000,000) and ``--dev-rows`` development utterances
(default 100,000) over 8 classes, as CSV and Parquet, plus embedding files for lda/plda
(``--emb-rows``, default 500,000; 2 systems x 32 dims). Then, for each method, times
through the CLI (one subprocess each):

* fit on the dev rows (``sermm-fuse METHOD ... --save``),
* apply to the eval rows (``sermm-fuse apply``), for CSV and for Parquet,

next to the floor: a bare pyarrow script that reads the same inputs, averages them and
writes the result in the same format. Peak memory is the subprocess's max RSS (``wait4``),
compared with the in-memory (Arrow) size of its inputs; both commands run with Arrow's allocator
returning freed pages at once (``MIMALLOC_PURGE_DELAY=0``, what sermm sets for itself), so the
floor is not charged for memory sermm saves that way. The embedding files have 500,000 rows, so
that the inputs (256 MiB), not the interpreter's fixed ~75 MiB, decide their memory ratio. Also
times the ``interp`` grid search in-process on the eval rows (3 systems, 231 grid points).

Usage: python benchmarks/fusion.py [--rows N] [--dev-rows N] [--methods mean,interp,...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

DATA = Path(__file__).resolve().parent / "_data"
CLASSES = ["angry", "sad", "happy", "surprise", "fear", "disgust", "contempt", "neutral"]
PRIOR = np.array([0.10, 0.08, 0.18, 0.05, 0.03, 0.03, 0.03, 0.50])
SYSTEMS = ("audio", "text", "fusion_dmha")
SEED = 0
EMB_DIM = 32
FORMATS = ("csv", "parquet")
TIME = Path("/usr/bin/time")

FLOOR = r"""
import sys
import pyarrow as pa, pyarrow.compute as pc, pyarrow.csv as pacsv, pyarrow.parquet as pq
out, paths = sys.argv[1], sys.argv[2:]
parquet = out.endswith(".parquet")
tables = [pq.read_table(p) if parquet else pacsv.read_csv(p) for p in paths]
columns = []
for name in tables[0].column_names[1:]:
    total = tables[0].column(name)
    for table in tables[1:]:
        total = pc.add(total, table.column(name))
    columns.append(pc.divide(total, float(len(tables))))
result = pa.table([tables[0].column(0), *columns], names=tables[0].column_names)
pq.write_table(result, out) if parquet else pacsv.write_csv(result, out)
"""


def posteriors(rng: np.random.Generator, y: np.ndarray, shared: np.ndarray, skill: float) -> np.ndarray:
    """Dirichlet-like posteriors: softmax of label evidence + evidence shared by all systems + own noise."""
    n, k = shared.shape
    logits = skill * np.eye(k)[y] + shared + 0.9 * rng.standard_normal((n, k)) + np.log(PRIOR)
    logits *= rng.gamma(4.0, 0.25, size=(n, 1))  # per-utterance confidence
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def write(table: pa.Table, path: Path, meta: dict | None = None) -> None:
    """Write a table as CSV or Parquet by extension (and a sidecar)."""
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    else:
        pacsv.write_csv(table, path)
    if meta:
        Path(f"{path}.meta.json").write_text(json.dumps(meta))


def generate(rows: int, dev_rows: int, emb_rows: int) -> dict:
    """Write the synthetic files (skipped when already there for these sizes)."""
    stamp = DATA / "stamp.json"
    wanted = {"rows": rows, "dev_rows": dev_rows, "emb_rows": emb_rows, "seed": SEED, "version": 2}
    if stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return wanted
    DATA.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    for split, n in (("dev", dev_rows), ("eval", rows)):
        ids = pa.array([f"{split}_{i:08d}" for i in range(n)])
        y = rng.choice(len(CLASSES), size=n, p=PRIOR)
        shared = 0.8 * rng.standard_normal((n, len(CLASSES)))
        labels = pa.table({"id": ids, "label": pa.array(np.asarray(CLASSES)[y])})
        pacsv.write_csv(labels, DATA / f"labels_{split}.csv")
        for system, skill in zip(SYSTEMS, (1.6, 1.3, 1.9), strict=True):
            P = posteriors(rng, y, shared, skill)
            table = pa.table([ids, *P.T], names=["id", *CLASSES])
            meta = {"system": system, "classes": CLASSES, "values": "probability"}
            for fmt in FORMATS:
                write(table, DATA / f"{system}_{split}.{fmt}", meta)
    for split, n in (("dev", emb_rows // 5), ("eval", emb_rows)):
        ids = pa.array([f"emb_{split}_{i:08d}" for i in range(n)])
        y = rng.choice(len(CLASSES), size=n, p=PRIOR)
        labels = pa.table({"id": ids, "label": np.asarray(CLASSES)[y]})
        pacsv.write_csv(labels, DATA / f"emb_labels_{split}.csv")
        centres = np.random.default_rng(SEED + 1).standard_normal((len(CLASSES), EMB_DIM))
        for system in SYSTEMS[:2]:
            E = centres[y] * 0.7 + rng.standard_normal((n, EMB_DIM))
            table = pa.table([ids, *E.T], names=["id", *(f"e{i}" for i in range(EMB_DIM))])
            write(table, DATA / f"{system}_{split}.emb.parquet", {"system": system})
    stamp.write_text(json.dumps(wanted))
    return wanted


def paired(repeat: int, first: list[str], second: list[str]) -> list[tuple[float, float]]:
    """Run two commands alternately ``repeat`` times; for each, the fastest wall time (s) and the
    largest peak RSS (MiB). Alternating keeps both under the same machine load."""
    runs: list[list[tuple[float, float]]] = [[], []]
    for _ in range(repeat):
        for j, args in enumerate((first, second)):
            runs[j].append(run(args)[:2])
    return [(min(r[0] for r in rs), max(r[1] for r in rs)) for rs in runs]


def run(args: list[str]) -> tuple[float, float, str]:
    """Run a command; (wall seconds, peak RSS MiB, output). Fails loudly on a non-zero exit.

    Peak RSS comes from ``/usr/bin/time`` where there is one: a child forked from this (large)
    process would otherwise inherit this process's high-water mark in its ``ru_maxrss``.
    """
    report = DATA / "out" / "rss.txt"
    timed = ["/usr/bin/time", "-f", "%M", "-o", str(report), *args] if TIME.exists() else args
    start = time.perf_counter()
    env = {**os.environ, "MIMALLOC_PURGE_DELAY": "0"}
    proc = subprocess.Popen(timed, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    output = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"command failed: {' '.join(args)}\n{output}")
    peak_kib = int(report.read_text().split()[-1]) if TIME.exists() else usage.ru_maxrss
    return wall, peak_kib / 1024, output


def arrow_size(paths: list[Path]) -> float:
    """In-memory (Arrow) size of the inputs, MiB."""
    total = 0
    for path in paths:
        table = pq.read_table(path) if path.suffix == ".parquet" else pacsv.read_csv(path)
        total += table.nbytes
    return total / 2**20


def grid_search_seconds(repeat: int) -> tuple[float, int, list[float]]:
    """In-process interp grid search (macro-F1, step 0.05) on the eval rows: fastest seconds, points,
    weights."""
    from sermm.align import load_aligned
    from sermm.fusion.interp import InterpFuser

    aligned = load_aligned([str(DATA / f"{s}_eval.parquet") for s in SYSTEMS], str(DATA / "labels_eval.csv"))
    y = aligned.y()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fuser = InterpFuser().fit(aligned.tables, y)
        times.append(time.perf_counter() - start)
    return min(times), fuser.grid_size_, list(fuser.weights_)


def main() -> None:
    """Generate data, time every method, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="evaluation rows (apply)")
    parser.add_argument("--dev-rows", type=int, default=100_000, help="development rows (fit)")
    parser.add_argument("--emb-rows", type=int, default=500_000, help="embedding eval rows (lda/plda)")
    parser.add_argument("--methods", default="mean,interp,logreg,vote,lda,plda")
    parser.add_argument("--repeat", type=int, default=3, help="runs per apply timing (the fastest counts)")
    args = parser.parse_args()
    methods = args.methods.split(",")
    t0 = time.perf_counter()
    generate(args.rows, args.dev_rows, args.emb_rows)
    print(f"data: {DATA} ({time.perf_counter() - t0:.1f} s to generate or check)")
    fuse = str(Path(sys.executable).with_name("sermm-fuse"))
    models = DATA / "models"
    models.mkdir(exist_ok=True)
    out = DATA / "out"
    out.mkdir(exist_ok=True)

    seconds, points, weights = grid_search_seconds(args.repeat)
    print(
        f"\ninterp grid search, in process: {args.rows:,} rows x {len(SYSTEMS)} systems x {points} points: "
        f"{seconds:.2f} s (weights {', '.join(f'{w:.2f}' for w in weights)})"
    )

    header = f"{'method':<8} {'fit (dev)':>10} {'format':>8} {'apply':>8} {'floor':>8} {'ratio':>6} "
    header += f"{'peak MiB':>9} {'floor MiB':>9} {'inputs MiB':>10} {'mem ratio':>9}"
    lines = [header, "-" * len(header)]
    results: list[tuple[str, float, float]] = []
    for method in methods:
        embedding = method in ("lda", "plda")
        systems = SYSTEMS[:2] if embedding else SYSTEMS
        suffix = ".emb.parquet" if embedding else ".parquet"
        dev = [str(DATA / f"{s}_dev{suffix}") for s in systems]
        labels = str(DATA / ("emb_labels_dev.csv" if embedding else "labels_dev.csv"))
        model = str(models / f"{method}.json")
        fit_wall, _, _ = run([fuse, method, "--inputs", *dev, "--labels", labels, "--save", model])
        for fmt in ("parquet",) if embedding else FORMATS:
            suffix = ".emb.parquet" if embedding else f".{fmt}"
            inputs = [str(DATA / f"{s}_eval{suffix}") for s in systems]
            floor_args = [sys.executable, "-c", FLOOR, str(out / f"floor.{fmt}"), *inputs]
            apply_args = [fuse, "apply", model, "--inputs", *inputs, "--output", str(out / f"{method}.{fmt}")]
            (floor_wall, floor_rss), (wall, rss) = paired(args.repeat, floor_args, apply_args)
            size = arrow_size([Path(p) for p in inputs])
            ratio, mem_ratio = wall / floor_wall, rss / size
            results.append((f"{method}/{fmt}", ratio, mem_ratio))
            lines.append(
                f"{method:<8} {fit_wall:>9.2f}s {fmt:>8} {wall:>7.2f}s {floor_wall:>7.2f}s {ratio:>6.2f} "
                f"{rss:>9.0f} {floor_rss:>9.0f} {size:>10.0f} {mem_ratio:>9.2f}"
            )
    print(
        f"\napply: {args.rows:,} eval rows x {len(SYSTEMS)} systems x {len(CLASSES)} classes "
        f"(lda/plda: {args.emb_rows:,} rows x 2 x {EMB_DIM}-dim embeddings); "
        f"fit: {args.dev_rows:,} dev rows ({args.emb_rows // 5:,} for lda/plda).\n"
        f"times: fastest of {args.repeat} runs, apply and floor alternating; ratio = apply / floor; "
        "mem ratio = peak RSS / Arrow size of the inputs.\n"
    )
    print("\n".join(lines))
    print(f"\ntargets:\n  interp grid search under 5 s: {'yes' if seconds < 5 else 'NO'} ({seconds:.2f} s)")
    checks = (("apply within 1.5x of the floor", 1, 1.5), ("peak RSS within 3x the inputs", 2, 3.0))
    for what, column, limit in checks:
        over = [f"{r[0]} {r[column]:.2f}x" for r in results if r[column] > limit]
        summary = f"{len(results) - len(over)} of {len(results)}"
        print(f"  {what}: {summary}" + (f" (over: {', '.join(over)})" if over else ""))


if __name__ == "__main__":
    main()
