"""report.html: one self-contained page that explains a finished run.

Everything comes from the run folder's own files (config.json,
history.csv, metrics.json, predictions.jsonl), so a report can be written
again for any run, in a local or a remote (`gs://...`) folder. The plots
go beside the page as PNG files too, for papers and chats; in the page
they are embedded as base64, so it opens with no network and no other
file. Every text from the data or the config is escaped: reviews contain
HTML.
"""

import base64
import csv
import dataclasses
import html
import io
import json
import os

from kft.core import files
from kft.core.errors import UserError
from kft.report import plots

REPORT_FILE = "report.html"
CURVES_FILE = "curves.png"
CONFUSION_FILE = "confusion_matrix.png"
NORMALIZED_FILE = "confusion_matrix_normalized.png"
PREDICTIONS_FILE = "predictions.jsonl"
# Left by --config.lr_find=true (kft.lr_find), shown when present.
LR_FIND_JSON, LR_FIND_PLOT = "lr_find.json", "lr_find.png"
# metrics.json fields with a section of their own; any other field is
# listed under "Other figures".
_SHOWN = {
    "split",
    "source",
    "model",
    "num_examples",
    "accuracy",
    "macro_f1",
    "per_class",
    "confusion_matrix",
    "labels",
    "timing",
    "task",
    "micro_f1",
    "subset_accuracy",
    "hamming_loss",
}
_THUMBNAIL_PIXELS = 96
_TEXT_CHARACTERS = 400


@dataclasses.dataclass
class Run:
    """A run folder's records, as read from its files.

    Args:
        folder: the run (or kft-evaluate) folder.
        config: config.json as a dict; {} where there is none.
        history: history.csv rows (dicts of floats and the phase name).
        metrics: metrics.json as a dict.
        predictions: predictions.jsonl rows; [] where there is none.
    """

    folder: str
    config: dict
    history: list
    metrics: dict
    predictions: list

    @property
    def name(self):
        return os.path.basename(os.path.normpath(self.folder))


def load(folder, config=None):
    """Reads a finished run's files; UserError if `folder` is not one."""
    path = os.path.join(folder, "metrics.json")
    if not files.exists(path):
        raise UserError(
            f"{folder} is not a finished kft run folder (no metrics.json)"
        )
    metrics = _read_json(path)
    if config is None:
        config = _read_json(os.path.join(folder, "config.json"))
    return Run(
        folder,
        config,
        read_history(os.path.join(folder, "history.csv")),
        metrics,
        _read_jsonl(os.path.join(folder, PREDICTIONS_FILE)),
    )


def _read_json(path):
    if not files.exists(path):
        return {}
    return _parsed(path, json.loads)


def _read_jsonl(path):
    if not files.exists(path):
        return []

    def parse(text):
        lines = io.StringIO(text, newline=None)
        return [json.loads(line) for line in lines if line.strip()]

    return _parsed(path, parse)


def _parsed(path, parse):
    """`parse` of the run file at `path`; UserError if it is cut off or
    not JSON (a run killed while writing it, a file edited by hand)."""
    try:
        return parse(files.read_text(path))
    except (ValueError, UnicodeDecodeError) as error:
        raise UserError(
            f"{path} is not valid JSON ({error}); rerun the command that "
            "wrote it, or leave this run out"
        ) from None


def read_history(path):
    """history.csv as rows of floats, one per epoch, in epoch order.

    A resumed run may have written an epoch twice; its last row counts.
    """
    if not files.exists(path):
        return []
    by_epoch = {}
    text = io.StringIO(files.read_text(path), newline="")
    for row in csv.DictReader(text):
        parsed = {
            key: float(value)
            for key, value in row.items()
            if key != "phase" and value not in ("", None)
        }
        parsed["phase"] = row["phase"]
        by_epoch[parsed["epoch"]] = parsed
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def phase_spans(history):
    """[(phase name, first epoch, last epoch)] in training order."""
    spans = []
    for row in history:
        epoch = int(row["epoch"])
        if spans and spans[-1][0] == row["phase"]:
            spans[-1] = (row["phase"], spans[-1][1], epoch)
        else:
            spans.append((row["phase"], epoch, epoch))
    return spans


