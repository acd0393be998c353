"""``sermm-calibrate``: fit, save and apply calibrators on posterior files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click
import numpy as np

from sermm.align import load_aligned
from sermm.calibration.base import Calibrator, apply_chain, calibrator_from_dict
from sermm.calibration.methods import (
    AffineCalibrator,
    PriorCalibrator,
    TemperatureCalibrator,
    ThresholdCalibrator,
)
from sermm.calibration_metrics import cross_entropy, ece, normalized_cross_entropy
from sermm.cli.common import SermmGroup, check_outputs, labels_option, score_options
from sermm.errors import SermmError
from sermm.labels import read_labels
from sermm.metrics import confusion_matrix, macro_f1_from_confusion
from sermm.modelfile import load_model, save_model
from sermm.priors import parse_prior, prior_from_mapping
from sermm.sidecar import Sidecar
from sermm.tables import ScoreTable, write_decisions, write_scores

# ---------------------------------------------------------------------------
# priors: parsing and where the training prior comes from
# ---------------------------------------------------------------------------


def prior_from_labels(path: str, classes: list[str], split: str | None) -> np.ndarray:
    """The class frequencies of a label file (labels of other classes are left out)."""
    labels = read_labels(path, split=split).require_categorical()
    counts = np.array([np.count_nonzero(labels == c) for c in classes], dtype=np.float64)
    if counts.sum() == 0:
        raise SermmError(f"{path}: no labels of the classes {', '.join(classes)}")
    absent = [c for c, n in zip(classes, counts, strict=True) if n == 0]
    if absent:
        raise SermmError(f"{path}: class {', '.join(absent)} never occurs, so its training prior would be 0")
    return counts / counts.sum()


def prior_from_sidecar(table: ScoreTable) -> tuple[np.ndarray, str] | None:
    """The training prior in the input's sidecar, or in the one model the sidecar names."""
    meta, sidecar = table.sidecar, f"{table.path}.meta.json"
    if meta is None:
        return None
    if meta.train_prior is not None:
        prior = prior_from_mapping(meta.train_prior, table.columns, f"{sidecar}: train_prior", meta.classes)
        return prior, sidecar
    if len(meta.models) != 1:
        return None
    found = Path(meta.models[0])
    if not found.is_file():
        raise SermmError(f"{sidecar}: names the model '{found}', which does not exist")
    doc = load_model(found)
    if doc.get("train_prior") is None:
        return None
    prior = prior_from_mapping(doc["train_prior"], table.columns, f"{found}: train_prior", doc.get("classes"))
    return prior, str(found)


def resolve_train_prior(
    table: ScoreTable, train_prior: str | None, train_labels: str | None, train_split: str | None
) -> tuple[np.ndarray, str]:
    """The training prior and where it came from: option, label file, sidecar, or an error."""
    if train_prior and train_labels:
        raise SermmError("give the training prior once: --train-prior or --train-labels, not both")
    if train_prior:
        found = parse_prior(train_prior, table.columns, "--train-prior"), "--train-prior"
    elif train_labels:
        found = prior_from_labels(train_labels, table.columns, train_split), train_labels
    else:
        found = prior_from_sidecar(table)
    if found is None:
        raise SermmError(
            f"{table.path}: no training prior: pass --train-prior (a JSON file or class=p,...) or "
            f"--train-labels FILE (the training labels), or add \"train_prior\" to {table.path}.meta.json"
        )
    zero = [c for c, p in zip(table.columns, found[0], strict=True) if p <= 0]
    if zero:
        raise SermmError(f"{found[1]}: the training prior of class {', '.join(zero)} is 0; rebalancing "
                         "divides by it, so every class needs a positive training probability")
    return found


def sidecar_prior(table: ScoreTable) -> np.ndarray | None:
    """The input's training prior if its sidecar gives one, else None (never an error)."""
    try:
        found = prior_from_sidecar(table)
    except SermmError:
        return None
    return None if found is None else found[0]


