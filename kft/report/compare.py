"""kft-compare: several finished runs side by side, and which one won.

Each run is read from its folder's files (kft.report.run_files.load). The
winner is chosen on validation, never on the test split, wherever every run
has validation figures: the highest validation macro-F1 of the epoch each
run kept (the best by its monitor; validation accuracy breaks ties), and
the test figures are reported beside it. Where a run has none (no
validation data), the test macro-F1 decides, and the verdict says so and
why. Macro-F1 is the figure kft selects epochs by, and unlike accuracy it
is not carried by the most common class. The table goes to the terminal;
compare.html holds it too, with the runs' validation curves overlaid
(training curves where no run had validation data).
"""

import dataclasses
import math
import os

from kft.core import files
from kft.core.errors import UserError
from kft.report import markup, plots, run_files

DECIDING_METRIC = "macro_f1"


@dataclasses.dataclass
class Row:
    """One run's line of the comparison."""

    name: str
    plan: str
    backbone: str
    learning_rates: str
    best_validation: str
    accuracy: float
    macro_f1: float
    seconds: float
    # Of the epoch the run kept; nan without validation figures.
    validation_f1: float = math.nan
    validation_accuracy: float = math.nan


def summarize(run, name):
    """The comparison `Row` of a `run_files.Run`."""
    config, metrics = run.config, run.metrics
    task = metrics.get("task", "classification")
    if task != "classification":  # no accuracy to rank by
        raise UserError(
            f"{run.folder} is a {task} run; kft-compare compares "
            "classification runs (compare their metrics.json figures)"
        )
    backbone = str(config.get("backbone", "?"))
    validation_f1, validation_accuracy = kept_validation(run)
    return Row(
        name=name,
        plan=str(config.get("plan", "?")),
        backbone=os.path.basename(os.path.normpath(backbone)) or backbone,
        learning_rates=learning_rates(run),
        best_validation=best_validation(run),
        accuracy=metrics["accuracy"],
        macro_f1=metrics["macro_f1"],
        seconds=(metrics.get("timing") or {}).get("total_seconds", math.nan),
        validation_f1=validation_f1,
        validation_accuracy=validation_accuracy,
    )


def kept_validation(run):
    """(validation macro-F1, validation accuracy) of the epoch the run
    kept: the best by its monitor where that is a validation figure, else
    the last; (nan, nan) where it has no validation figures."""
    rows = [row for row in run.history if "val_macro_f1" in row]
    if not rows:
        return math.nan, math.nan
    monitor = run.config.get("monitor", "val_macro_f1")
    kept = rows[-1]
    if monitor.startswith("val_") and all(monitor in row for row in rows):
        pick = min if monitor.endswith("loss") else max
        kept = pick(rows, key=lambda row: row[monitor])
    return kept["val_macro_f1"], kept.get("val_accuracy", math.nan)


def learning_rates(run):
    """Each phase's peak learning rate, as "head 0.001, full 0.0001"."""
    phases = (run.metrics.get("timing") or {}).get("phases", [])
    if phases and all("learning_rate" in phase for phase in phases):
        return ", ".join(
            f"{phase['phase']} {phase['learning_rate']:g}" for phase in phases
        )
    config = run.config  # a run folder older than the recorded rates
    head, rate = config.get("head_learning_rate"), config.get("learning_rate")
    if config.get("plan") == "linear_probe":
        return f"head {head:g}"
    if config.get("plan") == "full":
        return f"full {rate:g}"
    return f"head {head:g}, then {rate:g}"


def best_validation(run):
    """The best epoch's monitored validation figure, or "-" without one."""
    monitor = run.config.get("monitor", "val_macro_f1")
    values = [
        (row[monitor], int(row["epoch"]))
        for row in run.history
        if monitor in row and monitor.startswith("val_")
    ]
    if not values:
        return "-"
    pick = min if monitor.endswith("loss") else max
    value, epoch = pick(values, key=lambda item: item[0])
    return f"{monitor} {value:.4f} (epoch {epoch})"