def write(folder, config=None, mistakes=20):
    """Writes `folder`/report.html and its plots as PNG; returns the path.

    Args:
        folder: a kft-train run folder, or a kft-evaluate folder (which
            has no history; pass the run's `config` dict for it).
        config: the config dict, when `folder` has no config.json.
        mistakes: how many of the most confident mistakes to show.
    """
    run = load(folder, config)
    images = figures(run)
    for name, data in images.items():
        files.write_bytes(os.path.join(folder, name), data)
    path = os.path.join(folder, REPORT_FILE)
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
        spans = phase_spans(run.history)
        if len(peaks) != len(spans):
            peaks = []  # an early-stopped phase, or an older run folder
        images[CURVES_FILE] = plots.curves(run.history, spans, peaks)
    if "confusion_matrix" not in run.metrics:  # multilabel, regression
        return images
    matrix, labels = run.metrics["confusion_matrix"], run.metrics["labels"]
    images[CONFUSION_FILE] = plots.confusion(matrix, labels, False)
    images[NORMALIZED_FILE] = plots.confusion(matrix, labels, True)
    return images


def render(run, images, mistakes=20):
    """The whole page as one HTML string."""
    if run.metrics.get("task", "classification") != "classification":
        return _task_page(run, images)
    sections = [
        _summary(run),
        _configuration(run.config),
        _curves(run, images),
        _lr_find(run.folder),
        _per_class(run.metrics),
        _confusion(images),
        _mistakes(run, mistakes),
        _timing(run.metrics.get("timing") or {}, run.metrics),
        _other_figures(run.metrics),
    ]
    return page(f"kft run report: {run.name}", sections)


def _task_page(run, images):
    """The page of a multilabel or regression run: its figures, no
    confusion matrix or mistakes."""
    metrics = run.metrics
    per_class = ""
    if "per_class" in metrics:
        per_class = _per_class(metrics)
    sections = [
        _task_summary(run),
        _configuration(run.config),
        _curves(run, images),
        _lr_find(run.folder),
        per_class,
        _timing(metrics.get("timing") or {}, metrics),
        _other_figures(metrics),
    ]
    return page(f"kft run report: {run.name}", sections)


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


# === HTML helpers ===

_STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto;
  padding: 0 1em; color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; vertical-align: top; }