def format_prior(classes: list[str], prior: np.ndarray) -> str:
    """``anger=0.1234 disgust=...``."""
    return " ".join(f"{c}={p:.4f}" for c, p in zip(classes, prior, strict=True))


# ---------------------------------------------------------------------------
# loading, metrics, writing
# ---------------------------------------------------------------------------


class Data:
    """The input scores (all rows) and, with labels, the labelled rows to fit and score on."""

    def __init__(self, path: str, labels: str | None, scores: str, classes: str | None,
                 split: str | None, on_missing: str, outputs: dict[str, str | None],
                 other_inputs: tuple[str | None, ...] = ()) -> None:
        check_outputs([path, labels, *other_inputs], outputs)
        self.table = load_aligned([path], None, kind="posterior", scores=scores, classes=classes).tables[0]
        self.labels = labels
        self.P_dev: np.ndarray | None = None
        self.y: np.ndarray | None = None
        if labels:
            aligned = load_aligned([path], labels, kind="posterior", scores=scores, classes=classes,
                                   split=split, on_missing=on_missing)
            self.P_dev, self.y = aligned.tables[0].values, aligned.y()

    @property
    def classes(self) -> list[str]:
        """The input's classes, in its column order."""
        return self.table.columns

    def require_labels(self, method: str) -> tuple[np.ndarray, np.ndarray]:
        """The labelled posteriors and their label indices, or a clear error."""
        if self.y is None or self.P_dev is None:
            raise SermmError(f"{method}: labels are needed to fit (pass --labels FILE)")
        present = np.unique(self.y)
        if len(present) < 2:
            raise SermmError(f"{self.labels}: every labelled row is '{self.classes[present[0]]}'; "
                             f"{method} needs labels of at least two classes")
        return self.P_dev, self.y


def dev_metrics(P: np.ndarray, y: np.ndarray, decisions: np.ndarray | None = None) -> dict[str, float]:
    """Macro-F1 (of ``decisions``, else the argmax), cross-entropy, normalised CE and ECE."""
    k = P.shape[1]
    pred = P.argmax(axis=1) if decisions is None else decisions
    return {
        "macro-F1": float(macro_f1_from_confusion(confusion_matrix(y, pred, n_classes=k))),
        "CE (nats)": cross_entropy(P, y),
        "NCE": normalized_cross_entropy(P, y) if len(np.unique(y)) > 1 else float("nan"),
        "ECE": ece(P, y),
    }


def print_metrics(
    data: Data, P_before: np.ndarray, P_after: np.ndarray, decisions: np.ndarray | None
) -> None:
    """A before/after table of the metrics on the labelled rows."""
    assert data.y is not None
    before = dev_metrics(P_before, data.y)
    after = dev_metrics(P_after, data.y, decisions)
    click.echo(f"metrics on {len(data.y)} labelled utterances ({data.labels}):")
    click.echo(f"  {'metric':<10} {'before':>8} {'after':>8}")
    for name in before:
        click.echo(f"  {name:<10} {before[name]:8.4f} {after[name]:8.4f}")
    if decisions is not None:
        click.echo("  (thresholds decide: macro-F1 of their decisions; CE, NCE, ECE of their input)")


def write_output(path: str, table: ScoreTable, calibrators: list[Calibrator], P: np.ndarray,
                 decisions: np.ndarray | None, models: list[str]) -> None:
    """Write calibrated posteriors with a sidecar, or a decision file ``id,label``."""
    if decisions is not None:
        write_decisions(table.id_column, np.asarray(table.columns, dtype=object)[decisions], path)
        click.echo(f"wrote decisions ({len(table)} rows): {path}")
        return
    prior = sidecar_prior(table)
    for calibrator in calibrators:
        prior = calibrator.output_prior(prior)
    sidecar = Sidecar(
        system="+".join([table.system, *(c.method for c in calibrators)]),
        classes=table.columns,
        train_prior=None if prior is None else dict(zip(table.columns, prior.tolist(), strict=True)),
        inputs=[table.path],
        models=models,
    )
    write_scores(table.replace(values=P, kind="posterior", sidecar=sidecar, path=path), path, sidecar=sidecar)
    click.echo(f"wrote calibrated posteriors ({len(table)} rows): {path}")


