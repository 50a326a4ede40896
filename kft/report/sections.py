"""The sections of report.html, each from a run's records: summary,
configuration, curves, learning-rate test, per-class table, confusion
matrix, mistakes, timing and the figures no section shows."""

import html
import io
import json
import os

from kft.core import files
from kft.report import run_files
from kft.report.markup import escape, image, lookup, note, section, table

# metrics.json fields with a section of their own; any other field is
# listed under "Other figures".
SHOWN = {
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
    "interval",
    "micro_f1",
    "subset_accuracy",
    "hamming_loss",
}

_THUMBNAIL_PIXELS = 96
_TEXT_CHARACTERS = 400


def summary(run):
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
    parts = [f"<p>{text}</p>", note(baseline(metrics))]
    if metrics.get("interval"):
        parts.append(note(escape(interval_line(metrics["interval"])) + "."))
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


def interval_line(interval):
    """The interval as one line of the printed table."""
    accuracy, f1 = interval["accuracy"], interval["macro_f1"]
    return (
        f"{interval['level']:.0%} interval over these examples (bootstrap): "
        f"accuracy {accuracy[0]:.4f}-{accuracy[1]:.4f}, macro-F1 "
        f"{f1[0]:.4f}-{f1[1]:.4f}; another seed moves the figures too "
        "(kft-benchmark accuracy measures it)"
    )


def baseline(metrics):
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
    ("trained_on", "trained on"),
    ("precision", "precision"),
    ("jit_compile", "XLA (jit_compile)"),
    ("steps_per_execution", "steps per call"),
    ("data.train", "training data"),
    ("data.validation", "validation data"),
    ("data.validation_fraction", "validation fraction held out"),
    ("data.test", "test data"),
)


def configuration(config):
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


def curves(run, images):
    if run_files.CURVES_FILE not in images:
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
        image(
            images[run_files.CURVES_FILE], "loss and metric curves per epoch"
        ),
        note(
            "One point per epoch. Solid: training data (measured while "
            "training, with dropout and augmentation on); dashed: "
            "validation data. Dotted grey, right axis: the learning rate at"
            " the end of each epoch. A dashed vertical line starts a new "
            "phase of the freeze plan, named at the top: it trains a new "
            "set of layers with its own learning-rate schedule."
        ),
    ]
    members = lookup(run.config, "ensemble") or 1
    if members > 1:
        seed = lookup(run.config, "seed")
        paths = [f"members/{k}/history.csv" for k in range(1, members)]
        shown = (
            ", ".join(paths) if len(paths) < 4 else f"{paths[0]} to {paths[-1]}"
        )
        parts.append(
            note(
                f"A seed ensemble: these are member 1 of {members} (seed "
                f"{seed}); the other members' curves are in the run "
                f"folder's {shown}."
                " The test figures are the averaged ensemble's."
            )
        )
    if not has_validation:
        parts.append(
            note(
                "This run had no validation data, so the last epoch's "
                "weights were kept and only training figures are drawn."
            )
        )
    return section("Training curves", *parts)


def lr_find(folder):
    """The learning-rate range test's plot and suggestion, if one ran."""
    plot = os.path.join(folder, run_files.LR_FIND_PLOT)
    result = run_files.read_json(os.path.join(folder, run_files.LR_FIND_JSON))
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


def per_class(metrics):
    per_class = metrics["per_class"]
    known = ["precision", "recall", "f1", "support"]
    extra = sorted({k for row in per_class.values() for k in row} - set(known))
    columns = known + extra
    rows = [
        [label] + [values.get(column) for column in columns]
        for label, values in per_class.items()
    ]
    rows.append(average_row(per_class, metrics["num_examples"]))
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


def average_row(per_class, count):
    """Unweighted means over classes (the last is macro-F1), total support."""
    means = [
        sum(row[key] for row in per_class.values()) / len(per_class)
        for key in ("precision", "recall", "f1")
    ]
    return ["macro average", *means, count]


def confusion(images):
    return section(
        "Confusion matrix",
        image(images[run_files.CONFUSION_FILE], "confusion matrix, counts"),
        image(
            images[run_files.NORMALIZED_FILE],
            "confusion matrix, row-normalized",
        ),
        note(
            "Rows are the true classes, columns the predicted ones; the "
            "diagonal holds the right answers. The row-normalized matrix "
            "divides each row by its class's count, so its diagonal is each"
            " class's recall and the rest of a row says where that class's "
            "examples went."
        ),
    )


def mistakes(run, count):
    if not run.predictions:
        return section(
            "Most confident mistakes",
            note(f"No {run_files.PREDICTIONS_FILE} in this folder."),
        )
    wrong = [row for row in run.predictions if row["label"] != row["predicted"]]
    wrong.sort(key=lambda row: -row["probability"])
    if not wrong:
        return section("Most confident mistakes", note("No mistakes."))
    rows = [mistake_row(row) for row in wrong[:count]]
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
            f"{run_files.PREDICTIONS_FILE} in the run folder has every "
            "prediction."
        ),
        f"<table>{header}{''.join(rows)}</table>",
    )


def _shown_text(text):
    # Entities such as &#039; as the model saw them, after cleaning.
    text = html.unescape(text)
    if len(text) > _TEXT_CHARACTERS:
        text = text[:_TEXT_CHARACTERS] + " ..."
    return escape(text)


def mistake_row(row):
    if "text" in row:
        shown = _shown_text(row["text"])
        if "text_pair" in row:  # a pair's second text, on its own line
            shown += "<br>" + _shown_text(row["text_pair"])
    elif "image" in row:
        shown = thumbnail(row["image"])
    else:
        shown = "(encoded image, not kept)"
    return (
        f"<tr><td class='number'>{row['index']}</td>"
        f"<td class='text'>{shown}</td><td>{escape(row['label'])}</td>"
        f"<td>{escape(row['predicted'])}</td>"
        f"<td class='number'>{row['probability']:.3f}</td>"
        f"<td class='number'>{row.get('label_probability', 0):.3f}</td></tr>"
    )


def thumbnail(path):
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


def timing(timing, metrics):
    if not timing:
        return ""
    rows = [
        (
            f"phase {phase['phase']}",
            phase["epochs"],
            rate(phase.get("learning_rate")),
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


def rate(value):
    return "" if value is None else f"{value:g}"


def other_figures(metrics):
    """metrics.json's fields without a section, flattened one level."""
    rows = []
    for key, value in metrics.items():
        if key in SHOWN:
            continue
        if isinstance(value, dict):
            rows += [
                (f"{key}.{inner}", item)
                for inner, item in value.items()
                if is_scalar(item)
            ]
        elif is_scalar(value):
            rows.append((key, value))
    return rows


def is_scalar(value):
    return isinstance(value, (int, float, str, bool)) or value is None


def other_figures_section(metrics):
    rows = other_figures(metrics)
    if not rows:
        return ""
    return section(
        "Other figures",
        table(("metrics.json field", "value"), rows),
        note("Further fields of metrics.json, as recorded."),
    )