th { background: #f0f0f0; text-align: left; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
p.note { color: #555; font-size: 0.92em; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; }
img.plot { max-width: 100%; }
td.text { max-width: 560px; }
"""


def escape(value):
    return html.escape(str(value))


def page(heading, sections):
    body = "\n".join(section for section in sections if section)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(heading)}</title><style>{_STYLE}</style></head>"
        f"<body>\n<h1>{escape(heading)}</h1>\n{body}\n</body></html>\n"
    )


def section(heading, *parts):
    return f"<h2>{escape(heading)}</h2>\n" + "\n".join(parts)


def note(text):
    return f"<p class='note'>{text}</p>"


def image(data, alt, css="plot"):
    encoded = base64.b64encode(data).decode("ascii")
    return (
        f"<img class='{css}' alt='{escape(alt)}' "
        f"src='data:image/png;base64,{encoded}'>"
    )


def table(header, rows):
    """An HTML table; float cells get 4 decimals and align right."""
    head = "".join(f"<th>{escape(cell)}</th>" for cell in header)
    body = "".join(
        "<tr>" + "".join(_cell(cell) for cell in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(value):
    if isinstance(value, bool) or value is None:
        return f"<td>{escape(value)}</td>"
    if isinstance(value, float):
        return f"<td class='number'>{value:.4f}</td>"
    if isinstance(value, int):
        return f"<td class='number'>{value}</td>"
    return f"<td>{escape(value)}</td>"


def lookup(config, key):
    """A dotted key's value in a nested dict, or None."""
    node = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


# === Sections ===


def _summary(run):
    metrics = run.metrics
    count = metrics["num_examples"]
    right = round(metrics["accuracy"] * count)
    backbone = lookup(run.config, "backbone")
    plan = lookup(run.config, "plan")
    trained = ""
    if backbone:
        train = lookup(run.config, "data.train")
        trained = (
            f"kft fine-tuned <b>{escape(backbone)}</b> with the freeze plan "
            f"<b>{escape(plan)}</b> on {escape(train)}. "
        )
    text = (
        f"{trained}On the {escape(metrics['split'])} split ({count} examples"
        f" of {escape(metrics.get('source', '?'))}) it scored accuracy "
        f"<b>{metrics['accuracy']:.4f}</b> ({right} of {count} right) and "
        f"macro-F1 <b>{metrics['macro_f1']:.4f}</b>."
    )
    parts = [f"<p>{text}</p>", note(_baseline(metrics))]
    if "model" in metrics:  # a kft-evaluate folder
        parts.append(note(f"Model evaluated: {escape(metrics['model'])}."))
    parts.append(
        note(
            "Accuracy counts examples; macro-F1 averages the F1 of every "
            "class with equal weight, so a rare class counts as much as a "
            "common one. F1 is the harmonic mean of precision (of the "
            "examples given a class, the share that are that class) and "
            "recall (of the examples of a class, the share found)."
        )
    )
    return section("Summary", *parts)


def _baseline(metrics):
    """What always answering the most common test class would score."""
    support = {k: v["support"] for k, v in metrics["per_class"].items()}
    if not metrics["num_examples"]:
        return "The split is empty."
    common = max(support, key=support.get)
    share = support[common] / metrics["num_examples"]
    return (
        f"For scale: always answering the most common class "
        f"({escape(common)}) would score accuracy {share:.4f} and macro-F1 "
        f"{2 * share / (1 + share) / len(support):.4f}."
    )


# The config fields a reader looks for first; config.json has them all.
_KEY_FIELDS = (
    ("task", "task"),
    ("backbone", "backbone"),
    ("weights", "weights"),
    ("plan", "freeze plan"),
    ("head_epochs", "head epochs (two_phase, gradual)"),
    ("epochs", "epochs"),
    ("head_learning_rate", "head learning rate"),
    ("learning_rate", "learning rate"),
    ("layer_decay", "layer decay"),
    ("optimizer.name", "optimizer"),
    ("schedule.name", "schedule"),
    ("data.batch_size", "batch size"),
    ("data.sequence_length", "sequence length"),
    ("data.image_size", "image size"),
    ("class_weight", "class weights"),
    ("label_smoothing", "label smoothing"),
    ("monitor", "best epoch chosen by"),
    ("seed", "seed"),
    ("data.train", "training data"),
    ("data.validation", "validation data"),
    ("data.validation_fraction", "validation fraction held out"),
    ("data.test", "test data"),
)


def _configuration(config):
    if not config:
        return ""
    rows = []
    for key, meaning in _KEY_FIELDS:
        value = lookup(config, key)
        if value not in (None, "", 0) or key == "data.validation_fraction":
            shown = f"{value:g}" if isinstance(value, float) else value
            rows.append((meaning, key, shown))
    full = escape(json.dumps(config, indent=2, sort_keys=True))
    return section(
        "Configuration",
        table(("setting", "config key", "value"), rows),
        note(
            "Rerun with <code>kft-train --experiment=FILE</code> and "
            "<code>--config.KEY=VALUE</code> for any key below."
        ),
        f"<details><summary>config.json</summary><pre>{full}</pre></details>",
    )


def _curves(run, images):
    if CURVES_FILE not in images:
        return section(
            "Training curves",
            note(
                "No history.csv here (an evaluation folder): see the run's"
                " own report for its curves."
            ),
        )
    has_validation = any(
        key.startswith("val_") for row in run.history for key in row
    )
    parts = [
        image(images[CURVES_FILE], "loss and metric curves per epoch"),
        note(
            "One point per epoch. Solid: training data (measured while "
            "training, with dropout and augmentation on); dashed: "
            "validation data. Dotted grey, right axis: the learning rate at"
            " the end of each epoch. A dashed vertical line starts a new "
            "phase of the freeze plan, named at the top: it trains a new "
            "set of layers with its own learning-rate schedule."
        ),
    ]
    if not has_validation:
        parts.append(
            note(
                "This run had no validation data, so the last epoch's "
                "weights were kept and only training figures are drawn."
            )
        )
    return section("Training curves", *parts)


def _lr_find(folder):
    """The learning-rate range test's plot and suggestion, if one ran."""
    plot = os.path.join(folder, LR_FIND_PLOT)
    result = _read_json(os.path.join(folder, LR_FIND_JSON))
    if not result or not files.exists(plot):
        return ""
    data = files.read_bytes(plot)
    return section(
        "Learning-rate range test",
        image(data, "loss against learning rate"),
        note(
            f"Phase {escape(result.get('phase', ''))}: the loss over "
            f"{result.get('steps_run')} training steps while the rate grew "
            "exponentially, before training, from the same weights. "
            f"Suggested peak rate {result.get('suggestion', 0):.2g} "
            f"({escape(result.get('rule', ''))}). "
            f"{escape(result.get('note') or '')}"
        ),
    )


def _per_class(metrics):
    per_class = metrics["per_class"]
    known = ["precision", "recall", "f1", "support"]
    extra = sorted({k for row in per_class.values() for k in row} - set(known))
    columns = known + extra
    rows = [
        [label] + [values.get(column) for column in columns]
        for label, values in per_class.items()
    ]
    rows.append(_average_row(per_class, metrics["num_examples"]))
    weakest = min(per_class, key=lambda label: per_class[label]["f1"])
    return section(
        "Per-class precision, recall and F1",
        table(["class"] + columns, rows),
        note(
            f"Weakest class by F1: <b>{escape(weakest)}</b> "
            f"({per_class[weakest]['f1']:.4f}). Support is the number of "
            "test examples of the class."
        ),
    )


def _average_row(per_class, count):
    """Unweighted means over classes (the last is macro-F1), total support."""
    means = [
        sum(row[key] for row in per_class.values()) / len(per_class)
        for key in ("precision", "recall", "f1")
    ]
    return ["macro average", *means, count]


def _confusion(images):
    return section(
        "Confusion matrix",
        image(images[CONFUSION_FILE], "confusion matrix, counts"),
        image(images[NORMALIZED_FILE], "confusion matrix, row-normalized"),
        note(
            "Rows are the true classes, columns the predicted ones; the "
            "diagonal holds the right answers. The row-normalized matrix "
            "divides each row by its class's count, so its diagonal is each"
            " class's recall and the rest of a row says where that class's "
            "examples went."
        ),
    )


def _mistakes(run, count):
    if not run.predictions:
        return section(
            "Most confident mistakes",
            note(f"No {PREDICTIONS_FILE} in this folder."),
        )
    wrong = [row for row in run.predictions if row["label"] != row["predicted"]]
    wrong.sort(key=lambda row: -row["probability"])
    if not wrong:
        return section("Most confident mistakes", note("No mistakes."))
    rows = [_mistake_row(row) for row in wrong[:count]]
    header = (
        "<tr><th>#</th><th>input</th><th>true label</th><th>predicted</th>"
        "<th>confidence</th><th>P(true label)</th></tr>"
    )
    return section(
        "Most confident mistakes",
        note(
            f"{len(wrong)} of {len(run.predictions)} test examples are "
            f"wrong; the {len(rows)} the model was surest of follow. These "
            "are often labelling errors or genuinely ambiguous examples; "
            f"{PREDICTIONS_FILE} in the run folder has every prediction."
        ),
        f"<table>{header}{''.join(rows)}</table>",
    )


def _mistake_row(row):
    if "text" in row:
        # Entities such as &#039; as the model saw them, after cleaning.
        text = html.unescape(row["text"])
        if len(text) > _TEXT_CHARACTERS:
            text = text[:_TEXT_CHARACTERS] + " ..."
        shown = escape(text)
    elif "image" in row:
        shown = _thumbnail(row["image"])
    else:
        shown = "(encoded image, not kept)"
    return (
        f"<tr><td class='number'>{row['index']}</td>"
        f"<td class='text'>{shown}</td><td>{escape(row['label'])}</td>"
        f"<td>{escape(row['predicted'])}</td>"
        f"<td class='number'>{row['probability']:.3f}</td>"
        f"<td class='number'>{row.get('label_probability', 0):.3f}</td></tr>"
    )


def _thumbnail(path):
    """A small embedded copy of the image at `path`, and its file name."""
    from PIL import Image

    name = escape(os.path.basename(path))
    try:
        with Image.open(io.BytesIO(files.read_bytes(path))) as picture:
            picture = picture.convert("RGB")
            picture.thumbnail((_THUMBNAIL_PIXELS, _THUMBNAIL_PIXELS))
            buffer = io.BytesIO()
            picture.save(buffer, format="PNG")
    except (OSError, files.Error):
        return f"{name} (unreadable)"
    return image(buffer.getvalue(), path, "thumbnail") + f"<br>{name}"


def _timing(timing, metrics):
    if not timing:
        return ""
    rows = [
        (
            f"phase {phase['phase']}",
            phase["epochs"],
            _rate(phase.get("learning_rate")),
            f"{phase['seconds']:.1f}",
            f"{phase['seconds'] / max(phase['epochs'], 1):.1f}",
        )
        for phase in timing.get("phases", [])
    ]
    steps = (
        ("reading the data, building the model", timing.get("prepare_seconds")),
        ("evaluating the test split", timing.get("evaluate_seconds")),
        (
            "export and its check",
            (metrics.get("export") or {}).get("export_seconds"),
        ),
        ("the whole run", timing.get("total_seconds")),
    )
    rows += [
        (step, "", "", f"{seconds:.1f}", "")
        for step, seconds in steps
        if seconds
    ]
    best = timing.get("best_epoch")
    kept = (
        f"The weights kept are those of epoch {best} (best by the monitored "
        f"metric, {timing['best_value']:.4f})."
        if best
        else "No validation data: the weights kept are the last epoch's."
    )
    return section(
        "Timing",
        table(
            ("step", "epochs", "peak learning rate", "seconds", "s/epoch"),
            rows,
        ),
        note(kept),
    )


def _rate(value):
    return "" if value is None else f"{value:g}"


def other_figures(metrics):
    """metrics.json's fields without a section, flattened one level."""
    rows = []
    for key, value in metrics.items():
        if key in _SHOWN:
            continue
        if isinstance(value, dict):
            rows += [
                (f"{key}.{inner}", item)
                for inner, item in value.items()
                if _is_scalar(item)
            ]
        elif _is_scalar(value):
            rows.append((key, value))
    return rows


def _is_scalar(value):
    return isinstance(value, (int, float, str, bool)) or value is None


def _other_figures(metrics):
    rows = other_figures(metrics)
    if not rows:
        return ""
    return section(
        "Other figures",
        table(("metrics.json field", "value"), rows),
        note("Further fields of metrics.json, as recorded."),
    )


def write_task_page(folder, summary, sections, shown=(), config=None):
    """report.html of a run of another task (NER, QA, causal LM).

    Args:
        folder: the run folder, or a kft-evaluate folder (with `config`).
        summary: run -> the summary section's HTML.
        sections: run -> the task's own sections, shown after the
            configuration and curves.
        shown: metrics.json fields those sections cover; the rest are
            listed under "Other figures".
        config: the run's config dict, when `folder` has no config.json.
    """
    run = load(folder, config)
    images = {}
    if run.history:
        spans = phase_spans(run.history)
        images[CURVES_FILE] = plots.curves(run.history, spans, [])
    for name, data in images.items():
        files.write_bytes(os.path.join(folder, name), data)
    metrics = run.metrics
    kept = {k: v for k, v in metrics.items() if k not in {*shown, "timing"}}
    rows = other_figures(kept)
    parts = [
        summary(run),
        _configuration(run.config),
        _curves(run, images),
        *sections(run),
        _timing(metrics.get("timing") or {}, metrics),
        section("Other figures", table(("metrics.json field", "value"), rows))
        if rows
        else "",
    ]
    path = os.path.join(folder, REPORT_FILE)
    files.write_text(path, page(f"kft run report: {run.name}", parts))
    return path
