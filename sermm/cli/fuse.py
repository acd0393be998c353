"""``sermm-fuse``: combine several systems' score files into one, and apply saved fusion models.

Each fusion method is one :class:`~sermm.cli.common.MethodSpec` in :data:`FUSERS` (its options,
named as the estimator's parameters, and its manual text); the commands are generated from
them. Fitting, cross-validation and writing live in :mod:`sermm.fitting`, applying in
:mod:`sermm.chain`.
"""

from __future__ import annotations

from typing import Any

import click
import numpy as np

from sermm.chain import Chain
from sermm.cli.common import (
    MethodSpec,
    SermmGroup,
    chain_options,
    check_outputs,
    class_weight_option,
    group_column_option,
    inputs_option,
    labels_option,
    method_command,
    number_or_auto,
    on_missing_option,
    quiet_option,
    score_options,
    scores_option,
)
from sermm.errors import SermmError
from sermm.estimator import registered
from sermm.fitting import fit_fusion
from sermm.fusion.interp import METRICS as INTERP_OBJECTIVES
from sermm.progress import set_quiet


@click.group(cls=SermmGroup)
def main() -> None:
    """Fuse the score files of several systems into one better score file.

    Train a fuser on development scores and labels (METHOD is interp, logreg, lda, plda,
    vote or mean), save it, then apply it to the evaluation scores of the same systems.

    \b
    Examples:
      sermm-fuse interp --inputs a_dev.csv t_dev.csv --labels dev_labels.csv \\
          --save interp.json --cv 5 --report fusion.md
      sermm-fuse apply interp.json --inputs a_eval.csv t_eval.csv --output fused_eval.csv
    """


# --------------------------------------------------------------------------- training


def training_options(method: str) -> list:
    """The options a training command shares, as they apply to ``method``: ``mean`` learns
    nothing, so it has no cross-validation options; only the methods with ``--C auto`` say that
    the groups serve it too."""
    options = [
        inputs_option(),
        labels_option(),
        score_options,
        click.option("--save", "-s", type=click.Path(dir_okay=False), help="Write the fitted model (JSON)."),
        click.option(
            "--output",
            "-o",
            type=click.Path(dir_okay=False),
            help="Write the fused development scores (CSV or Parquet by extension) with a sidecar.",
        ),
        click.option(
            "--report", type=click.Path(dir_okay=False), help="Write a Markdown table of the dev metrics."
        ),
    ]
    if method == "mean":
        return [*options, quiet_option]
    also = "; also used by --C auto" if method in ("logreg", "lda") else ""
    return [
        *options,
        click.option(
            "--cv",
            "cv",
            type=int,
            default=None,
            metavar="K",
            help="Also report K-fold cross-validated metrics (stratified; grouped with --groups).",
        ),
        click.option(
            "--groups",
            type=click.Path(dir_okay=False),
            default=None,
            help="id,group file (speaker or session): cross-validate with grouped folds "
            f"(5 unless --cv says otherwise){also}.",
        ),
        group_column_option,
        click.option(
            "--cv-output",
            type=click.Path(dir_okay=False),
            default=None,
            help="Write the out-of-fold fused development scores (needs --cv or --groups).",
        ),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fold shuffle."),
        quiet_option,
    ]