def finish(data: Data, calibrator: Calibrator, save: str | None, output: str | None, options: dict) -> None:
    """Print dev metrics, save the model and write the calibrated input."""
    if data.y is not None and data.P_dev is not None:
        decisions = calibrator.predict(data.P_dev) if calibrator.decides else None
        print_metrics(data, data.P_dev, calibrator.transform(data.P_dev), decisions)
    if output:  # computed before anything is written
        P = data.table.values
        P_out, decisions = calibrator.transform(P), calibrator.predict(P) if calibrator.decides else None
    if save:
        body = {**calibrator.to_dict(), "input_system": data.table.system, "fit_input": data.table.path,
                "fit_labels": data.labels, "options": options}
        save_model(save, "calibration", body)
        click.echo(f"saved calibration model: {save}")
    if output:
        write_output(output, data.table, [calibrator], P_out, decisions, [save] if save else [])
    if not save and not output:
        click.echo("(nothing written: pass --save MODEL.json and/or --output FILE)")


# ---------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------


def input_option(func: Callable) -> Callable:
    """``--input/-i FILE``: one posterior file."""
    return click.option("--input", "-i", "input_path", required=True, type=click.Path(dir_okay=False),
                        help="Posterior file (CSV or Parquet): id + one column per class.")(func)


def training_options(labels_required: bool) -> Callable:
    """The options every training command shares."""

    def decorate(func: Callable) -> Callable:
        func = click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
                            help="Also write the calibrated input here (posteriors + .meta.json, or "
                            "decisions id,label for thresholds).")(func)
        func = click.option("--save", "-s", type=click.Path(dir_okay=False), default=None,
                            help="Save the fitted calibrator as a JSON model file.")(func)
        func = score_options(func)
        func = labels_option(required=labels_required,
                             help="Dev labels (id,label) to fit on." if labels_required
                             else "Labels (id,label), only to print metrics before and after.")(func)
        return input_option(func)

    return decorate


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


@main.command("prior")
@training_options(labels_required=False)
@click.option("--uniform", is_flag=True, help="Target a uniform prior (balanced test sets).")
@click.option("--target-prior", default=None, metavar="PRIOR",
              help="Target this prior: a JSON file {class: p} or class=p,class=p,...")
@click.option("--estimate", is_flag=True,
              help="Estimate the prior of the (unlabelled) input by EM and adapt to it.")
@click.option("--train-prior", default=None, metavar="PRIOR",
              help="The prior the system was trained under: JSON file or class=p,... "
              "(default: the input's .meta.json train_prior, or that of the fusion model it names).")
@click.option("--train-labels", default=None, type=click.Path(dir_okay=False),
              help="Take the training prior from the class counts of this label file.")
@click.option("--train-split", default=None, help="With --train-labels in MSP-Podcast layout: its Split_Set.")
@click.option("--tol", default=1e-6, show_default=True, type=click.FloatRange(0, min_open=True),
              help="EM: stop when no class moves more.")
@click.option("--max-iter", default=1000, show_default=True, type=click.IntRange(1),
              help="EM: most iterations.")
