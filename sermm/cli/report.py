"""``sermm-report``: score systems against labels; Markdown on stdout, JSON, Markdown file, plots."""

from __future__ import annotations

import click

from sermm.atomic import write_json, write_text
from sermm.cli.common import SermmCommand, check_outputs, labels_option, score_options
from sermm.report import build_report, load_report_data, render_markdown


@click.command(cls=SermmCommand)
@click.option(
    "--input",
    "--inputs",
    "-i",
    "inputs",
    required=True,
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Files to score: posterior files (id + one column per class), decision files "
    "(id,label) and/or attribute files (id,arousal,valence,dominance). Several may follow "
    "one flag.",
)
@labels_option(required=True)
@score_options
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write every number here (all CIs, per-class scores, confusion matrices).",
)
@click.option(
    "--report",
    "--markdown",
    "markdown_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the Markdown report to this file.",
)
@click.option(
    "--plots",
    "plots_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Directory for PNG figures: confusion_<system>.png, reliability_<system>.png (posterior "
    "inputs), attributes_<system>.png (attribute inputs). Created if needed.",
)
@click.option(
    "--n-boot",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Bootstrap resamples for the confidence intervals and paired comparisons.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap resamples.")
def main(
    inputs: tuple[str, ...],
    labels: str,
    split: str | None,
    classes: str | None,
    scores: str,
    on_missing: str,
    json_path: str | None,
    markdown_path: str | None,
    plots_dir: str | None,
    n_boot: int,
    seed: int,
) -> None:
    """Score one or more systems against a label file and print a Markdown report.

    Categorical inputs (posterior and decision files) get macro-F1, UA, WA, micro-F1 and
    weighted-F1 with 95% bootstrap confidence intervals, F1 per class and the confusion
    matrix; posterior files also get cross-entropy, normalised cross-entropy, ECE (15 bins),
    Brier score and expected 0-1 cost. Attribute files get the CCC per attribute and its
    mean, with intervals. With several inputs, each one is compared with the best of the
    others by a paired bootstrap (macro-F1, or mean CCC): Δ, its interval and a one-sided
    p-value say whether, e.g., a fusion really beats the best single system.

    Rows are matched by id, never by position. The report goes to stdout; --json,
    --report (the Markdown, also --markdown) and --plots write files, each whole or not at
    all, and each named on stderr.

    \b
    Examples:
      sermm-report --input examples/goemotions/words_dev.csv examples/goemotions/chars_dev.csv \\
          --labels examples/goemotions/labels_dev.csv --json report.json --plots plots/
      sermm-report --input fused_dev.csv decisions_dev.csv --labels labels_consensus.csv \\
          --split Development --classes angry,sad,happy,surprise,fear,disgust,contempt,neutral
      sermm-report --input examples/emobank/ridge_words_dev.csv \\
          --labels examples/emobank/labels_dev.csv --n-boot 200 --report report.md
    """
    outputs = {"--json": json_path, "--report": markdown_path}
    check_outputs([*inputs, labels], outputs, {"--plots": plots_dir})
    data = load_report_data(
        list(inputs), labels, scores=scores, classes=classes, split=split, on_missing=on_missing
    )
    report = build_report(data, n_boot=n_boot, seed=seed)
    markdown = render_markdown(report)
    written = []
    if plots_dir is not None:
        from sermm.plots import write_report_plots

        written += [str(p) for p in write_report_plots(data, plots_dir)]
    if json_path is not None:
        write_json(json_path, report)
        written.append(json_path)
    if markdown_path is not None:
        write_text(markdown_path, markdown)
        written.append(markdown_path)
    click.echo(markdown, nl=False)
    for path in written:  # on stderr: stdout is the Markdown report itself
        click.echo(f"wrote {path}", err=True)