def run_training(fuser: Any, opts: dict[str, Any]) -> None:
    """Fit ``fuser`` on the development inputs, print its metrics, and write what was asked."""
    from sermm.fusion.io import metric_names, metrics_table, write_report

    method = fuser.method
    for name in ("cv", "groups", "cv_output"):
        opts.setdefault(name, None)
    opts.setdefault("seed", 0)
    set_quiet(opts.get("quiet", False))
    fuser.validate_params()  # a bad option value is said before anything is read
    outputs = {"--save": opts["save"], "--output": opts["output"], "--cv-output": opts["cv_output"],
               "--report": opts["report"]}
    check_outputs([*opts["inputs"], opts["labels"], opts["groups"]], outputs)
    if fuser.needs_labels and not opts["labels"]:
        raise SermmError(
            f"{method} {fuser.why_labels}, so it needs the reference labels of the --inputs rows: "
            "pass --labels dev_labels.csv (id,label)"
        )
    cross_validate = opts["cv"] is not None or opts["groups"] is not None
    if cross_validate and not opts["labels"]:
        raise SermmError("--cv/--groups score each fold against the labels: pass --labels dev_labels.csv")
    if opts["cv_output"] and not cross_validate:
        raise SermmError("--cv-output writes out-of-fold scores: pass --cv K or --groups FILE too")
    fit = fit_fusion(
        fuser, opts["inputs"], opts["labels"], scores=opts["scores"], classes=opts["classes"],
        split=opts["split"], on_missing=opts["on_missing"], groups=opts["groups"], cv=opts["cv"],
        seed=opts["seed"],
    )
    if opts["save"]:
        fit.save(opts["save"], class_subset=opts["classes"] is not None)
    if opts["output"]:
        fit.write(opts["output"])
    if opts["cv_output"]:
        fit.write_cv(opts["cv_output"])

    names = metric_names(fuser.output_kind_, fuser.columns_)
    what = "attributes" if fuser.output_kind_ == "attribute" else "classes"
    header = (
        f"{method}: {len(fit.aligned.tables)} systems ({', '.join(fuser.systems_)}), "
        f"{len(fuser.columns_)} {what}, {len(fit.fused):,} dev rows"
    )
    click.echo(header)
    click.echo(fuser.describe())
    if fit.rows:
        click.echo("")
        click.echo(metrics_table(fit.rows, names, markdown=False))
    else:
        click.echo("(no --labels: no dev metrics)")
    written = (("model", opts["save"]), ("output", opts["output"]), ("cv output", opts["cv_output"]))
    for label, path in written:
        if path:
            click.echo(f"{label}: {path}" + (f" (+ {path}.meta.json)" if label != "model" else ""))
    if opts["report"]:
        notes = [
            "Fit-on-all numbers are optimistic: the fuser was fitted on these labels."
            + (" The CV row scores each fold with a fuser that never saw it." if cross_validate else "")
        ]
        table = metrics_table(fit.rows, names, markdown=True) if fit.rows else "(no labels: no metrics)"
        description = [header + ".", fuser.describe() + "."]
        write_report(opts["report"], f"Fusion: {method}", description, table, notes)
        click.echo(f"report: {opts['report']}")


# --------------------------------------------------------------------------- methods

EMBEDDING_OPTIONS = [
    click.option(
        "--norm",
        type=click.Choice(["standard", "length", "none"]),
        default="standard",
        show_default=True,
        help="standard: z-score each dimension; length: centre and scale rows to unit length.",
    ),
    click.option(
        "--lda-dim", type=int, default=15, show_default=True,
        help="LDA output dimension (up to the feature size).",
    ),
]

