"""``sermm-calibrate``: fit, save and apply calibrators on posterior files.

Each calibration method is one :class:`~sermm.cli.common.MethodSpec` in :data:`CALIBRATORS`
(its options, its manual, and how its options make the calibrator); the commands are generated
from them. Reading and fitting live in :mod:`sermm.fitting`, the training prior in
:mod:`sermm.priors`, applying and writing in :mod:`sermm.chain`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click
import numpy as np

from sermm.calibration.methods import (
    AffineCalibrator,
    PriorCalibrator,
    TemperatureCalibrator,
    ThresholdCalibrator,
)
from sermm.calibration_metrics import cross_entropy, ece, normalized_cross_entropy
from sermm.chain import Chain, Output
from sermm.cli.common import (
    MethodSpec,
    SermmGroup,
    chain_options,
    check_outputs,
    labels_option,
    method_command,
    score_options,
)
from sermm.errors import SermmError
from sermm.fitting import CalibrationData
from sermm.metrics import METRICS, Metric, confusion_matrix, macro_f1_from_confusion
from sermm.priors import format_prior, parse_prior, resolve_train_prior
from sermm.tables import parse_classes

# ---------------------------------------------------------------------------
# metrics and output
# ---------------------------------------------------------------------------


def dev_metrics(P: np.ndarray, y: np.ndarray, decisions: np.ndarray | None = None) -> dict[str, float]:
    """Macro-F1 (of ``decisions``, else the argmax), cross-entropy, normalised CE and ECE, by title."""
    k = P.shape[1]
    pred = P.argmax(axis=1) if decisions is None else decisions
    values = {
        "macro_f1": float(macro_f1_from_confusion(confusion_matrix(y, pred, n_classes=k))),
        "cross_entropy": cross_entropy(P, y),
        "nce": normalized_cross_entropy(P, y) if len(np.unique(y)) > 1 else float("nan"),
        "ece": ece(P, y),
    }
    return {titled(METRICS[key]): value for key, value in values.items()}


def titled(metric: Metric) -> str:
    """A metric's title with its unit: ``CE (nats)``."""
    return f"{metric.title} ({metric.unit})" if metric.unit else metric.title


def print_metrics(
    labels: str | None, y: np.ndarray, P_before: np.ndarray, P_after: np.ndarray, decisions: np.ndarray | None
) -> None:
    """A before/after table of the metrics on the labelled rows."""
    before = dev_metrics(P_before, y)
    after = dev_metrics(P_after, y, decisions)
    click.echo(f"metrics on {len(y)} labelled utterances ({labels}):")
    click.echo(f"  {'metric':<10} {'before':>8} {'after':>8}")
    for name in before:
        click.echo(f"  {name:<10} {before[name]:8.4f} {after[name]:8.4f}")
    if decisions is not None:
        click.echo("  (thresholds decide: macro-F1 of their decisions; CE, NCE, ECE of their input)")


def write_output(path: str, out: Output) -> None:
    """Write calibrated posteriors with a sidecar, or a decision file ``id,label``."""
    out.write(path)
    what = "decisions" if out.decisions is not None else "calibrated posteriors"
    sidecar = f" (+ {path}.meta.json)" if out.decisions is None else ""
    click.echo(f"wrote {what} ({len(out.table)} rows): {path}{sidecar}")


def finish(data: CalibrationData, calibrator: Any, save: str | None, output: str | None) -> None:
    """Print dev metrics, save the model and write the calibrated input."""
    if data.y is not None and data.P_dev is not None:
        decisions = calibrator.predict(data.P_dev) if calibrator.decides else None
        print_metrics(data.labels, data.y, data.P_dev, calibrator.transform(data.P_dev), decisions)
    out = data.output(calibrator, save) if output else None  # computed before anything is written
    if save:
        calibrator.save(save)
        click.echo(f"saved calibration model: {save}")
    if out is not None:
        write_output(output, out)
    if not save and not output:
        click.echo("(nothing written: pass --save MODEL.json and/or --output FILE)")


