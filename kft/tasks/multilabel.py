"""Multi-label classification: a set of labels per example.

One sigmoid per label, trained with binary cross-entropy. Each label
decides with its own threshold on its probability (P >= threshold), chosen
by `--config.eval.threshold` as two-class runs choose theirs
(kft/tasks/classification/threshold.py): `auto` tunes each label's threshold for
that label's
F1 on the validation split (0.5 for a label without a validation example,
or without validation data), a number fixes all, `argmax` is 0.5 for all.
The run writes them to thresholds.json; metrics, kft-evaluate and the
export's decisions use them.

`report` gives metrics.json's figures: micro- and macro-averaged F1 (and
precision and recall), per-label precision, recall, F1 and support, subset
accuracy (the whole set right) and Hamming loss (the share of wrong
label decisions); tested against scikit-learn.
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf

from kft.core import files
from kft.core.run_folder import PREDICTIONS_FILE, write_jsonl
from kft.core.run_folder import log as _log
from kft.data import targets
from kft.model import heads
from kft.serving import parity
from kft.tasks import labelled
from kft.tasks.classification import threshold as threshold_lib
from kft.tasks.classification.metrics import safe_divide

THRESHOLDS_FILE = "thresholds.json"
# Keras metric names during training (history.csv, --config.monitor).
METRICS = ("loss", "micro_f1", "macro_f1")
HALF = 0.5


def loss(config):
    smoothing = config.label_smoothing

    def multilabel_loss(labels, probabilities):
        labels = keras.ops.cast(labels, probabilities.dtype)
        return keras.losses.binary_crossentropy(
            labels, probabilities, label_smoothing=smoothing
        )

    return multilabel_loss


def keras_metrics():
    """Micro and macro F1 at 0.5 (validation thresholds come after)."""
    return [
        keras.metrics.F1Score(average="micro", threshold=HALF, name="micro_f1"),
        keras.metrics.F1Score(average="macro", threshold=HALF, name="macro_f1"),
    ]


# === Thresholds ===


def decide(probabilities, thresholds):
    """0/1 decisions [N, L]: P >= the label's threshold, in float32."""
    probabilities = np.asarray(probabilities, np.float32)
    return (probabilities >= np.asarray(thresholds, np.float32)).astype(
        np.int64
    )


def tune(y_true, probabilities):
    """Per label, the threshold maximizing its F1 (0.5 without positives)."""
    tuned = [
        threshold_lib.tune(y_true[:, j], probabilities[:, j])
        for j in range(y_true.shape[1])
    ]
    return [HALF if t is None else t[0] for t in tuned]


def choose(setting, labels, validation_outputs, log):
    """The thresholds.json record of a new run (see the module docstring)."""
    value = threshold_lib.parse(setting)
    if value != threshold_lib.AUTO:
        cut = HALF if value == threshold_lib.ARGMAX else value
        return {"thresholds": dict.fromkeys(labels, cut), "source": "config"}
    outputs = validation_outputs()
    if outputs is None:
        log("no validation split to tune the label thresholds on: 0.5 each")
        return {"thresholds": dict.fromkeys(labels, HALF), "source": "default"}
    y_true, probabilities = outputs
    thresholds = tune(np.asarray(y_true), np.asarray(probabilities))
    tuned = micro_f1(y_true, decide(probabilities, thresholds))
    at_half = micro_f1(y_true, decide(probabilities, HALF))
    log(
        f"label thresholds tuned on validation: micro-F1 {tuned:.4f} "
        f"(at 0.5: {at_half:.4f})"
    )
    return {
        "thresholds": dict(zip(labels, thresholds)),
        "source": "validation",
        "tuning": {
            "split": "validation",
            "num_examples": int(len(y_true)),
            "micro_f1": tuned,
            "micro_f1_at_0.5": at_half,
        },
    }


def save(record, model_dir):
    path = os.path.join(model_dir, THRESHOLDS_FILE)
    files.write_text(path, json.dumps(record, indent=2))


def load(setting, model_dir, labels):
    """The thresholds a finished run decides with, in label order.

    A number or `argmax` given now wins over thresholds.json.
    """
    value = threshold_lib.parse(setting)
    if value != threshold_lib.AUTO:
        return [HALF if value == threshold_lib.ARGMAX else value] * len(labels)
    path = os.path.join(model_dir, THRESHOLDS_FILE)
    if not files.exists(path):
        return [HALF] * len(labels)
    stored = json.loads(files.read_text(path))["thresholds"]
    return [stored[label] for label in labels]


# === metrics.json ===


def _f1(precision, recall):
    return safe_divide(2 * precision * recall, precision + recall)


def micro_f1(y_true, y_pred):
    y_true, y_pred = np.asarray(y_true) > 0, np.asarray(y_pred) > 0
    denominator = y_true.sum() + y_pred.sum()
    return (
        float(2 * (y_true & y_pred).sum() / denominator) if denominator else 0.0
    )


