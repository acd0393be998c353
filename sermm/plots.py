"""Report figures: confusion matrices, reliability diagrams and attribute scatter plots (PNG).

matplotlib is imported inside the functions (so ``import sermm`` stays light) and used
through its object-oriented API with the Agg canvas: no pyplot state, no display needed.
Every file is written atomically.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from sermm.atomic import atomic_path
from sermm.calibration_metrics import ece
from sermm.metrics import ccc, confusion_matrix, macro_f1
from sermm.report import ReportData

__all__ = ["plot_attributes", "plot_confusion", "plot_reliability", "write_report_plots"]

DPI = 120


def _figure(width: float, height: float) -> Any:
    """A new figure on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return Path(path)


def plot_confusion(conf: np.ndarray, classes: list[str], title: str, path: str | Path) -> Path:
    """Row-normalised confusion matrix (percent of each true class) with class names on the axes."""
    conf = np.asarray(conf, dtype=float)
    k = len(classes)
    support = conf.sum(axis=1, keepdims=True)
    percent = np.divide(100.0 * conf, support, out=np.zeros_like(conf), where=support > 0)
    side = max(4.5, 0.55 * k + 2.5)
    fig = _figure(side + 1.0, side)
    ax = fig.add_subplot()
    image = ax.imshow(percent, cmap="Blues", vmin=0.0, vmax=100.0)
    fontsize = 9 if k <= 10 else max(5, 9 - (k - 10) // 2)
    for (i, j), value in np.ndenumerate(percent):
        if support[i, 0] > 0:
            color = "white" if value > 50 else "black"
            ax.text(j, i, f"{value:.1f}", ha="center", va="center", color=color, fontsize=fontsize)
    ax.set_xticks(range(k), labels=classes, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(k), labels=[f"{c} ({int(s)})" for c, s in zip(classes, support[:, 0], strict=True)])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class (support)")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, shrink=0.8, label="% of the true class")
    return _save(fig, path)


def plot_reliability(
    posteriors: np.ndarray, y: np.ndarray, title: str, path: str | Path, *, n_bins: int = 15
) -> Path:
    """Top-label reliability diagram (accuracy per confidence bin vs the diagonal) over a histogram.

    Bins are those of :func:`sermm.calibration_metrics.ece`: ``(b-1)/B < confidence <= b/B``.
    """
    P = np.asarray(posteriors, dtype=float)
    confidence = P.max(axis=1)
    correct = (P.argmax(axis=1) == y).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    filled = count > 0
    accuracy = np.bincount(bins, weights=correct, minlength=n_bins)[filled] / count[filled]
    mean_conf = np.bincount(bins, weights=confidence, minlength=n_bins)[filled] / count[filled]
    left, width = edges[:-1][filled], 1.0 / n_bins
    fig = _figure(5.5, 6.0)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    top.bar(
        left, accuracy, width=width, align="edge", color="lightsteelblue", edgecolor="black", label="accuracy"
    )
    top.bar(
        left,
        mean_conf - accuracy,
        bottom=accuracy,
        width=width,
        align="edge",
        facecolor="none",
        edgecolor="tab:red",
        hatch="///",
        label="gap to the bin's mean confidence",
    )
    top.plot([0, 1], [0, 1], linestyle="--", color="black", zorder=3, label="perfect calibration")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.legend(loc="upper left", fontsize=8)
    top.set_title(f"{title}: ECE {ece(P, y, n_bins=n_bins):.3f} ({n_bins} bins)")
    bottom.bar(edges[:-1], count, width=width, align="edge", color="gray", edgecolor="black")
    bottom.axvline(confidence.mean(), color="tab:red", linestyle="--", label="mean confidence")
    bottom.axvline(correct.mean(), color="tab:blue", linestyle=":", label="accuracy")
    bottom.set_xlabel("confidence (top-label posterior)")
    bottom.set_ylabel("utterances")
    bottom.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def plot_attributes(
    y_true: np.ndarray, y_pred: np.ndarray, attributes: list[str], title: str, path: str | Path
) -> Path:
    """One scatter of prediction vs reference per attribute, CCC in each panel's title."""
    a = len(attributes)
    fig = _figure(4.0 * a, 4.3)
    axes = np.atleast_1d(fig.subplots(1, a))
    scores = np.atleast_1d(ccc(y_true, y_pred))
    size = 4 if len(y_true) > 2000 else 10
    for j, (ax, name) in enumerate(zip(axes, attributes, strict=True)):
        t, p = y_true[:, j], y_pred[:, j]
        low, high = min(t.min(), p.min()), max(t.max(), p.max())
        pad = 0.05 * (high - low or 1.0)
        ax.scatter(t, p, s=size, alpha=0.3, linewidths=0, rasterized=True)
        ax.plot([low - pad, high + pad], [low - pad, high + pad], linestyle="--", color="gray")
        ax.set_xlim(low - pad, high + pad)
        ax.set_ylim(low - pad, high + pad)
        ax.set_aspect("equal")
        ax.set_xlabel(f"reference {name}")
        ax.set_ylabel(f"predicted {name}")
        ax.set_title(f"{name}: CCC {scores[j]:.3f}")
    fig.suptitle(title)
    return _save(fig, path)


def _slug(name: str, taken: set[str]) -> str:
    """A file-name-safe, unused version of a system name."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "system"
    slug, n = base, 1
    while slug in taken:
        n += 1
        slug = f"{base}_{n}"
    taken.add(slug)
    return slug


def write_report_plots(data: ReportData, directory: str | Path) -> list[Path]:
    """Write every figure of a report into ``directory``.

    Per categorical input ``confusion_<system>.png``, per posterior input also
    ``reliability_<system>.png``, per attribute input ``attributes_<system>.png``.
    """
    directory = Path(directory)
    written: list[Path] = []
    taken: set[str] = set()
    cat = data.categorical
    if cat is not None:
        k = len(cat.classes)
        for name, pred, P in zip(cat.names, cat.pred, cat.posteriors, strict=True):
            slug = _slug(name, taken)
            conf = confusion_matrix(cat.y, pred, n_classes=k)
            title = f"{name}: macro-F1 {macro_f1(cat.y, pred, n_classes=k):.3f}"
            written.append(plot_confusion(conf, cat.classes, title, directory / f"confusion_{slug}.png"))
            if P is not None:
                written.append(plot_reliability(P, cat.y, name, directory / f"reliability_{slug}.png"))
    att = data.attributes
    if att is not None:
        for name, pred in zip(att.names, att.pred, strict=True):
            slug = _slug(name, taken)
            path = directory / f"attributes_{slug}.png"
            written.append(plot_attributes(att.y, pred, att.attributes, name, path))
    return written