# ---------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------


def input_option(func: Callable) -> Callable:
    """``--input/-i FILE``: one posterior file."""
    return click.option("--input", "--inputs", "-i", "input_path", required=True,
                        type=click.Path(dir_okay=False),
                        help="Posterior file (CSV or Parquet): id + one column per class.")(func)


def training_options(labels_required: bool) -> list[Callable]:
    """The options every training command shares."""
    return [
        input_option,
        labels_option(required=labels_required,
                      help="Dev labels (id,label) to fit on." if labels_required
                      else "Labels (id,label), only to print metrics before and after."),
        score_options,
        click.option("--save", "-s", type=click.Path(dir_okay=False), default=None,
                     help="Save the fitted calibrator as a JSON model file."),
        click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
                     help="Also write the calibrated input here (posteriors + .meta.json, or "
                     "decisions id,label for thresholds)."),
    ]


@click.group(cls=SermmGroup)
def main() -> None:
    """Calibrate posterior files: prior rebalancing, per-class thresholds, affine calibration.

    Each METHOD command fits a calibrator on one posterior file (dev data, with
    --labels), prints dev metrics before and after (macro-F1, cross-entropy,
    normalised cross-entropy, ECE), saves it as a JSON model (--save) and
    optionally writes the calibrated input (--output). `apply` runs saved
    models, in order, on other files. Output posteriors keep the input's class
    order and get a .meta.json sidecar; thresholds write decisions (id,label).

    \b
    Methods:
      prior        rebalance to a uniform, given or EM-estimated class prior
      thresholds   per-class decision thresholds tuned for macro-F1
      affine       softmax(a*log p + b), optionally prior-weighted; --full: matrix
      temperature  softmax(a*log p)
      apply        apply saved models to a posterior file

    \b
    Examples:
      sermm-calibrate prior --uniform -i examples/goemotions/words_test.csv -o words_test_bal.csv
      sermm-calibrate affine -i examples/goemotions/words_dev.csv \\
          --labels examples/goemotions/labels_dev.csv --save affine.json
      sermm-calibrate thresholds -i examples/goemotions/words_dev.csv \\
          --labels examples/goemotions/labels_dev.csv --save thr.json
      sermm-calibrate apply affine.json thr.json -i examples/goemotions/words_test.csv -o decisions.csv
    """


def fit_prior(data: CalibrationData, uniform: bool, target_prior: str | None, estimate: bool,
              train_prior: str | None, train_labels: str | None, train_split: str | None,
              tol: float, max_iter: int) -> PriorCalibrator:
    """prior: the training prior resolved, the target chosen, the rebalancer fitted and described."""
    train, source = resolve_train_prior(data.table, train_prior, train_labels, train_split)
    target = "uniform" if uniform else "estimate" if estimate else parse_prior(target_prior, data.classes,
                                                                               "--target-prior")
    calibrator = PriorCalibrator(train, target, tol=tol, max_iter=max_iter)
    data.fit(calibrator, unlabelled=True)
    calibrator.fit_info_["train_prior_source"] = source
    click.echo(f"training prior ({source}): {format_prior(data.classes, calibrator.train_prior_)}")
    what = "uniform" if uniform else "estimated by EM" if estimate else "given"
    click.echo(f"target prior ({what}): {format_prior(data.classes, calibrator.target_prior_)}")
    if estimate:
        state = "converged" if calibrator.converged_ else "did NOT converge (raise --max-iter or --tol)"
        click.echo(f"EM {state} after {calibrator.n_iter_} iterations (tol {tol:g}), {len(data.table)} rows")
    return calibrator


def fit_thresholds(data: CalibrationData, max_candidates: int, max_sweeps: int) -> ThresholdCalibrator:
    """thresholds: tuned on the labelled rows and described."""
    calibrator = data.fit(ThresholdCalibrator(max_candidates=max_candidates, max_sweeps=max_sweeps))
    click.echo(f"thresholds: {format_prior(data.classes, calibrator.thresholds_)}")
    click.echo(f"dev macro-F1: argmax {calibrator.dev_macro_f1_argmax_:.4f} -> thresholds "
               f"{calibrator.dev_macro_f1_:.4f} ({calibrator.n_sweeps_} sweep(s))")
    return calibrator


