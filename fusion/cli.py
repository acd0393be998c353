"""``sermm-fuse``: combine several systems' score files into one, and apply saved fusion models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
import numpy as np

from sermm.align import load_aligned
from sermm.cli.common import (
    SermmGroup,
    check_outputs,
    inputs_option,
    labels_option,
    on_missing_option,
    score_options,
    scores_option,
)
from sermm.errors import SermmError
from sermm.fusion.base import Fuser, evaluate, fuser_from_dict
from sermm.fusion.interp import DOMAINS, METRICS, InterpFuser, MeanFuser
from sermm.fusion.io import (
    load_for_model,
    metric_names,
    metrics_table,
    output_sidecar,
    read_groups,
    write_fused,
    write_report,
)
from sermm.fusion.lda_plda import NORMS, LDAFuser, PLDAFuser
from sermm.fusion.logreg import LogRegFuser, parse_C
from sermm.fusion.vote import VoteFuser
from sermm.modelfile import load_model, save_model
from sermm.tables import parse_classes, write_decisions


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


def training_options(func: Callable) -> Callable:
    """Options every training command shares: inputs, labels, outputs, cross-validation."""
    for decorator in reversed(
        [
            inputs_option(),
            labels_option(),
            score_options,
            click.option("--save", type=click.Path(dir_okay=False), help="Write the fitted model (JSON)."),
            click.option(
                "--output",
                "-o",
                type=click.Path(dir_okay=False),
                help="Write the fused development scores (CSV or Parquet by extension) with a sidecar.",
            ),
            click.option(
                "--report", type=click.Path(dir_okay=False), help="Write a Markdown table of the dev metrics."
            ),
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
                "(5 unless --cv says otherwise); also used by --C auto.",
            ),
            click.option(
                "--cv-output",
                type=click.Path(dir_okay=False),
                default=None,
                help="Write the out-of-fold fused development scores (needs --cv or --groups).",
            ),
            click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fold shuffle."),
        ]
    ):
        func = decorator(func)
    return func


def run_training(fuser: Fuser, opts: dict[str, Any]) -> None:
    """Fit ``fuser`` on the development inputs, report its metrics, and write what was asked."""
    from sermm.fusion.cv import cross_val_fuse, make_folds

    method = fuser.method
    check_outputs(
        [*opts["inputs"], opts["labels"], opts["groups"]],
        {
            "--save": opts["save"],
            "--output": opts["output"],
            "--cv-output": opts["cv_output"],
            "--report": opts["report"],
        },
    )
    if fuser.needs_labels and not opts["labels"]:
        raise SermmError(f"{method} {fuser.why_labels}")
    cross_validate = opts["cv"] is not None or opts["groups"] is not None
    if cross_validate and not opts["labels"]:
        raise SermmError("--cv/--groups score each fold against the labels: pass --labels dev_labels.csv")
    if opts["cv_output"] and not cross_validate:
        raise SermmError("--cv-output writes out-of-fold scores: pass --cv K or --groups FILE too")
    aligned = load_aligned(
        opts["inputs"],
        opts["labels"],
        scores=opts["scores"],
        classes=opts["classes"],
        split=opts["split"],
        on_missing=opts["on_missing"],
    )
    tables = aligned.tables
    kind = tables[0].kind
    if kind not in fuser.kinds:
        raise SermmError(
            f"{method} fuses {' or '.join(fuser.kinds)} files, but {tables[0].path} holds {kind}s"
        )
    y = None
    if aligned.labels is not None:
        if kind == "attribute":
            y = aligned.labels.require_attributes(aligned.columns)
        elif kind == "embedding":
            labels = aligned.labels.require_categorical()
            classes = parse_classes(opts["classes"]) or [str(c) for c in np.unique(labels.astype(str))]
            fuser.set_params(classes=",".join(classes))
            y = labels
        else:
            y = aligned.y()
    groups = read_groups(opts["groups"], aligned.ids) if opts["groups"] else None
    fuser.fit(tables, y, groups)
    fused = fuser.fuse(tables)
    n = len(aligned.tables[0])

    names = metric_names(fuser.output_kind_, fuser.columns_)
    rows: list[tuple[str, dict]] = []
    dev_metrics: dict[str, Any] = {"rows": n}
    target = fuser.encode_labels(y, n)
    oof = None
    if target is not None:
        if kind != "embedding":
            dev_metrics["inputs"] = {t.system: evaluate(t.values, target, fuser.output_kind_) for t in tables}
            rows += list(dev_metrics["inputs"].items())
        dev_metrics["fit"] = evaluate(fused, target, fuser.output_kind_)
        rows.append((f"fusion-{method} (fit on all dev)", dev_metrics["fit"]))
        if cross_validate:
            k = opts["cv"] if opts["cv"] is not None else 5
            folds = make_folds(
                target if fuser.output_kind_ != "attribute" else None,
                n_splits=k,
                groups=groups,
                seed=opts["seed"],
                n=n,
            )
            oof = cross_val_fuse(fuser, tables, y, folds, groups=groups)
            dev_metrics["cv"] = {
                "folds": k,
                "grouped": groups is not None,
                **evaluate(oof, target, fuser.output_kind_),
            }
            how = f"{k}-fold {'grouped ' if groups is not None else ''}CV"
            rows.append((f"fusion-{method} ({how})", dev_metrics["cv"]))
    fuser.dev_metrics_ = dev_metrics

    if opts["save"]:
        body = fuser.to_dict()
        body["class_subset"] = opts["classes"] is not None and kind == "posterior"
        body["inputs"] = list(opts["inputs"])
        save_model(opts["save"], "fusion", body)
    prior = None
    if fuser.output_kind_ == "posterior" and fuser.train_prior_ is not None:
        prior = {c: float(p) for c, p in zip(fuser.columns_, fuser.train_prior_, strict=True)}
    for path, values, extra in (
        (opts["output"], fused, {}),
        (opts["cv_output"], oof, {"cross_validated": True}),
    ):
        if path:
            sidecar = output_sidecar(
                method,
                fuser.columns_,
                fuser.output_kind_,
                inputs=opts["inputs"],
                model=opts["save"],
                train_prior=prior,
                extra=extra,
            )
            write_fused(aligned.id_column, values, fuser.columns_, fuser.output_kind_, path, sidecar)

    what = "attributes" if fuser.output_kind_ == "attribute" else "classes"
    header = (
        f"{method}: {len(tables)} systems ({', '.join(fuser.systems_)}), "
        f"{len(fuser.columns_)} {what}, {n:,} dev rows"
    )
    click.echo(header)
    click.echo(fuser.describe())
    if rows:
        click.echo("")
        click.echo(metrics_table(rows, names, markdown=False))
    else:
        click.echo("(no --labels: no dev metrics)")
    written = (("model", opts["save"]), ("output", opts["output"]), ("cv output", opts["cv_output"]))
    for label, path in written:
        if path:
            click.echo(f"{label}: {path}")
    if opts["report"]:
        notes = [
            "Fit-on-all numbers are optimistic: the fuser was fitted on these labels."
            + (" The CV row scores each fold with a fuser that never saw it." if cross_validate else "")
        ]
        table = metrics_table(rows, names, markdown=True) if rows else "(no labels: no metrics)"
        description = [header + ".", fuser.describe() + "."]
        write_report(opts["report"], f"Fusion: {method}", description, table, notes)
        click.echo(f"report: {opts['report']}")


# --------------------------------------------------------------------------- methods


@main.command()
@training_options
@click.option(
    "--step", type=float, default=0.05, show_default=True, help="Grid step of the weights (must divide 1)."
)
@click.option(
    "--metric",
    type=click.Choice(METRICS),
    default=None,
    help="Objective: macro-f1 (default for posteriors), ua, accuracy, cross-entropy; "
    "attribute files always use ccc.",
)
@click.option(
    "--domain",
    type=click.Choice(DOMAINS),
    default="linear",
    show_default=True,
    help="linear: weighted mean of posteriors; log: normalised weighted geometric mean.",
)
def interp(step: float, metric: str | None, domain: str, **opts: Any) -> None:
    """Weighted mean of the systems' posteriors, weights by grid search on dev.

    Every weight vector on the simplex with the given step is scored (21 points for two
    systems, 231 for three, 1771 for four at step 0.05); the best dev macro-F1 wins, and ties
    go to the most even weights. For attribute files (id,arousal,valence,dominance) each
    attribute gets its own weights, chosen by CCC.

    \b
    Example:
      sermm-fuse interp --inputs words_dev.csv chars_dev.csv nb_dev.csv \\
          --labels labels_dev.csv --save interp.json --output fused_dev.csv --cv 5
    """
    run_training(InterpFuser(step=step, metric=metric, domain=domain), opts)


@main.command()
@training_options
@click.option(
    "--C", "C", default="1.0", show_default=True, help="Inverse L2 strength, or 'auto' (chosen by CV)."
)
@click.option(
    "--class-weight",
    type=click.Choice(["none", "balanced"]),
    default="none",
    show_default=True,
    help="balanced: weight each class inversely to its dev frequency.",
)
@click.option(
    "--tied",
    is_flag=True,
    help="FoCal-style: one weight per system plus one bias per class (hardly overfits).",
)
def logreg(C: str, class_weight: str, tied: bool, **opts: Any) -> None:
    """Multinomial logistic regression on the systems' concatenated log-posteriors.

    L2-regularised (scikit-learn, lbfgs). --C auto picks C from 1e-3..1e3 by (grouped)
    cross-validated cross-entropy. The prior of the dev labels is recorded in the model and
    in the output's sidecar (train_prior) so that sermm-calibrate prior can rebalance it.

    \b
    Example:
      sermm-fuse logreg --inputs a.csv t.csv --labels dev_labels.csv --save logreg.json
      sermm-fuse logreg --inputs a.csv t.csv --labels dev_labels.csv --tied --C auto
    """
    fuser = LogRegFuser(
        C=parse_C(C), class_weight=None if class_weight == "none" else class_weight, tied=tied
    )
    run_training(fuser, opts)


def embedding_options(func: Callable) -> Callable:
    """Normalisation and LDA options of lda and plda."""
    func = click.option(
        "--lda-dim",
        type=int,
        default=15,
        show_default=True,
        help="LDA output dimension (up to the feature size).",
    )(func)
    return click.option(
        "--norm",
        type=click.Choice(NORMS),
        default="standard",
        show_default=True,
        help="standard: z-score each dimension; length: centre and scale rows to unit length.",
    )(func)


@main.command()
@training_options
@embedding_options
@click.option("--C", "C", default="1.0", show_default=True, help="Inverse L2 strength, or 'auto'.")
@click.option("--class-weight", type=click.Choice(["none", "balanced"]), default="none", show_default=True)
def lda(norm: str, lda_dim: int, C: str, class_weight: str, **opts: Any) -> None:
    """LDA on the systems' concatenated embeddings, then logistic regression.

    Inputs are embedding files (id,e0..eN), aligned by id and concatenated.

    \b
    Example:
      sermm-fuse lda --inputs words_dev.emb.parquet chars_dev.emb.parquet \\
          --labels labels_dev.csv --lda-dim 15 --save lda.json
    """
    weighting = None if class_weight == "none" else class_weight
    fuser = LDAFuser(norm=norm, lda_dim=lda_dim, C=parse_C(C), class_weight=weighting)
    run_training(fuser, opts)


@main.command()
@training_options
@embedding_options
@click.option(
    "--prior",
    default="uniform",
    show_default=True,
    help="Prior that turns PLDA likelihoods into posteriors: uniform, train, or class=p,...",
)
def plda(norm: str, lda_dim: int, prior: str, **opts: Any) -> None:
    """LDA on the systems' concatenated embeddings, then a two-covariance PLDA.

    Each class is scored by the posterior-predictive likelihood of its mean given its dev
    examples, N(m_c, W + S_c); the likelihoods do not depend on the dev class frequencies,
    and --prior turns them into posteriors.

    \b
    Example:
      sermm-fuse plda --inputs words_dev.emb.parquet chars_dev.emb.parquet \\
          --labels labels_dev.csv --save plda.json --cv 5
    """
    run_training(PLDAFuser(norm=norm, lda_dim=lda_dim, prior=prior), opts)


@main.command()
@training_options
@click.option("--tie-break", default=None, metavar="SYSTEM", help="System whose vote wins ties.")
def vote(tie_break: str | None, **opts: Any) -> None:
    """Hard majority vote of the systems' argmax decisions (labels optional).

    A tie goes to the --tie-break system (default: best dev macro-F1 with --labels, else the
    first input). The output holds the vote shares; on tied rows the winner's share is
    raised by 1e-6 so that the argmax of the file is the vote decision.

    \b
    Example:
      sermm-fuse vote --inputs a.csv t.csv n.csv --labels dev_labels.csv --output voted.csv
    """
    run_training(VoteFuser(tie_break=tie_break), opts)


@main.command()
@training_options
def mean(**opts: Any) -> None:
    """Plain average of the systems' posteriors or attributes: the baseline (labels optional).

    \b
    Example:
      sermm-fuse mean --inputs a.csv t.csv --labels dev_labels.csv --report mean.md
    """
    run_training(MeanFuser(), opts)


# --------------------------------------------------------------------------- apply


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@inputs_option()
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
def apply(
    model: str,
    inputs: list[str],
    output: str,
    then: tuple[str, ...],
    labels: str | None,
    split: str | None,
    scores: str,
    on_missing: str,
) -> None:
    """Apply a saved fusion model to the evaluation scores of the same systems.

    The inputs are matched to the model's systems by sidecar system name (else by order) and
    must have its classes. --then runs calibration models on the fused posteriors.

    \b
    Example:
      sermm-fuse apply logreg.json --inputs a_eval.csv t_eval.csv --output fused_eval.csv
      sermm-fuse apply logreg.json --inputs a_eval.csv t_eval.csv \\
          --then prior.json --output final_eval.csv
    """
    check_outputs([model, *inputs, *then, labels], {"--output": output})
    doc = load_model(model, "fusion")
    fuser = fuser_from_dict(doc, source=model)
    chain = []
    if then:
        from sermm.calibration.base import calibrator_from_dict

        if fuser.output_kind_ != "posterior":
            raise SermmError("--then calibrates class posteriors; attribute fusion has none")
        chain = [(p, calibrator_from_dict(load_model(p, "calibration"), source=p)) for p in then]
    aligned = load_for_model(
        list(inputs), doc, model, scores=scores, labels=labels, split=split, on_missing=on_missing
    )
    fused = fuser.fuse(aligned.tables)
    decisions = None
    if chain:
        from sermm.calibration.base import apply_chain

        fused, decisions = apply_chain(fused, fuser.columns_, chain)
    if decisions is not None:
        write_decisions(aligned.id_column, np.asarray(fuser.columns_, dtype=object)[decisions], output)
    else:
        prior = None if chain else doc.get("train_prior")
        sidecar = output_sidecar(
            fuser.method,
            fuser.columns_,
            fuser.output_kind_,
            inputs=list(inputs),
            model=model,
            train_prior=prior,
            extra={"calibration": list(then)} if then else None,
        )
        write_fused(aligned.id_column, fused, fuser.columns_, fuser.output_kind_, output, sidecar)
    click.echo(
        f"{fuser.method} ({model}): {len(inputs)} systems, {len(aligned.tables[0]):,} rows -> {output}"
        + (f" (then {', '.join(then)})" if then else "")
    )
    if aligned.labels is not None:
        target = _eval_target(fuser, aligned)
        values = fused if decisions is None else np.eye(len(fuser.columns_))[decisions]
        rows = [(f"fusion-{fuser.method}", evaluate(values, target, fuser.output_kind_))]
        click.echo(metrics_table(rows, metric_names(fuser.output_kind_, fuser.columns_), markdown=False))


def _eval_target(fuser: Fuser, aligned: Any) -> np.ndarray:
    """Labels of the applied rows, encoded for the fuser's output."""
    if fuser.output_kind_ == "attribute":
        return aligned.labels.require_attributes(fuser.columns_)
    return aligned.labels.indices(fuser.columns_)
