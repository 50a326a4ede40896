"""The figures of report.html and compare.html, drawn to PNG bytes.

Figures are made with `matplotlib.figure.Figure` and its Agg canvas, never
pyplot: no window, no global backend switched for whoever imports kft, and
nothing that needs a display. Each function returns the PNG file's bytes,
which the report both writes beside report.html and embeds in it.
"""

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from kft.core import files

# Metrics drawn first, in this order; any other history column follows.
_FIRST = ("loss", "accuracy", "macro_f1")
_TITLES = {"loss": "loss", "accuracy": "accuracy", "macro_f1": "macro-F1"}
# Past this many classes the cell numbers would be unreadable.
_MAX_ANNOTATED_CLASSES = 25


def metric_names(columns):
    """The metrics of history columns, without `val_`, `_FIRST` first."""
    names = {c.removeprefix("val_") for c in columns}
    names -= {"phase", "epoch", "learning_rate"}
    return [n for n in _FIRST if n in names] + sorted(names - set(_FIRST))


def title(metric):
    return _TITLES.get(metric, metric.replace("_", " "))


def _column(history, key):
    return np.array([row.get(key, np.nan) for row in history], dtype=np.float64)


def _phase_marks(axes, spans, peaks):
    """A dashed line where each phase starts; its name and peak rate on top."""
    for index, (name, first, last) in enumerate(spans):
        if index:
            axes.axvline(first - 0.5, color="0.4", linestyle="--", lw=1)
        label = name
        if index < len(peaks):
            label += f"\npeak lr {peaks[index]:.0e}"
        axes.text(
            (first + last) / 2,
            1.01,
            label,
            transform=axes.get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize=8,
            color="0.3",
        )


def curves(history, spans, peaks=()):
    """Training and validation curves per epoch, one panel per metric.

    The learning rate at each epoch's end is drawn dotted, on a second axis.

    Args:
        history: history.csv rows as dicts of floats, one per epoch.
        spans: (phase name, first epoch, last epoch) of each phase.
        peaks: each phase's peak learning rate, where known.
    """
    names = metric_names(history[0])
    epochs = _column(history, "epoch")
    rate = _column(history, "learning_rate")
    columns = min(3, len(names))
    rows = -(-len(names) // columns)
    figure = Figure(figsize=(4.6 * columns, 3.3 * rows), layout="constrained")
    for index, name in enumerate(names):
        axes = figure.add_subplot(rows, columns, index + 1)
        rate_axes = axes.twinx()
        rate_axes.plot(epochs, rate, color="0.6", ls=":", marker=".")
        rate_axes.set_ylim(bottom=0)
        rate_axes.yaxis.set_major_formatter("{x:.1e}")
        rate_axes.tick_params(axis="y", labelsize=7, colors="0.5")
        if index % columns == columns - 1 or index == len(names) - 1:
            rate_axes.set_ylabel("learning rate (dotted)", color="0.5")
        for key, style, label in (
            (name, "-o", "training"),
            (f"val_{name}", "--s", "validation"),
        ):
            values = _column(history, key)
            if not np.all(np.isnan(values)):
                axes.plot(epochs, values, style, label=label, ms=4)
        axes.set_zorder(rate_axes.get_zorder() + 1)
        axes.patch.set_visible(False)
        _phase_marks(axes, spans, peaks)
        axes.set_xlabel("epoch")
        axes.set_ylabel(title(name))
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8, loc="best")
    return files.png_bytes(figure)


def confusion(matrix, labels, normalized):
    """The confusion matrix as a heat map: counts, or rows scaled to 1."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if normalized:
        totals = matrix.sum(axis=1, keepdims=True)
        matrix = np.divide(
            matrix, totals, out=np.zeros_like(matrix), where=totals > 0
        )
    count = len(labels)
    side = min(max(4.0, 0.45 * count + 2.5), 20.0)
    figure = Figure(figsize=(side + 1.2, side), layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(
        matrix, cmap="Blues", vmin=0, vmax=1 if normalized else None
    )
    figure.colorbar(image, ax=axes, shrink=0.8)
    names = [str(label)[:20] for label in labels]
    if count <= 60:
        axes.set_xticks(range(count), names, rotation=45, ha="right")
        axes.set_yticks(range(count), names)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(
        "row-normalized (diagonal = recall)" if normalized else "counts"
    )
    if count <= _MAX_ANNOTATED_CLASSES:
        _annotate(axes, matrix, normalized)
    return files.png_bytes(figure)


def _annotate(axes, matrix, normalized):
    middle = matrix.max() / 2 if matrix.size else 0
    for (row, column), value in np.ndenumerate(matrix):
        axes.text(
            column,
            row,
            f"{value:.2f}" if normalized else f"{int(value)}",
            ha="center",
            va="center",
            fontsize=8,
            color="white" if value > middle else "black",
        )


def overlay(histories, metrics):
    """One panel per metric, one line per run: the runs' curves overlaid.

    Args:
        histories: {run name: history rows}.
        metrics: history columns to draw (such as "val_macro_f1").
    """
    figure = Figure(figsize=(4.6 * len(metrics), 3.4), layout="constrained")
    for index, metric in enumerate(metrics):
        axes = figure.add_subplot(1, len(metrics), index + 1)
        for name, history in histories.items():
            values = _column(history, metric)
            if history and not np.all(np.isnan(values)):
                axes.plot(_column(history, "epoch"), values, "-o", label=name)
        base = metric.removeprefix("val_")
        where = "validation" if metric.startswith("val_") else "training"
        axes.set_title(f"{where} {title(base)}")
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    return files.png_bytes(figure)