def fit_affine(data: CalibrationData, uniform: bool, target_prior: str | None, full: bool, vector: bool,
               l2: float, max_iter: int) -> AffineCalibrator:
    """affine: the scale and prior chosen by flags, fitted on the labelled rows and described."""
    if uniform and target_prior:
        raise SermmError("give one of --uniform and --target-prior")
    if full and vector:
        raise SermmError("give one of --full and --vector")
    data.require_labels("affine")
    prior = "uniform" if uniform else parse_prior(target_prior, data.classes, "--target-prior") \
        if target_prior else None
    scale = "matrix" if full else "vector" if vector else "shared"
    if l2 and scale == "shared":
        raise SermmError("--l2 applies to --full or --vector")
    calibrator = data.fit(AffineCalibrator(scale=scale, prior=prior, l2=l2, max_iter=max_iter))
    describe_affine(calibrator, data.classes)
    return calibrator


def fit_temperature(data: CalibrationData, max_iter: int) -> TemperatureCalibrator:
    """temperature: fitted on the labelled rows and described."""
    calibrator = data.fit(TemperatureCalibrator(max_iter=max_iter))
    describe_affine(calibrator, data.classes)
    return calibrator


def describe_affine(calibrator: AffineCalibrator, classes: list[str]) -> None:
    """Print the fitted scale and biases."""
    if calibrator.scale in ("temperature", "shared"):
        a = float(calibrator.scale_[0])
        click.echo(f"scale a={a:.4f} (temperature {1 / a:.4f})" if a else "scale a=0")
    elif calibrator.scale == "vector":
        click.echo(f"scales: {format_prior(classes, calibrator.scale_)}")
    else:
        click.echo(f"scale matrix {len(classes)}x{len(classes)}, l2={calibrator.l2:g}")
    if calibrator.scale != "temperature":
        click.echo(f"biases: {format_prior(classes, calibrator.bias_)}")
        click.echo(f"outputs are posteriors under the prior: {format_prior(classes, calibrator.prior_)}")
    state = "converged" if calibrator.converged_ else "stopped before converging"
    click.echo(f"L-BFGS-B {state} after {calibrator.n_iter_} iterations; dev log loss {calibrator.loss_:.4f}")


MAX_ITER = click.option("--max-iter", default=1000, show_default=True, type=click.IntRange(1),
                        help="Most L-BFGS-B iterations.")
TARGETS = [
    click.option("--uniform", is_flag=True, help="Prior-weighted fit for a uniform prior; outputs under it."),
    click.option("--target-prior", default=None, metavar="PRIOR",
                 help="Prior-weighted fit for this prior (JSON file or class=p,...); outputs under it."),
]




@dataclass
class CalibratorSpec(MethodSpec):
    """A calibration method command: ``fit(data, **its options)`` makes, fits and describes the
    calibrator; ``check(**its options)`` refuses option combinations before any file is read."""

    fit: Callable[..., Any] = None  # type: ignore[assignment]
    labels_required: bool = True
    check: Callable[..., None] | None = None


def check_prior_target(uniform: bool, target_prior: str | None, estimate: bool, **_: Any) -> None:
    """prior needs exactly one target."""
    chosen = [name for name, on in (("--uniform", uniform), ("--target-prior", target_prior),
                                    ("--estimate", estimate)) if on]
    if len(chosen) != 1:
        raise SermmError("choose one target: --uniform, --target-prior PRIOR or --estimate"
                         + (f" (got {' and '.join(chosen)})" if chosen else ""))


