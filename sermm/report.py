"""Evaluation reports: metrics with bootstrap CIs, paired comparisons, Markdown and JSON.

One report scores one or more prediction files against one label file. Inputs may be
posterior files (id + one column per class), decision files (``id,label``) or attribute
files (id + arousal/valence/dominance); posterior and decision files are scored together
as categorical systems, attribute files separately with the CCC. Every input is matched
to the labels by id, never by position.

Comparison rule: each system is compared, with a paired bootstrap on the same resamples,
against the best of the *other* systems (by macro-F1, or by mean CCC for attributes), so
a fusion's row says whether it beat the best single system.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from sermm import __version__
from sermm.align import Aligned, OnMissing, align_ids, check_label_classes
from sermm.bootstrap import (
    _bootstrap_ccc_values,
    bootstrap_categorical,
    bootstrap_ccc,
    paired_bootstrap,
    paired_bootstrap_ccc,
)
from sermm.calibration_metrics import (
    brier_score,
    cross_entropy,
    ece,
    expected_cost,
    normalized_cross_entropy,
)
from sermm.classes import same_classes, spelled_as
from sermm.errors import SermmError
from sermm.labels import LabelTable, is_label_file, read_labels
from sermm.metrics import (
    CATEGORICAL_METRICS,
    METRICS,
    ccc,
    confusion_matrix,
    per_class_scores_from_confusion,
)
from sermm.sidecar import read_sidecar
from sermm.tables import (
    ATTRIBUTES,
    ScoreTable,
    parse_classes,
    read_attributes,
    read_posteriors,
    sniff_kind,
)

__all__ = [
    "AttributeData",
    "CategoricalData",
    "ReportData",
    "build_report",
    "load_report_data",
    "render_markdown",
]

ECE_BINS = 15
#: The report's columns after macro-F1 (which comes with its interval): decision metrics, then the
#: calibration metrics of posterior inputs (keys of :data:`sermm.metrics.METRICS`).
DECISION_COLUMNS = ("ua", "wa", "micro_f1", "weighted_f1")
CALIBRATION_COLUMNS = ("cross_entropy", "nce", "ece", "brier")
COMPARISON_RULE = (
    "Each system is compared with the best of the other systems ({metric} on these data; "
    "the best system is compared with the runner-up) by a paired bootstrap on the same "
    "resamples. Δ = {metric}(system) − {metric}(reference); the interval is the percentile "
    "CI of Δ; p is the fraction of resamples with Δ ≤ 0 (one-sided: a small p says the "
    "system beats the reference)."
)


@dataclass
class CategoricalData:
    """Categorical systems aligned with the labels: ``pred[s]`` are class indices, ``y`` the truth."""

    classes: list[str]
    ids: np.ndarray
    y: np.ndarray
    names: list[str]
    paths: list[str]
    kinds: list[str]
    pred: list[np.ndarray]
    posteriors: list[np.ndarray | None]


@dataclass
class AttributeData:
    """Attribute predictors aligned with the reference values (``y`` and each ``pred`` are (n, a))."""

    attributes: list[str]
    ids: np.ndarray
    y: np.ndarray
    names: list[str]
    paths: list[str]
    pred: list[np.ndarray]


@dataclass
class ReportData:
    """Everything a report is computed from: the label file and the aligned input groups."""

    labels: str
    categorical: CategoricalData | None
    attributes: AttributeData | None


# ---------------------------------------------------------------------------
# reading and aligning
# ---------------------------------------------------------------------------


def _input_kind(path: str) -> str:
    """'decision' for ``id,label`` files, else the sniffed score-file kind."""
    if is_label_file(path):
        return "decision"
    kind = sniff_kind(path)
    if kind == "embedding":
        raise SermmError(
            f"{path}: is an embedding file; a report scores posterior files, decision files "
            "(id,label) or attribute files (id,arousal,valence,dominance)"
        )
    return kind


def _unique_names(names: list[str], paths: list[str]) -> list[str]:
    """System names, with the file path used where two inputs share a name."""
    out = [p if names.count(n) > 1 else n for n, p in zip(names, paths, strict=True)]
    return [f"{n} ({i + 1})" if out.count(n) > 1 else n for i, n in enumerate(out)]


def _align_in_label_order(tables: list[ScoreTable], labels: LabelTable, on_missing: OnMissing) -> Aligned:
    """Align by id, then put the rows in the label file's order (so that the bootstrap
    resamples, and hence the intervals, do not depend on the row order of the inputs)."""
    aligned = align_ids(tables, labels, on_missing=on_missing)
    order = np.argsort(pd.Index(labels.ids).get_indexer(aligned.ids), kind="stable")
    return Aligned([t.take(order) for t in aligned.tables], aligned.labels.take(order))


def _load_categorical(
    paths: list[str],
    kinds: list[str],
    labels: LabelTable,
    *,
    scores: Literal["auto", "probability", "logit"],
    classes: list[str] | None,
    on_missing: OnMissing,
) -> CategoricalData:
    labels.require_categorical()
    dropped = labels.ids[:0]
    if classes is not None:
        # as in sermm.align.load_aligned: labels outside --classes leave the evaluation
        inside = labels.within(classes)
        if not inside.any():
            raise SermmError(f"{labels.path}: no labels of the classes {', '.join(classes)}")
        dropped = labels.ids[~inside]
        labels = labels.take(np.flatnonzero(inside))
    decided = {i: read_labels(p) for i, p in enumerate(paths) if kinds[i] == "decision"}
    scored = {
        i: read_posteriors(p, scores=scores, classes=classes)
        for i, p in enumerate(paths)
        if kinds[i] != "decision"
    }
    if scored:
        first = scored[min(scored)]
        if classes is None:
            check_label_classes(first, labels)  # MSP's O/X labels: say --classes before any id mismatch
        classes = spelled_as(classes, first.columns) if classes else first.columns
        for table in scored.values():
            if not same_classes(table.columns, classes):
                raise SermmError(
                    f"{table.path}: its classes ({', '.join(table.columns)}) differ from those of "
                    f"{first.path} ({', '.join(classes)}); pick a common subset with --classes"
                )
    elif classes is None:
        found = np.concatenate([labels.labels, *(d.require_categorical() for d in decided.values())])
        classes = sorted(set(found.tolist()))
    tables = []
    for i, path in enumerate(paths):
        if i in decided:
            table = decided[i].take(np.flatnonzero(~np.isin(decided[i].ids, dropped)))
            # a decision file travels through align_ids as one column of class indices
            indices = table.indices(classes, what="decision")[:, None].astype(float)
            tables.append(ScoreTable(table.ids, indices, ["label"], "posterior", read_sidecar(path), path))
        else:
            table = scored[i].with_columns(classes)
            tables.append(table.take(np.flatnonzero(~np.isin(table.ids, dropped))))
    aligned = _align_in_label_order(tables, labels, on_missing)
    y = aligned.labels.indices(classes)
    pred, posteriors = [], []
    for table, kind in zip(aligned.tables, kinds, strict=True):
        if kind == "decision":
            pred.append(table.values[:, 0].astype(np.int64))
            posteriors.append(None)
        else:
            pred.append(table.values.argmax(axis=1))
            posteriors.append(table.values)
    names = _unique_names([t.system for t in tables], paths)
    return CategoricalData(list(classes), aligned.ids, y, names, paths, kinds, pred, posteriors)


def _load_attributes(paths: list[str], labels: LabelTable, *, on_missing: OnMissing) -> AttributeData:
    tables = [read_attributes(p) for p in paths]
    names = [a for a in ATTRIBUTES if a in tables[0].columns]
    for table in tables[1:]:
        if set(table.columns) != set(names):
            raise SermmError(
                f"{table.path}: its attributes ({', '.join(table.columns)}) differ from those of "
                f"{tables[0].path} ({', '.join(names)})"
            )
    tables = [t.with_columns(names) for t in tables]
    labels.require_attributes(names)
    aligned = _align_in_label_order(tables, labels, on_missing)
    y = aligned.labels.require_attributes(names)
    system_names = _unique_names([t.system for t in tables], paths)
    return AttributeData(names, aligned.ids, y, system_names, paths, [t.values for t in aligned.tables])


def load_report_data(
    inputs: list[str],
    labels: str,
    *,
    scores: Literal["auto", "probability", "logit"] = "auto",
    classes: str | list[str] | None = None,
    split: str | None = None,
    on_missing: OnMissing = "error",
) -> ReportData:
    """Read the inputs and the labels and align each group (categorical, attribute) by id.

    Posterior and decision files form the categorical group, in one class order: ``classes``
    if given (labels of other classes are then left out), else the first posterior file's
    columns, else the classes found in the labels and decisions. Attribute files form the
    attribute group. Missing ids follow ``on_missing`` as in :func:`sermm.align.align_ids`.
    """
    if not inputs:
        raise SermmError("no input files given (use --input FILE [FILE ...])")
    subset = parse_classes(classes) if isinstance(classes, str) else classes
    kinds = [_input_kind(p) for p in inputs]
    label_table = read_labels(labels, split=split)
    cat = [i for i, k in enumerate(kinds) if k != "attribute"]
    att = [i for i, k in enumerate(kinds) if k == "attribute"]
    categorical = attributes = None
    if cat:
        categorical = _load_categorical(
            [inputs[i] for i in cat],
            [kinds[i] for i in cat],
            label_table,
            scores=scores,
            classes=subset,
            on_missing=on_missing,
        )
    if att:
        attributes = _load_attributes([inputs[i] for i in att], label_table, on_missing=on_missing)
    return ReportData(str(labels), categorical, attributes)


# ---------------------------------------------------------------------------
# computing
# ---------------------------------------------------------------------------


def _num(x: Any) -> float | None:
    """A JSON-safe float: NaN (an undefined metric) becomes None."""
    x = float(x)
    return None if np.isnan(x) else x


def _interval(point: Any, low: Any, high: Any) -> dict[str, float | None]:
    return {"value": _num(point), "low": _num(low), "high": _num(high)}


def _calibration(P: np.ndarray, y: np.ndarray) -> dict[str, float | None]:
    """Calibration metrics of posteriors; NCE is None when the labels hold a single class."""
    k = P.shape[1]
    single = np.unique(y).size < 2
    return {
        "cross_entropy": cross_entropy(P, y),
        "nce": None if single else normalized_cross_entropy(P, y),
        "nce_uniform": None if k < 2 else normalized_cross_entropy(P, y, prior=np.full(k, 1.0 / k)),
        "brier": brier_score(P, y),
        "ece": ece(P, y, n_bins=ECE_BINS),
        "expected_cost": expected_cost(P, y),
    }


def _references(scores: list[float]) -> list[int]:
    """For each system, the index of the best *other* system (the first on ties; NaN ranks last)."""
    values = np.asarray(scores, dtype=float)
    ranked = np.where(np.isnan(values), -np.inf, values)
    index = np.arange(len(values))
    return [int(np.nanargmax(np.where(index == i, np.nan, ranked))) for i in index]


def _categorical_report(data: CategoricalData, n_boot: int, seed: int, alpha: float) -> dict[str, Any]:
    k = len(data.classes)
    y = data.y
    support = np.bincount(y, minlength=k)
    systems = []
    for name, path, kind, pred, P in zip(
        data.names, data.paths, data.kinds, data.pred, data.posteriors, strict=True
    ):
        conf = confusion_matrix(y, pred, n_classes=k)
        boot = bootstrap_categorical(y, pred, n_classes=k, n_boot=n_boot, alpha=alpha, seed=seed)
        per_class = per_class_scores_from_confusion(conf)
        systems.append(
            {
                "system": name,
                "file": path,
                "kind": kind,
                "metrics": {m: _interval(*boot[m]) for m in CATEGORICAL_METRICS},
                "calibration": None if P is None else _calibration(P, y),
                "per_class": {
                    c: {
                        "precision": float(per_class["precision"][j]),
                        "recall": float(per_class["recall"][j]),
                        "f1": float(per_class["f1"][j]),
                        "support": int(per_class["support"][j]),
                    }
                    for j, c in enumerate(data.classes)
                },
                "confusion": conf.tolist(),
            }
        )
    comparisons = []
    if len(systems) > 1:
        scores = [s["metrics"]["macro_f1"]["value"] for s in systems]
        for i, ref in enumerate(_references(scores)):
            res = paired_bootstrap(
                y, data.pred[ref], data.pred[i], n_classes=k, n_boot=n_boot, alpha=alpha, seed=seed
            )
            comparisons.append(
                {
                    "system": data.names[i],
                    "reference": data.names[ref],
                    "diff": res["diff"],
                    "low": res["low"],
                    "high": res["high"],
                    "p_value": res["p_value"],
                }
            )
    return {
        "n": int(len(y)),
        "classes": list(data.classes),
        "support": support.tolist(),
        "systems": systems,
        "comparison": {
            "metric": "macro_f1",
            "rule": COMPARISON_RULE.format(metric=METRICS["macro_f1"].title),
            "rows": comparisons,
        },
    }


def _attribute_report(data: AttributeData, n_boot: int, seed: int, alpha: float) -> dict[str, Any]:
    y = data.y
    # CCC of every system on the same resamples (the ones bootstrap_ccc draws for this seed),
    # averaged over the attributes: the bootstrap distribution of the mean CCC
    boot = _bootstrap_ccc_values(y, data.pred, n_boot, seed, 100).mean(axis=2)  # (n_boot, s)
    quantiles = [alpha / 2.0, 1.0 - alpha / 2.0]
    systems = []
    for s, (name, path, pred) in enumerate(zip(data.names, data.paths, data.pred, strict=True)):
        point, low, high = bootstrap_ccc(y, pred, n_boot=n_boot, alpha=alpha, seed=seed)
        mean_low, mean_high = np.quantile(boot[:, s], quantiles)
        systems.append(
            {
                "system": name,
                "file": path,
                "kind": "attribute",
                "ccc": {a: _interval(point[j], low[j], high[j]) for j, a in enumerate(data.attributes)},
                "mean_ccc": _interval(np.mean(point), mean_low, mean_high),
            }
        )
    comparisons = []
    if len(systems) > 1:
        means = [np.nan if s["mean_ccc"]["value"] is None else s["mean_ccc"]["value"] for s in systems]
        for i, ref in enumerate(_references(means)):
            per_attr = paired_bootstrap_ccc(
                y, data.pred[ref], data.pred[i], n_boot=n_boot, alpha=alpha, seed=seed
            )
            diffs = boot[:, i] - boot[:, ref]
            low, high = np.quantile(diffs, quantiles)
            comparisons.append(
                {
                    "system": data.names[i],
                    "reference": data.names[ref],
                    "diff": _num(np.mean(ccc(y, data.pred[i])) - np.mean(ccc(y, data.pred[ref]))),
                    "low": _num(low),
                    "high": _num(high),
                    "p_value": float(np.mean(diffs <= 0)),
                    "per_attribute": {
                        a: {key: _num(per_attr[key][j]) for key in ("diff", "low", "high", "p_value")}
                        for j, a in enumerate(data.attributes)
                    },
                }
            )
    return {
        "n": int(len(y)),
        "attributes": list(data.attributes),
        "systems": systems,
        "comparison": {
            "metric": "mean_ccc",
            "rule": COMPARISON_RULE.format(metric=f"mean {METRICS['ccc'].title}"),
            "rows": comparisons,
        },
    }


def build_report(
    data: ReportData, *, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
) -> dict[str, Any]:
    """All numbers of a report as a JSON-ready dict (CIs are percentile bootstrap intervals)."""
    if int(n_boot) != n_boot or n_boot < 1:
        raise SermmError(f"--n-boot must be a positive integer, got {n_boot}")
    return {
        "sermm_version": __version__,
        "labels": data.labels,
        "bootstrap": {"n_boot": int(n_boot), "seed": int(seed), "confidence": 1.0 - alpha},
        "categorical": None
        if data.categorical is None
        else _categorical_report(data.categorical, n_boot, seed, alpha),
        "attributes": None
        if data.attributes is None
        else _attribute_report(data.attributes, n_boot, seed, alpha),
    }


# ---------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _with_ci(entry: dict[str, float | None], signed: bool = False) -> str:
    return f"{_fmt(entry['value'], signed)} [{_fmt(entry['low'], signed)}, {_fmt(entry['high'], signed)}]"


def _p(value: float, n_boot: int) -> str:
    """A bootstrap p-value; 0 means smaller than one resample in ``n_boot``."""
    return f"< {1.0 / n_boot:.3g}" if value == 0 else f"{value:.3f}"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _comparison_lines(comparison: dict[str, Any], title: str, level: int, n_boot: int) -> list[str]:
    body = [
        [
            r["system"],
            r["reference"],
            _fmt(r["diff"], signed=True),
            f"[{_fmt(r['low'], signed=True)}, {_fmt(r['high'], signed=True)}]",
            _p(r["p_value"], n_boot),
        ]
        for r in comparison["rows"]
    ]
    if not body:
        return []
    return [
        "",
        f"### Paired comparison ({title})",
        "",
        comparison["rule"],
        "",
        *_table(["system", "reference", f"Δ {title}", f"{level}% CI", "p"], body),
    ]


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: one row per input, the paired comparisons, F1 per class."""
    boot = report["bootstrap"]
    level = round(100 * boot["confidence"])
    lines = [
        "# sermm report",
        "",
        f"Labels: `{report['labels']}`. Intervals: {level}% percentile bootstrap, "
        f"{boot['n_boot']} resamples, seed {boot['seed']}.",
    ]
    cat = report.get("categorical")
    if cat:
        prior = ", ".join(f"{c} {s}" for c, s in zip(cat["classes"], cat["support"], strict=True))
        rows = []
        for s in cat["systems"]:
            m, cal = s["metrics"], s["calibration"] or {}
            rows.append(
                [s["system"], f"`{s['file']}`", _with_ci(m["macro_f1"])]
                + [_fmt(m[k]["value"]) for k in DECISION_COLUMNS]
                + [_fmt(cal.get(k)) for k in CALIBRATION_COLUMNS]
            )
        header = ["system", "file", f"{METRICS['macro_f1'].title} [{level}% CI]"]
        header += [METRICS[k].title for k in (*DECISION_COLUMNS, *CALIBRATION_COLUMNS)]
        lines += [
            "",
            "## Categorical emotions",
            "",
            f"{cat['n']} utterances, {len(cat['classes'])} classes (support: {prior}).",
            "",
            *_table(header, rows),
            "",
            "UA: unweighted accuracy (mean recall); WA: accuracy. CE: cross-entropy in nats; "
            "NCE: CE / entropy of the label prior (below 1: more informative than the prior); "
            f"ECE: top-label expected calibration error, {ECE_BINS} bins; Brier: multiclass Brier "
            "score. Decision files (id,label) have no calibration metrics (–). The JSON report "
            "also holds CE / log k (nce_uniform), the expected 0-1 cost, the CI of every metric, "
            "precision and recall per class and the confusion matrices.",
        ]
        lines += _comparison_lines(cat["comparison"], METRICS["macro_f1"].title, level, boot["n_boot"])
        per_class = [
            [c, str(cat["support"][j])] + [_fmt(s["per_class"][c]["f1"]) for s in cat["systems"]]
            for j, c in enumerate(cat["classes"])
        ]
        lines += [
            "",
            "### F1 per class",
            "",
            *_table(["class", "support"] + [s["system"] for s in cat["systems"]], per_class),
        ]
    att = report.get("attributes")
    if att:
        rows = [
            [s["system"], f"`{s['file']}`"]
            + [_with_ci(s["ccc"][a]) for a in att["attributes"]]
            + [_with_ci(s["mean_ccc"])]
            for s in att["systems"]
        ]
        header = ["system", "file"] + [f"{a} [{level}% CI]" for a in att["attributes"]]
        lines += [
            "",
            "## Emotional attributes (CCC)",
            "",
            f"{att['n']} utterances; concordance correlation coefficient per attribute and its mean.",
            "",
            *_table(header + [f"mean CCC [{level}% CI]"], rows),
        ]
        lines += _comparison_lines(att["comparison"], f"mean {METRICS['ccc'].title}", level, boot["n_boot"])
    return "\n".join(lines) + "\n"
