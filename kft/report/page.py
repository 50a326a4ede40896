"""report.html: one self-contained page that explains a finished run.

Everything comes from the run folder's own files (config.json,
history.csv, metrics.json, predictions.jsonl), so a report can be written
again for any run, in a local or a remote (`gs://...`) folder. The plots
go beside the page as PNG files too, for papers and chats; in the page
they are embedded as base64, so it opens with no network and no other
file. Every text from the data or the config is escaped: reviews contain
HTML.
"""

import os

from kft.core import files
from kft.report import plots, run_files, sections
from kft.report.markup import escape, note, page, section, table


def write(folder, config=None, mistakes=20):
    """Writes `folder`/report.html and its plots as PNG; returns the path.

    Args:
        folder: a kft-train run folder, or a kft-evaluate folder (which
            has no history; pass the run's `config` dict for it).
        config: the config dict, when `folder` has no config.json.
        mistakes: how many of the most confident mistakes to show.
    """
    run = run_files.load(folder, config)
    images = figures(run)
    for name, data in images.items():
        files.write_bytes(os.path.join(folder, name), data)
    path = os.path.join(folder, run_files.REPORT_FILE)
    files.write_text(path, render(run, images, mistakes))
    return path


def figures(run):
    """{PNG file name: PNG bytes} of the run's plots."""
    images = {}
    if run.history:
        timing = run.metrics.get("timing") or {}
        peaks = [
            phase["learning_rate"]
            for phase in timing.get("phases", [])
            if "learning_rate" in phase
        ]
        spans = run_files.phase_spans(run.history)
        if len(peaks) != len(spans):
            peaks = []  # an early-stopped phase, or an older run folder
        images[run_files.CURVES_FILE] = plots.curves(run.history, spans, peaks)
    if "confusion_matrix" not in run.metrics:  # multilabel, regression
        return images
    matrix, labels = run.metrics["confusion_matrix"], run.metrics["labels"]
    images[run_files.CONFUSION_FILE] = plots.confusion(matrix, labels, False)
    images[run_files.NORMALIZED_FILE] = plots.confusion(matrix, labels, True)
    return images


def render(run, images, mistakes=20):
    """The whole page as one HTML string."""
    if run.metrics.get("task", "classification") != "classification":
        return _task_page(run, images)
    parts = [
        sections.summary(run),
        sections.configuration(run.config),
        sections.curves(run, images),
        sections.lr_find(run.folder),
        sections.per_class(run.metrics),
        sections.confusion(images),
        sections.mistakes(run, mistakes),
        sections.timing(run.metrics.get("timing") or {}, run.metrics),
        sections.other_figures_section(run.metrics),
    ]
    return page(f"kft run report: {run.name}", parts)


def _task_page(run, images):
    """The page of a multilabel or regression run: its figures, no
    confusion matrix or mistakes."""
    metrics = run.metrics
    per_class = ""
    if "per_class" in metrics:
        per_class = sections.per_class(metrics)
    parts = [
        _task_summary(run),
        sections.configuration(run.config),
        sections.curves(run, images),
        sections.lr_find(run.folder),
        per_class,
        sections.timing(metrics.get("timing") or {}, metrics),
        sections.other_figures_section(metrics),
    ]
    return page(f"kft run report: {run.name}", parts)


_TASK_FIGURES = {
    "multilabel": (
        ("micro_f1", "micro-F1"),
        ("macro_f1", "macro-F1"),
        ("subset_accuracy", "subset accuracy"),
        ("hamming_loss", "Hamming loss"),
    ),
    "regression": (
        ("mae", "MAE"),
        ("rmse", "RMSE"),
        ("pearson", "Pearson r"),
        ("spearman", "Spearman rho"),
    ),
}


def _task_summary(run):
    metrics = run.metrics
    shown = ", ".join(
        f"{name} <b>{metrics[key]:.4f}</b>"
        for key, name in _TASK_FIGURES[metrics["task"]]
        if metrics.get(key) is not None
    )
    text = (
        f"Task {escape(metrics['task'])}: on the {escape(metrics['split'])} "
        f"split ({metrics['num_examples']} examples of "
        f"{escape(metrics.get('source', '?'))}): {shown}."
    )
    parts = [f"<p>{text}</p>"]
    if "model" in metrics:  # a kft-evaluate folder
        parts.append(note(f"Model evaluated: {escape(metrics['model'])}."))
    return section("Summary", *parts)


def write_task_page(folder, summary, task_sections, shown=(), config=None):
    """report.html of a run of another task (NER, QA, causal LM).

    Args:
        folder: the run folder, or a kft-evaluate folder (with `config`).
        summary: run -> the summary section's HTML.
        task_sections: run -> the task's own sections, shown after the
            configuration and curves.
        shown: metrics.json fields those sections cover; the rest are
            listed under "Other figures".
        config: the run's config dict, when `folder` has no config.json.
    """
    run = run_files.load(folder, config)
    images = {}
    if run.history:
        spans = run_files.phase_spans(run.history)
        images[run_files.CURVES_FILE] = plots.curves(run.history, spans, [])
    for name, data in images.items():
        files.write_bytes(os.path.join(folder, name), data)
    metrics = run.metrics
    kept = {k: v for k, v in metrics.items() if k not in {*shown, "timing"}}
    rows = sections.other_figures(kept)
    parts = [
        summary(run),
        sections.configuration(run.config),
        sections.curves(run, images),
        *task_sections(run),
        sections.timing(metrics.get("timing") or {}, metrics),
        section("Other figures", table(("metrics.json field", "value"), rows))
        if rows
        else "",
    ]
    path = os.path.join(folder, run_files.REPORT_FILE)
    files.write_text(path, page(f"kft run report: {run.name}", parts))
    return path