#: One entry per calibration method: its options, its manual, how it is fitted.
CALIBRATORS = [
    CalibratorSpec(
        "prior",
        [
            click.option("--uniform", is_flag=True, help="Target a uniform prior (balanced test sets)."),
            click.option("--target-prior", default=None, metavar="PRIOR",
                         help="Target this prior: a JSON file {class: p} or class=p,class=p,..."),
            click.option("--estimate", is_flag=True,
                         help="Estimate the prior of the (unlabelled) input by EM and adapt to it."),
            click.option("--train-prior", default=None, metavar="PRIOR",
                         help="The prior the system was trained under: JSON file or class=p,... "
                         "(default: the input's .meta.json train_prior, or that of the fusion model it "
                         "names)."),
            click.option("--train-labels", default=None, type=click.Path(dir_okay=False),
                         help="Take the training prior from the class counts of this label file."),
            click.option("--train-split", default=None,
                         help="With --train-labels in MSP-Podcast layout: its Split_Set."),
            click.option("--tol", default=1e-6, show_default=True, type=click.FloatRange(0, min_open=True),
                         help="EM: stop when no class moves more."),
            click.option("--max-iter", default=1000, show_default=True, type=click.IntRange(1),
                         help="EM: most iterations."),
        ],
        """Rebalance posteriors from the training prior to another prior.

    p'(c|x) is proportional to p(c|x) * target(c) / train(c). The target is
    uniform (--uniform), given (--target-prior) or estimated from the
    unlabelled input itself (--estimate: the EM procedure of Saerens, Latinne
    and Decaestecker, 2002). The training prior comes from --train-prior,
    --train-labels, or the input's sidecar (train_prior, or the fusion model
    its "models" key names). No labels are needed; --labels only adds metrics.
    The output's sidecar records the new prior as its train_prior, so a second
    rebalancing to the same prior changes nothing. A saved --estimate model
    applies the prior it estimated; to estimate the prior of other data, run
    prior --estimate on that data.

    \b
    Examples:
      sermm-calibrate prior --uniform -i examples/goemotions/words_test.csv -o words_test_bal.csv
      sermm-calibrate prior --estimate -i examples/goemotions/words_test.csv -o words_test_em.csv
      sermm-calibrate prior --target-prior prior.json --train-labels train_labels.csv \\
          -i scores.csv -o out.csv --save prior_model.json
    """,
        fit=fit_prior,
        labels_required=False,
        check=check_prior_target,
    ),
    CalibratorSpec(
        "thresholds",
        [
            click.option("--max-candidates", default=200, show_default=True, type=click.IntRange(2),
                         help="Candidate thresholds per class (its unique scores, or that many quantiles)."),
            click.option("--max-sweeps", default=10, show_default=True, type=click.IntRange(1),
                         help="Coordinate-ascent sweeps over the classes (stops early without improvement)."),
        ],
        """Tune a decision threshold per class for dev macro-F1 (the BSC-UPC rule).

    Decision rule: go down each utterance's class ranking and predict the
    first class whose score reaches its threshold; if none does, the argmax.
    Thresholds start at 0 (= argmax) and move one class at a time (coordinate
    ascent) only when dev macro-F1 rises, so dev macro-F1 never falls below
    the argmax's. The outputs are decisions (id,label), not posteriors.

    \b
    Examples:
      sermm-calibrate thresholds -i examples/goemotions/words_dev.csv \\
          --labels examples/goemotions/labels_dev.csv --save thr.json -o words_dev_decisions.csv
      sermm-calibrate apply thr.json -i examples/goemotions/words_test.csv -o words_test_decisions.csv
    """,
        fit=fit_thresholds,
    ),
    CalibratorSpec(
        "affine",
        [
            *TARGETS,
            click.option("--full", is_flag=True,
                         help="A full scale matrix (matrix scaling) instead of one scale."),
            click.option("--vector", is_flag=True,
                         help="One scale per class (vector scaling) instead of one scale."),
            click.option("--l2", default=0.0, show_default=True, type=click.FloatRange(0),
                         help="With --full/--vector: L2 penalty pulling the scales towards the identity."),
            MAX_ITER,
        ],
        """Affine calibration of log-posteriors: softmax(a * log p + b).

    One shared scale a and one bias per class (psrcal's AffineCalLogLoss),
    fitted for the mean log loss on dev data with L-BFGS-B. With --uniform
    or --target-prior the loss is prior-weighted (each class weighs its prior
    in total, psrcal's priors=) and the outputs are posteriors under that
    prior. --vector fits one scale per class, --full a full matrix.

    \b
    Examples:
      sermm-calibrate affine -i examples/goemotions/words_dev.csv \\
          --labels examples/goemotions/labels_dev.csv --save affine.json
      sermm-calibrate affine --uniform -i examples/goemotions/nb_dev.csv \\
          --labels examples/goemotions/labels_dev.csv --save affine_bal.json -o nb_dev_cal.csv
      sermm-calibrate apply affine.json -i examples/goemotions/words_test.csv -o words_test_cal.csv
    """,
        fit=fit_affine,
    ),
    CalibratorSpec(
        "temperature",
        [MAX_ITER],
        """Temperature scaling of log-posteriors: softmax(a * log p), one scale, no bias.

    \b
    Examples:
      sermm-calibrate temperature -i examples/goemotions/chars_dev.csv \\
          --labels examples/goemotions/labels_dev.csv --save temp.json
    """,
        fit=fit_temperature,
    ),
]


