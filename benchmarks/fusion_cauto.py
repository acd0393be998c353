"""Time ``sermm-fuse logreg --C auto`` on the shipped GoEmotions dev set (4,946 rows x 3 systems).

--C auto fits 7 values of C in each of 5 inner folds (35 fits, warm-started along the C path)
and then the chosen C on all rows; ``--cv 5`` repeats all of that inside each of 5 outer folds.
Each run goes through the command line, as a user runs it; the script prints the wall time and
the CPU time of the child process (on a shared machine the wall time also counts the others'
work, the CPU time does not), the fastest of ``--repeats`` runs::

    .venv/bin/python benchmarks/fusion_cauto.py [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GO = ROOT / "examples" / "goemotions"


def run(extra: list[str]) -> tuple[float, float, str]:
    """(wall s, child CPU s, the command's last line)."""
    fuse = Path(sys.executable).with_name("sermm-fuse")
    command = [
        str(fuse),
        "logreg",
        "--inputs",
        *(str(GO / f"{s}_dev.csv") for s in ("words", "chars", "nb")),
        "--labels",
        str(GO / "labels_dev.csv"),
        "--C",
        "auto",
        "-q",
        *extra,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    chosen = next(line for line in done.stdout.splitlines() if "C=" in line)
    return wall, cpu, chosen.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print(f"{'run':<26} {'wall (s)':>9} {'CPU (s)':>9}  model")
    for label, extra in (("--C auto", []), ("--C auto --cv 5", ["--cv", "5"])):
        times = [run(extra) for _ in range(args.repeats)]
        wall, cpu, chosen = min(times)
        print(f"{label:<26} {wall:9.2f} {cpu:9.2f}  {chosen}")


if __name__ == "__main__":
    main()