def report(y_true, probabilities, labels, split, thresholds):
    """The metrics.json dict of a multi-label split.

    Args:
        y_true: multi-hot true labels [N, L].
        probabilities: the sigmoid outputs [N, L].
        labels: the L label names.
        split: the split's name.
        thresholds: the L decision thresholds.
    """
    y_true = np.asarray(y_true) > 0
    y_pred = decide(probabilities, thresholds) > 0
    hits = (y_true & y_pred).sum(axis=0)
    predicted, actual = y_pred.sum(axis=0), y_true.sum(axis=0)
    precision, recall = (
        safe_divide(hits, predicted),
        safe_divide(hits, actual),
    )
    f1 = _f1(precision, recall)
    micro_precision = safe_divide(hits.sum(), predicted.sum())
    micro_recall = safe_divide(hits.sum(), actual.sum())
    count = len(y_true)
    return {
        "task": "multilabel",
        "split": split,
        "num_examples": int(count),
        "labels": list(labels),
        "micro_f1": float(_f1(micro_precision, micro_recall)),
        "macro_f1": float(f1.mean()),
        "micro_precision": float(micro_precision),
        "micro_recall": float(micro_recall),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "subset_accuracy": (
            float((y_true == y_pred).all(axis=1).mean()) if count else None
        ),
        "hamming_loss": float((y_true != y_pred).mean()) if count else None,
        "per_class": {
            label: {
                "precision": float(precision[j]),
                "recall": float(recall[j]),
                "f1": float(f1[j]),
                "support": int(actual[j]),
            }
            for j, label in enumerate(labels)
        },
        "thresholds": dict(zip(labels, map(float, thresholds))),
    }


def format_table(report):
    width = max([len("label")] + [len(str(k)) for k in report["labels"]])
    subset = report["subset_accuracy"]
    lines = [
        f"{report['split']} split: {report['num_examples']} examples, "
        f"micro-F1 {report['micro_f1']:.4f}, macro-F1 "
        f"{report['macro_f1']:.4f}, subset accuracy "
        f"{'n/a' if subset is None else f'{subset:.4f}'}, Hamming loss "
        f"{report['hamming_loss'] or 0:.4f}",
        f"{'label':<{width}}  threshold  precision  recall     f1  support",
    ]
    for label, row in report["per_class"].items():
        lines.append(
            f"{label:<{width}}  {report['thresholds'][label]:9.4f}  "
            f"{row['precision']:9.4f}  {row['recall']:6.4f}  "
            f"{row['f1']:.4f}  {row['support']:7d}"
        )
    return "\n".join(lines)


# === The task ===


class MultilabelTask(labelled.LabelledTask):
    name = "multilabel"
    metrics = METRICS
    unsupported = frozenset({"class_weight", "mixup", "litert"})
    head = heads.Head(activation="sigmoid")
    output_name = "labels"

    def check(self, config):
        threshold_lib.parse(config.eval.threshold)

    def loss_and_metrics(self, model, config, num_outputs):
        return loss(config), keras_metrics()

    def decide(self, built, splits, config, folder):
        """Tunes and saves the thresholds; returns them in label order."""

        def validation_outputs():
            return labelled.validation_outputs(built, splits.validation, config)

        record = choose(
            config.eval.threshold, splits.labels, validation_outputs, _log
        )
        save(record, folder)
        return [record["thresholds"][label] for label in splits.labels]

    def load_decision(self, config, folder, labels):
        return load(config.eval.threshold, folder, labels)

    def score(self, split, outputs, labels, decision, modality, folder):
        if folder:
            truth = targets.decode(split.label_ids, labels, self.name)
            chosen = targets.decode(
                decide(outputs, decision), labels, self.name
            )
            rows = labelled.input_rows(split)
            for index, row in enumerate(rows):
                row["label"] = truth[index]
                row["predicted"] = chosen[index]
                row["probabilities"] = [
                    round(float(p), 6) for p in outputs[index]
                ]
            write_jsonl(os.path.join(folder, PREDICTIONS_FILE), rows)
        return report(split.label_ids, outputs, labels, split.name, decision)

    def format_table(self, report):
        return format_table(report)

    def serving(self, labels, decision, config):
        delimiter = config.data.label_delimiter
        return (
            lambda outputs, table: serving_outputs(
                outputs, labels, decision, delimiter
            ),
            lambda expected, served: compare_served(
                expected, served, labels, decision, delimiter
            ),
        )


def serving_outputs(outputs, labels, thresholds, delimiter):
    """`probabilities`, `decisions` (0/1) and the chosen `labels` joined by
    `delimiter`, as TF ops."""
    probabilities = tf.cast(outputs, tf.float32)
    cuts = tf.constant(np.asarray(thresholds, np.float32))
    chosen = probabilities >= cuts
    names = tf.broadcast_to(tf.constant(list(labels)), tf.shape(chosen))
    return {
        "probabilities": probabilities,
        "decisions": tf.cast(chosen, tf.int64),
        "labels": tf.strings.reduce_join(
            tf.ragged.boolean_mask(names, chosen), axis=1, separator=delimiter
        ),
    }


def compare_served(expected, served, labels, thresholds, delimiter):
    """(figures, problems): probabilities within tolerance, the same
    decisions but for near ties, and label names that match them."""
    figures, problems = labelled.compare_values(
        expected, served, "probabilities"
    )
    cuts = np.asarray(thresholds, np.float32)
    near = np.abs(expected - cuts) < parity.tolerance()
    wrong = (served["decisions"] != decide(expected, thresholds)) & ~near
    chosen = targets.decode(served["decisions"], labels, "multilabel")
    joined = [delimiter.join(row) for row in chosen]
    got_labels = [v.decode("utf-8") for v in served["labels"]]
    figures["decision_mismatches"] = int(wrong.sum())
    figures["near_ties"] = int(near.sum())
    if wrong.any():
        problems.append(f"{int(wrong.sum())} label decisions differ")
    if joined != got_labels:
        problems.append("the served label names differ from the decisions")
    return figures, problems


TASK = MultilabelTask()