def _add_calibration_command(spec: CalibratorSpec) -> None:
    def command(input_path: str, labels: str | None, split: str | None, classes: str | None, scores: str,
                on_missing: str, save: str | None, output: str | None, **opts: Any) -> None:
        if spec.check is not None:
            spec.check(**opts)
        named = [v for v in opts.values() if isinstance(v, str)]  # files among the options are inputs too
        check_outputs([input_path, labels, *named], {"--save": save, "--output": output})
        data = CalibrationData.load(input_path, labels, scores=scores, classes=classes, split=split,
                                    on_missing=on_missing)
        finish(data, spec.fit(data, **opts), save, output)

    main.add_command(method_command(spec, training_options(spec.labels_required), command))


for _spec in CALIBRATORS:
    _add_calibration_command(_spec)


@main.command("apply")
@click.argument("models", nargs=-1, required=True, type=click.Path(dir_okay=False))
@input_option
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="Calibrated posteriors (+ .meta.json), or decisions id,label when the chain ends "
              "with thresholds.")
@labels_option(required=False, help="Labels to print metrics before and after (optional).")
@score_options
@chain_options
def apply_command(models, input_path, output, labels, split, classes, scores, on_missing, save_chain) -> None:
    """Apply saved calibration models, in the order given, to a posterior file.

    The models' classes must be the input's (in any column order). A
    thresholds model decides, so it must come last; the output is then a
    decision file (id,label). On a file sermm-fuse apply wrote, the output and
    its sidecar are the same as those of sermm-fuse apply with --then.

    \b
    Examples:
      sermm-calibrate apply affine.json -i examples/goemotions/words_test.csv -o words_test_cal.csv
      sermm-calibrate apply prior.json thr.json -i examples/goemotions/words_test.csv -o decisions.csv \\
          --labels examples/goemotions/labels_test.csv
    """
    chain = Chain.load(models, first="calibration")
    check_outputs([input_path, labels, *models], {"--output": output, "--save-chain": save_chain})
    table = chain.read([input_path], scores=scores, classes=classes).tables[0]
    out = chain.apply([table], [input_path])
    if labels:
        from sermm.align import labelled_rows

        rows, label_table = labelled_rows(table, labels, split=split, classes=parse_classes(classes),
                                          on_missing=on_missing)
        decisions = None if out.decisions is None else out.decisions[rows]
        y = label_table.indices(table.columns)
        print_metrics(labels, y, out.start[rows], out.table.values[rows], decisions)
    write_output(output, out)
    if save_chain:
        chain.save(save_chain)
        click.echo(f"chain model: {save_chain}")
