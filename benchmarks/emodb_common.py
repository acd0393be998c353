"""What the EmoDB benchmarks share: the speaker folds, running sermm's commands, reading posteriors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

BIN = Path(sys.executable).parent


def folds(rows: list[dict]) -> list[tuple[str, str]]:
    """Pairs of one male and one female speaker, in speaker order."""
    sex = {r["speaker"]: r["sex"] for r in rows}
    male = sorted(s for s, x in sex.items() if x == "m")
    female = sorted(s for s, x in sex.items() if x == "f")
    return list(zip(male, female, strict=True))


def sermm(tool: str, *args: object) -> list[str]:
    """The command line of one of this environment's sermm tools."""
    return [str(BIN / tool), *map(str, args)]


def run(cmd: list[str], log: Path) -> str:
    """Run a sermm command (one thread unless OMP_NUM_THREADS says otherwise), its output appended
    to ``log``; its stdout, or a stop with the tail of its stderr on failure."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    with log.open("a") as handle:
        handle.write("$ " + " ".join(cmd) + "\n" + done.stdout + done.stderr)
    if done.returncode:
        raise SystemExit(f"{Path(cmd[0]).name} failed ({done.returncode}):\n" + done.stderr[-3000:])
    return done.stdout


def read_posteriors(path: Path, ids: list[str], classes: list[str]) -> np.ndarray:
    """The ``classes`` columns of a posterior file, rows in ``ids`` order."""
    import pandas as pd

    return pd.read_csv(path).set_index("id").loc[ids][classes].to_numpy()
