"""The README's typical session runs as written: every ``$`` command of its console blocks, in
order, on a fake MSP-Podcast ``labels_consensus.csv`` and posterior files named as it names them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
from msp_fake import NAMINGS, dev_ids, eval_ids, posteriors, write_labels, write_posteriors

README = Path(__file__).resolve().parents[1] / "README.md"


def session_commands() -> list[str]:
    """The ``$`` commands of the console blocks between the session's intro and the next section."""
    text = README.read_text()
    start = text.index("A typical Odyssey-2024-style session")
    section = text[start : text.index("\n## ", start)]
    blocks = re.findall(r"```console\n(.*?)```", section, flags=re.S)
    joined = [b.replace("\\\n", " ") for b in blocks]
    return [line[2:] for block in joined for line in block.splitlines() if line.startswith("$ ")]


def test_the_readme_session_runs_as_written(tmp_path):
    write_labels(tmp_path)
    for system, seed in (("a", 1), ("t", 2)):
        write_posteriors(
            tmp_path / f"{system}_dev.csv", posteriors(seed, dev_ids()), dev_ids(), NAMINGS["baseline"]
        )
        write_posteriors(
            tmp_path / f"{system}_test.csv",
            posteriors(seed + 10, eval_ids()),
            eval_ids(),
            NAMINGS["baseline"],
        )
    commands = session_commands()
    assert len(commands) >= 7 and any(c.startswith("sermm-fuse compare") for c in commands)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for command in commands:
        done = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{command}\n{done.stderr}"
    submission = pd.read_csv(tmp_path / "submission.csv")
    assert list(submission.columns) == ["FileName", "EmoClass"]
    assert sorted(submission["FileName"]) == sorted(eval_ids())
    assert set(submission["EmoClass"]) <= set("ASHUFDCN")
    assert (tmp_path / "best.json").exists() and (tmp_path / "compare.md").exists()