def names(folders):
    """Short run names: folder names, or the paths given where they clash."""
    short = [os.path.basename(os.path.normpath(f)) for f in folders]
    if len(set(short)) < len(short):
        return [os.path.normpath(f) for f in folders]
    return short


def on_validation(rows):
    """Whether every run has validation figures to choose on."""
    return all(not math.isnan(row.validation_f1) for row in rows)


def winner(rows):
    """The best row: by validation figures where every run has them,
    else by test figures."""
    return max(rows, key=_ranking(rows))


def tied(rows):
    """The rows that rank equal with the best (one where there is a
    winner): the order the folders were given must not decide."""
    key = _ranking(rows)
    best = key(winner(rows))
    return [row for row in rows if key(row) == best]


def _ranking(rows):
    if on_validation(rows):
        return lambda row: (
            row.validation_f1,
            _or_low(row.validation_accuracy),
        )
    return lambda row: (row.macro_f1, row.accuracy)


def _or_low(value):
    return -math.inf if math.isnan(value) else value


_HEADER = (
    "run",
    "plan",
    "backbone",
    "learning rates",
    "best validation",
    "val macro-F1",
    "test accuracy",
    "test macro-F1",
    "time (s)",
)


def cells(row):
    return (
        row.name,
        row.plan,
        row.backbone,
        row.learning_rates,
        row.best_validation,
        "-" if math.isnan(row.validation_f1) else f"{row.validation_f1:.4f}",
        f"{row.accuracy:.4f}",
        f"{row.macro_f1:.4f}",
        "-" if math.isnan(row.seconds) else f"{row.seconds:.0f}",
    )


def format_table(rows):
    """The comparison as a plain-text table for the terminal."""
    lines = [_HEADER] + [cells(row) for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(_HEADER))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip()
        for line in lines
    )


def verdict(rows, runs):
    """Sentences naming the winner, by how much, and what to keep in mind."""
    best = winner(rows)
    level = tied(rows)
    if len(level) > 1:
        text = _tie_verdict(level, on_validation(rows))
    elif on_validation(rows):
        text = _validation_verdict(rows, best)
    else:
        text = _test_verdict(rows, best)
    tests = {(r.metrics.get("source"), r.metrics["num_examples"]) for r in runs}
    if len(tests) > 1:
        text += (
            " Caution: the runs were tested on different data, so their "
            "figures do not compare directly."
        )
    else:
        count = runs[0].metrics["num_examples"]
        spread = math.sqrt(best.accuracy * (1 - best.accuracy) / max(count, 1))
        text += (
            f" On {count} test examples, accuracy's standard error is about "
            f"{spread:.3f}; a smaller gap may be chance (a rerun with another "
            "--config.seed tells)."
        )
    return text


def _tie_verdict(level, validation):
    names = sorted(row.name for row in level)
    who = ", ".join(names[:-1]) + f" and {names[-1]}"
    row = level[0]
    if validation:
        figures = f"validation macro-F1 {row.validation_f1:.4f}"
        if not math.isnan(row.validation_accuracy):
            figures += f" and accuracy {row.validation_accuracy:.4f}"
    else:
        figures = (
            f"test macro-F1 {row.macro_f1:.4f} and accuracy {row.accuracy:.4f}"
        )
    return (
        f"No single winner: {who} tie on {figures} (the figures that choose;"
        " test figures are in the table)."
    )


def _validation_verdict(rows, best):
    text = (
        "Winner by validation macro-F1 (of the epoch each run kept; "
        "validation accuracy breaks ties; the test split decided nothing, "
        f"its figures are reported): {best.name} ({best.plan}), validation "
        f"macro-F1 {best.validation_f1:.4f}; test macro-F1 "
        f"{best.macro_f1:.4f}, test accuracy {best.accuracy:.4f}."
    )
    others = sorted(
        (row for row in rows if row is not best),
        key=lambda row: -row.validation_f1,
    )
    if others:
        second = others[0]
        gap = second.validation_f1 - best.validation_f1
        text += (
            f" Next: {second.name} ({second.plan}), validation macro-F1 "
            f"{second.validation_f1:.4f} ({gap:+.4f}); test macro-F1 "
            f"{second.macro_f1:.4f}."
        )
    return text