#: One entry per fusion method: its options (named as the estimator's parameters) and manual.
FUSERS = [
    MethodSpec(
        "interp",
        [
            click.option(
                "--step", type=float, default=0.05, show_default=True,
                help="Grid step of the weights (must divide 1).",
            ),
            click.option(
                "--metric",
                type=click.Choice(INTERP_OBJECTIVES),
                default=None,
                help="Objective: macro-f1 (default for posteriors), "
                + ", ".join(m for m in INTERP_OBJECTIVES if m not in ("macro-f1", "ccc"))
                + "; attribute files always use ccc.",
            ),
            click.option(
                "--domain",
                type=click.Choice(["linear", "log"]),
                default="linear",
                show_default=True,
                help="linear: weighted mean of posteriors; log: normalised weighted geometric mean.",
            ),
        ],
        """Weighted mean of the systems' posteriors, weights by grid search on dev.

    Every weight vector on the simplex with the given step is scored (21 points for two
    systems, 231 for three, 1771 for four at step 0.05); the best dev macro-F1 wins, and ties
    go to the most even weights. For attribute files (id,arousal,valence,dominance) each
    attribute gets its own weights, chosen by CCC.

    \b
    Example:
      sermm-fuse interp --inputs words_dev.csv chars_dev.csv nb_dev.csv \\
          --labels labels_dev.csv --save interp.json --output fused_dev.csv --cv 5
    """,
    ),
    MethodSpec(
        "logreg",
        [
            click.option("--C", "C", default="1.0", show_default=True, callback=number_or_auto,
                         help="Inverse L2 strength, or 'auto' (chosen by CV)."),
            class_weight_option("balanced: weight each class inversely to its dev frequency."),
            click.option("--tied", is_flag=True,
                         help="FoCal-style: one weight per system plus one bias per class "
                         "(hardly overfits)."),
        ],
        """Multinomial logistic regression on the systems' concatenated log-posteriors.

    L2-regularised, fitted by L-BFGS in numpy (scikit-learn's model and objective, which the
    tests check against it). --C auto picks C from 1e-3..1e3 by 5-fold (grouped with --groups)
    cross-validated cross-entropy, warm-starting along the C path; a progress bar on stderr
    shows each fold and C (-q hides it). The prior of the dev labels is recorded in the model
    and in the output's sidecar (train_prior) so that sermm-calibrate prior can rebalance it.

    \b
    Example:
      sermm-fuse logreg --inputs a.csv t.csv --labels dev_labels.csv --save logreg.json
      sermm-fuse logreg --inputs a.csv t.csv --labels dev_labels.csv --tied --C auto
    """,
    ),
    MethodSpec(
        "lda",
        [
            *EMBEDDING_OPTIONS,
            click.option("--C", "C", default="1.0", show_default=True, callback=number_or_auto,
                         help="Inverse L2 strength, or 'auto'."),
            class_weight_option(None),
        ],
        """LDA on the systems' concatenated embeddings, then logistic regression.

    Inputs are embedding files (id,e0..eN), aligned by id and concatenated.

    \b
    Example:
      sermm-fuse lda --inputs words_dev.emb.parquet chars_dev.emb.parquet \\
          --labels labels_dev.csv --lda-dim 15 --save lda.json
    """,
    ),
    MethodSpec(
        "plda",
        [
            *EMBEDDING_OPTIONS,
            click.option("--prior", default="uniform", show_default=True,
                         help="Prior that turns PLDA likelihoods into posteriors: uniform, train, "
                         "or class=p,..."),
        ],
        """LDA on the systems' concatenated embeddings, then a two-covariance PLDA.

    Each class is scored by the posterior-predictive likelihood of its mean given its dev
    examples, N(m_c, W + S_c); the likelihoods do not depend on the dev class frequencies,
    and --prior turns them into posteriors.

    \b
    Example:
      sermm-fuse plda --inputs words_dev.emb.parquet chars_dev.emb.parquet \\
          --labels labels_dev.csv --save plda.json --cv 5
    """,
    ),
    MethodSpec(
        "vote",
        [click.option("--tie-break", default=None, metavar="SYSTEM", help="System whose vote wins ties.")],
        """Hard majority vote of the systems' argmax decisions (labels optional).

    A tie goes to the --tie-break system (default: best dev macro-F1 with --labels, else the
    first input). An input may be a decision file (id,label), e.g. what sermm-calibrate
    apply writes after per-class thresholds: its decision is its vote. The output holds the
    vote shares; on tied rows the winner's share is raised by 1e-6 so that the argmax of
    the file is the vote decision.

    \b
    Examples:
      sermm-fuse vote --inputs a.csv t.csv n.csv --labels dev_labels.csv --output voted.csv
      sermm-fuse vote --inputs a_decisions.csv t_decisions.csv n_decisions.csv --tie-break a \\
          --output voted.csv
    """,
    ),
    MethodSpec(
        "mean",
        [],
        """Plain average of the systems' posteriors or attributes: the baseline (labels optional).

    \b
    Example:
      sermm-fuse mean --inputs a.csv t.csv --labels dev_labels.csv --report mean.md
    """,
    ),
]


def _add_fusion_command(spec: MethodSpec) -> None:
    def command(**opts: Any) -> None:
        params = {name: opts.pop(name) for name in spec.params}
        run_training(registered("fusion")[spec.method](**params), opts)

    main.add_command(method_command(spec, training_options(spec.method), command))


