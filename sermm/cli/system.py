"""``sermm-system``: train the audio, text and multimodal (DMHA) systems and score manifests with them."""

from __future__ import annotations

import click

from sermm.cli.common import SermmGroup
from sermm.cli.system_audio import audio
from sermm.cli.system_dmha import dmha
from sermm.cli.system_mixup import mixup
from sermm.cli.system_text import text
from sermm.cli.system_w2v2 import w2v2


@click.group(cls=SermmGroup)
def main() -> None:
    """Train emotion recognition systems and write their score files.

    Each system kind is a command group with `train` (manifests in, a run directory out) and
    `predict` (a run directory and a manifest in, a posterior or attribute file with its
    .meta.json sidecar out, ready for sermm-fuse and sermm-calibrate). Training runs on one CPU,
    one GPU or many under `accelerate launch` with the same command. See docs/systems.md.
    """


main.add_command(audio)
main.add_command(text)
main.add_command(dmha)
main.add_command(mixup)
main.add_command(w2v2)