def prior_command(input_path, labels, split, classes, scores, on_missing, save, output, uniform, target_prior,
                  estimate, train_prior, train_labels, train_split, tol, max_iter) -> None:
    """Rebalance posteriors from the training prior to another prior.

    p'(c|x) is proportional to p(c|x) * target(c) / train(c). The target is
    uniform (--uniform), given (--target-prior) or estimated from the
    unlabelled input itself (--estimate: the EM procedure of Saerens, Latinne
    and Decaestecker, 2002). The training prior comes from --train-prior,
    --train-labels, or the input's sidecar (train_prior, or the fusion model
    its "model" key names). No labels are needed; --labels only adds metrics.
    The output's sidecar records the new prior as its train_prior. A saved
    --estimate model applies the prior it estimated; to estimate the prior of
    other data, run prior --estimate on that data.

    \b
    Examples:
      sermm-calibrate prior --uniform -i examples/goemotions/words_test.csv -o words_test_bal.csv
      sermm-calibrate prior --estimate -i examples/goemotions/words_test.csv -o words_test_em.csv
      sermm-calibrate prior --target-prior prior.json --train-labels train_labels.csv \\
          -i scores.csv -o out.csv --save prior_model.json
    """
    chosen = [name for name, on in (("--uniform", uniform), ("--target-prior", target_prior),
                                    ("--estimate", estimate)) if on]
    if len(chosen) != 1:
        raise SermmError("choose one target: --uniform, --target-prior PRIOR or --estimate"
                         + (f" (got {' and '.join(chosen)})" if chosen else ""))
    data = Data(input_path, labels, scores, classes, split, on_missing, {"--save": save, "--output": output},
                (train_labels, train_prior, target_prior))
    train, source = resolve_train_prior(data.table, train_prior, train_labels, train_split)
    target = "uniform" if uniform else "estimate" if estimate else parse_prior(target_prior, data.classes,
                                                                               "--target-prior")
    calibrator = PriorCalibrator(train, target, tol=tol, max_iter=max_iter)
    calibrator.fit(data.table.values, classes=data.classes)
    click.echo(f"training prior ({source}): {format_prior(data.classes, calibrator.train_prior_)}")
    what = "uniform" if uniform else "estimated by EM" if estimate else "given"
    click.echo(f"target prior ({what}): {format_prior(data.classes, calibrator.target_prior_)}")
    if estimate:
        state = "converged" if calibrator.converged_ else "did NOT converge (raise --max-iter or --tol)"
        click.echo(f"EM {state} after {calibrator.n_iter_} iterations (tol {tol:g}), {len(data.table)} rows")
    finish(data, calibrator, save, output, {"train_prior_source": source})


@main.command("thresholds")
@training_options(labels_required=True)
@click.option("--max-candidates", default=200, show_default=True, type=click.IntRange(2),
              help="Candidate thresholds per class (its unique scores, or that many quantiles).")
@click.option("--max-sweeps", default=10, show_default=True, type=click.IntRange(1),
              help="Coordinate-ascent sweeps over the classes (stops early without improvement).")