for _spec in FUSERS:
    _add_fusion_command(_spec)


# --------------------------------------------------------------------------- compare


@main.command("compare")
@inputs_option()
@labels_option(required=True,
               help="Dev labels (id,label, or MSP-Podcast's labels_consensus.csv with --split).")
@score_options
@click.option("--groups", type=click.Path(dir_okay=False), default=None,
              help="id,group file (speaker or session): every fold, outer and inner, splits by group.")
@click.option("--metric", type=click.Choice(["macro-f1", "ua", "ce"]), default="macro-f1", show_default=True,
              help="What picks the best recipe: macro-F1 or UA of the decisions, or cross-entropy "
              "of the posteriors (then thresholds, which change only decisions, are not candidates).")
@click.option("--cv", "cv", type=click.IntRange(2), default=5, show_default=True, metavar="K",
              help="Outer folds: every row of the table is scored out of fold.")
@click.option("--inner-cv", type=click.IntRange(2), default=3, show_default=True, metavar="K",
              help="Inner folds of the nested choice (on each outer training part).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the folds and the bootstrap.")
@click.option("--n-boot", type=click.IntRange(10), default=1000, show_default=True,
              help="Bootstrap resamples of the intervals.")
@click.option("--save", "-s", type=click.Path(dir_okay=False), default=None,
              help="Save the best recipe, refitted on all dev rows, as one chain model file.")
@click.option("--report", type=click.Path(dir_okay=False), default=None,
              help="Also write the table as Markdown.")
@quiet_option
def compare_command(inputs: list[str], labels: str, split: str | None, classes: str | None, scores: str,
                    on_missing: str, groups: str | None, metric: str, cv: int, inner_cv: int, seed: int,
                    n_boot: int, save: str | None, report: str | None, quiet: bool) -> None:
    """Compare every fusion recipe under one cross-validation; save the best as one model.

    Every fuser that takes posterior files (interp, mean, logreg, vote; default options)
    is run alone, chained with prior --uniform (rebalance to a uniform prior, as for a
    balanced test set) and chained with per-class thresholds, under the same (grouped)
    K-fold cross-validation. The table gives each recipe's out-of-fold macro-F1, UA and
    cross-entropy, a bootstrap interval of --metric, each single system for reference, and
    marks the best with *. The best row is optimistic (it won after seeing every fold); the
    nested row repeats the choice inside each outer training fold and is the honest estimate
    of the recipe you will use. --save writes the best recipe refitted on all rows, as one
    chain model for sermm-fuse apply.

    \b
    Example:
      sermm-fuse compare --inputs a_dev.csv t_dev.csv \\
          --labels labels_consensus.csv --split Development --groups groups.csv --save best.json
      sermm-fuse apply best.json --inputs a_test.csv t_test.csv --output final.csv
    """
    from sermm.align import load_aligned
    from sermm.atomic import write_text
    from sermm.compare import compare
    from sermm.fusion.io import read_groups

    set_quiet(quiet)
    check_outputs([*inputs, labels, groups], {"--save": save, "--report": report})
    aligned = load_aligned(inputs, labels, scores=scores, classes=classes, split=split,  # type: ignore[arg-type]
                           on_missing=on_missing)  # type: ignore[arg-type]
    if aligned.tables[0].kind != "posterior":
        raise SermmError(f"compare fuses posterior files, but {inputs[0]} holds {aligned.tables[0].kind}s")
    group_ids = read_groups(groups, aligned.ids) if groups else None
    result = compare(aligned.tables, aligned.y(), groups=group_ids, metric=metric, cv=cv, inner=inner_cv,
                     seed=seed, n_boot=n_boot)
    click.echo(f"compare: {len(inputs)} systems ({', '.join(aligned.systems)}), "
               f"{len(aligned.columns)} classes, {len(aligned.ids):,} dev rows")
    click.echo("")
    click.echo(result.table(), nl=False)
    if save:
        result.save(save)
        click.echo(f"best recipe ({result.best.name}) refitted on all rows: {save}")
    if report:
        write_text(report, f"# Fusion recipes compared\n\n{result.table(markdown=True)}")
        click.echo(f"report: {report}")