def _test_verdict(rows, best):
    missing = [row.name for row in rows if math.isnan(row.validation_f1)]
    shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
    verb = "has" if len(missing) == 1 else "have"
    text = (
        "Winner by test macro-F1 (the test split decides because "
        f"{shown} {verb} no validation figures; accuracy breaks ties): "
        f"{best.name} ({best.plan}), macro-F1 {best.macro_f1:.4f}, "
        f"accuracy {best.accuracy:.4f}."
    )
    others = sorted(
        (row for row in rows if row is not best),
        key=lambda row: -row.macro_f1,
    )
    if others:
        second = others[0]
        text += (
            f" Next: {second.name} ({second.plan}), macro-F1 "
            f"{second.macro_f1:.4f} ({second.macro_f1 - best.macro_f1:+.4f})."
        )
    return text


def overlay_metrics(runs):
    """The history columns to overlay: validation ones where any run has
    them, else training ones."""
    columns = {key for run in runs for row in run.history for key in row}
    names = [n for n in ("macro_f1", "accuracy", "loss") if n in columns]
    if any(f"val_{name}" in columns for name in names):
        return [f"val_{name}" for name in names]
    return names


def write_html(runs, rows, text, path):
    """Writes compare.html (self-contained) and its plot beside it."""
    files.makedirs(os.path.dirname(path) or ".")
    metrics = overlay_metrics(runs)
    parts = [markup.section("Winner", f"<p>{markup.escape(text)}</p>")]
    parts.append(
        markup.section(
            "Runs",
            markup.table(_HEADER, [cells(row) for row in rows]),
            markup.note(
                "best validation: the monitored figure of the best epoch (kft "
                "keeps that epoch's weights); '-' where the run had no "
                "validation data and kept its last epoch. Test figures are on "
                "each run's test split; time is the whole kft-train run."
            ),
        )
    )
    if metrics:
        histories = {row.name: run.history for row, run in zip(rows, runs)}
        data = plots.overlay(histories, metrics)
        files.write_bytes(os.path.splitext(path)[0] + ".png", data)
        where = "validation" if metrics[0].startswith("val_") else "training"
        parts.append(
            markup.section(
                f"{where.capitalize()} curves",
                markup.image(data, f"{where} curves of every run"),
                markup.note(
                    "No run had validation data; these are training "
                    "figures, measured with dropout on."
                    if where == "training"
                    else "One line per run, one point per epoch."
                ),
            )
        )
    folders = [
        f"<li>{markup.escape(row.name)}: "
        f"{markup.escape(_full_path(run.folder))}</li>"
        for row, run in zip(rows, runs)
    ]
    parts.append(markup.section("Run folders", f"<ul>{''.join(folders)}</ul>"))
    files.write_text(path, markup.page("kft-compare", parts))


def _full_path(folder):
    return os.path.abspath(folder) if files.is_local(folder) else folder


def compare(folders, output):
    """Prints the comparison of the run `folders`, writes `output` (HTML).

    Returns the rows, in the order of `folders`.
    """
    if files.isdir(output):
        raise UserError(
            f"--output {output} is a folder; give the HTML file to write "
            "(such as compare.html)"
        )
    runs = [run_files.load(folder) for folder in folders]
    rows = [summarize(run, name) for run, name in zip(runs, names(folders))]
    text = verdict(rows, runs)
    print(format_table(rows))
    print()
    print(text)
    write_html(runs, rows, text, output)
    print(f"kft: wrote {output}")
    return rows