def thresholds_command(input_path, labels, split, classes, scores, on_missing, save, output, max_candidates,
                       max_sweeps) -> None:
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
    """
    data = Data(input_path, labels, scores, classes, split, on_missing, {"--save": save, "--output": output})
    P, y = data.require_labels("thresholds")
    calibrator = ThresholdCalibrator(max_candidates=max_candidates, max_sweeps=max_sweeps)
    calibrator.fit(P, y, classes=data.classes)
    click.echo(f"thresholds: {format_prior(data.classes, calibrator.thresholds_)}")
    click.echo(f"dev macro-F1: argmax {calibrator.dev_macro_f1_argmax_:.4f} -> thresholds "
               f"{calibrator.dev_macro_f1_:.4f} ({calibrator.n_sweeps_} sweep(s))")
    finish(data, calibrator, save, output, {})


@main.command("affine")
@training_options(labels_required=True)
@click.option("--uniform", is_flag=True, help="Prior-weighted fit for a uniform prior; outputs under it.")
@click.option("--target-prior", default=None, metavar="PRIOR",
              help="Prior-weighted fit for this prior (JSON file or class=p,...); outputs under it.")
@click.option("--full", is_flag=True, help="A full scale matrix (matrix scaling) instead of one scale.")
@click.option("--vector", is_flag=True, help="One scale per class (vector scaling) instead of one scale.")
@click.option("--l2", default=0.0, show_default=True, type=click.FloatRange(0),
              help="With --full/--vector: L2 penalty pulling the scales towards the identity.")
@click.option("--max-iter", default=1000, show_default=True, type=click.IntRange(1),
              help="Most L-BFGS-B iterations.")
def affine_command(input_path, labels, split, classes, scores, on_missing, save, output, uniform,
                   target_prior, full, vector, l2, max_iter) -> None:
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
    """
    if uniform and target_prior:
        raise SermmError("give one of --uniform and --target-prior")
    if full and vector:
        raise SermmError("give one of --full and --vector")
    data = Data(input_path, labels, scores, classes, split, on_missing, {"--save": save, "--output": output})
    P, y = data.require_labels("affine")
    prior = "uniform" if uniform else parse_prior(target_prior, data.classes, "--target-prior") \
        if target_prior else None
    scale = "matrix" if full else "vector" if vector else "shared"
    if l2 and scale == "shared":
        raise SermmError("--l2 applies to --full or --vector")
    calibrator = AffineCalibrator(scale=scale, prior=prior, l2=l2, max_iter=max_iter)
    calibrator.fit(P, y, classes=data.classes)
    describe_affine(calibrator, data.classes)
    finish(data, calibrator, save, output, {})


@main.command("temperature")
@training_options(labels_required=True)
@click.option("--max-iter", default=1000, show_default=True, type=click.IntRange(1),
              help="Most L-BFGS-B iterations.")
def temperature_command(input_path, labels, split, classes, scores, on_missing, save, output,
                        max_iter) -> None:
    """Temperature scaling of log-posteriors: softmax(a * log p), one scale, no bias.

    \b
    Examples:
      sermm-calibrate temperature -i examples/goemotions/chars_dev.csv \\
          --labels examples/goemotions/labels_dev.csv --save temp.json
    """
    data = Data(input_path, labels, scores, classes, split, on_missing, {"--save": save, "--output": output})
    P, y = data.require_labels("temperature")
    calibrator = TemperatureCalibrator(max_iter=max_iter).fit(P, y, classes=data.classes)
    describe_affine(calibrator, data.classes)
    finish(data, calibrator, save, output, {})


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


@main.command("apply")
@click.argument("models", nargs=-1, required=True, type=click.Path(dir_okay=False))
@input_option
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="Calibrated posteriors (+ .meta.json), or decisions id,label when the chain ends "
              "with thresholds.")
@labels_option(required=False, help="Labels to print metrics before and after (optional).")
@score_options
def apply_command(models, input_path, output, labels, split, classes, scores, on_missing) -> None:
    """Apply saved calibration models, in the order given, to a posterior file.

    The models' classes must be the input's (in any column order). A
    thresholds model decides, so it must come last; the output is then a
    decision file (id,label).

    \b
    Examples:
      sermm-calibrate apply affine.json -i examples/goemotions/words_test.csv -o words_test_cal.csv
      sermm-calibrate apply prior.json thr.json -i examples/goemotions/words_test.csv -o decisions.csv \\
          --labels examples/goemotions/labels_test.csv
    """
    chain = [(path, calibrator_from_dict(load_model(path, "calibration"), source=path)) for path in models]
    data = Data(input_path, labels, scores, classes, split, on_missing, {"--output": output}, models)
    P, decisions = apply_chain(data.table.values, data.classes, chain)
    if data.y is not None and data.P_dev is not None:
        P_dev, dev_decisions = apply_chain(data.P_dev, data.classes, chain)
        print_metrics(data, data.P_dev, P_dev, dev_decisions)
    write_output(output, data.table, [c for _, c in chain], P, decisions, list(models))