# --------------------------------------------------------------------------- apply


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@inputs_option(required=False, help="The systems' score files (CSV or Parquet), in any order: matched to the "
               "model's systems by sidecar system name, else by file name (split words such as _dev, "
               "_test left off); refused when neither tells (then use --systems).")
@click.option(
    "--systems",
    "systems",
    multiple=True,
    metavar="NAME=FILE",
    help="Say which file is which of the model's systems (instead of --inputs), e.g. "
    "--systems words=w_eval.csv chars=c_eval.csv.",
)
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(dir_okay=False),
    help="Fused scores (CSV or Parquet by extension); a decision file id,label if --then ends in one.",
)
@click.option(
    "--then",
    "then",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Calibration model(s) to apply after fusion, in order (repeatable).",
)
@labels_option(help="Optional labels: print the metrics of the fused output.")
@scores_option
@on_missing_option
@chain_options
def apply(
    model: str,
    inputs: list[str],
    systems: tuple[str, ...],
    output: str,
    then: tuple[str, ...],
    labels: str | None,
    split: str | None,
    scores: str,
    on_missing: str,
    save_chain: str | None,
) -> None:
    """Apply a saved fusion model to the evaluation scores of the same systems.

    The inputs are matched to the model's systems by sidecar system name, else by file name
    (words_eval.csv is system words), never silently by position: when neither tells, apply
    refuses and --systems NAME=FILE says it. The inputs must have the model's classes.
    --then runs calibration models on the fused posteriors; the
    output and its sidecar are the same as those of sermm-fuse apply followed by
    sermm-calibrate apply. MODEL may also be a chain file (--save-chain).

    \b
    Example:
      sermm-fuse apply logreg.json --inputs a_eval.csv t_eval.csv --output fused_eval.csv
      sermm-fuse apply logreg.json --systems a=audio.csv t=text.csv --output fused_eval.csv
      sermm-fuse apply logreg.json --inputs a_eval.csv t_eval.csv \\
          --then prior.json --output final_eval.csv --save-chain final.json
    """
    from sermm.fusion.io import parse_systems

    if bool(inputs) == bool(systems):
        raise SermmError("apply: give the score files with --inputs FILE ... or with --systems NAME=FILE ..."
                         + (", not both" if inputs else ""))
    by_name = parse_systems(systems) if systems else None
    if by_name is not None:
        inputs = list(by_name.values())
    check_outputs([model, *inputs, *then, labels], {"--output": output, "--save-chain": save_chain})
    chain = Chain.load([model, *then], first="fusion")
    fuser = chain.fuser
    aligned = chain.read(inputs, scores=scores, on_missing=on_missing, systems=by_name)
    inputs = [t.path for t in aligned.tables]
    out = chain.apply(aligned.tables, inputs)
    rows = None
    if labels:
        from sermm.align import labelled_rows

        rows, label_table = labelled_rows(out.table, labels, split=split, on_missing=on_missing)
    out.write(output)
    if save_chain:
        chain.save(save_chain)
    click.echo(
        f"{fuser.method} ({model}): {len(inputs)} systems, {len(out.table):,} rows -> {output}"
        + (f" (then {', '.join(then)})" if then else "")
        + (f" (+ {output}.meta.json)" if out.decisions is None else " (decisions id,label)")
    )
    if rows is not None:
        from sermm.fusion.base import evaluate
        from sermm.fusion.io import metric_names, metrics_table

        if fuser.output_kind_ == "attribute":
            target = label_table.require_attributes(fuser.columns_)
        else:
            target = label_table.indices(fuser.columns_)
        values = out.table.values if out.decisions is None else np.eye(len(fuser.columns_))[out.decisions]
        scored = [(f"fusion-{fuser.method}", evaluate(values[rows], target, fuser.output_kind_))]
        click.echo(metrics_table(scored, metric_names(fuser.output_kind_, fuser.columns_), markdown=False))
    if save_chain:
        click.echo(f"chain model: {save_chain}")
