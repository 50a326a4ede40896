"""What changes with `config.task` beyond classification, in one place.

kft's classification path (softmax, kft/tasks/classification/metrics.py,
kft/tasks/classification/threshold.py)
is the default everywhere; run.py, training.py and export.py hand the
other tasks to the functions here:

- multilabel: a sigmoid per label, binary cross-entropy, a threshold per
  label tuned on validation (thresholds.json); metrics micro/macro F1,
  per-label P/R/F1, subset accuracy, Hamming loss; the export answers
  `probabilities` [N, L], `decisions` [N, L] (0/1) and `labels` (the
  chosen label names joined by `data.label_delimiter`).
- regression: a linear unit in the targets' units, MSE or Huber on
  standardized targets; metrics MAE, RMSE, Pearson, Spearman; the export
  answers `score` [N].

Each task module (kft/tasks/multilabel.py, kft/tasks/regression.py) holds its
loss,
Keras metrics, decisions and report.
"""

import keras
import numpy as np
import tensorflow as tf

from kft.core import distribute
from kft.core.errors import UserError
from kft.data import targets
from kft.tasks import multilabel, regression
from kft.tasks.causal_lm import generation
from kft.tasks.classification import metrics as evaluation
from kft.tasks.classification import threshold as threshold_lib
from kft.tasks.qa import spans as qa
from kft.tasks.tokens import tagging

# Tasks with labels per example (kft/data/targets.py), then the tasks
# with runs of their own: tokens (kft/tasks/tokens/task.py), qa
# (kft/tasks/qa/task.py),
# causal_lm (kft/tasks/causal_lm/task.py).
TASKS = (*targets.TASKS, "tokens", "qa", "causal_lm")
CLASSIFICATION_METRICS = ("loss", "accuracy", "macro_f1")
TOLERANCE = 1e-5


def check(config):
    """Raises UserError for a task setting that cannot work."""
    if config.task not in TASKS:
        raise UserError(
            f"bad value '{config.task}' for --config.task; valid: "
            + ", ".join(TASKS)
        )
    if config.task == "classification":
        return
    if config.class_weight:
        raise UserError(
            f"--config.class_weight applies to classification, not "
            f"{config.task}; leave it empty"
        )
    if config.data.mixup or config.data.cutmix:
        raise UserError("mixup and cutmix need task classification")
    threshold_lib.parse(config.eval.threshold)
    monitor = config.monitor.removeprefix("val_")
    if monitor not in metric_names(config.task):
        raise UserError(
            f"--config.monitor={config.monitor} is not a {config.task} "
            "metric; valid: "
            + ", ".join(f"val_{m}" for m in metric_names(config.task))
            + " (or without val_)"
        )
    if config.task == "regression":
        regression.check(config)


def metric_names(task):
    """What `model.fit` reports (and `--config.monitor` can pick)."""
    if task == "multilabel":
        return multilabel.METRICS
    if task == "regression":
        return regression.METRICS
    if task == "qa":
        return qa.METRICS
    if task == "causal_lm":
        return generation.METRICS
    return CLASSIFICATION_METRICS


def compile_arguments(model, config):
    """(loss, metrics) of `model.compile` for multilabel or regression."""
    if config.task == "multilabel":
        return multilabel.loss(config), multilabel.keras_metrics()
    return regression.loss(model, config), regression.keras_metrics()


# === Compiling ===


def _loss(config, num_classes):
    smoothing = config.label_smoothing

    def loss(labels, probabilities):
        if len(labels.shape) == 2 and labels.shape[-1] == num_classes:
            # Soft labels (mixup, cutmix): class shares per example.
            labels = keras.ops.cast(labels, probabilities.dtype)
        else:
            labels = keras.ops.one_hot(
                keras.ops.reshape(keras.ops.cast(labels, "int32"), (-1,)),
                num_classes,
            )
        return keras.losses.categorical_crossentropy(
            labels, probabilities, label_smoothing=smoothing
        )

    return loss


def compile_model(model, optimizer, config, num_classes):
    """`model.compile` with the task's loss and metrics (the trainer calls
    it at every phase, as the Keras guide says to after changing
    `trainable`)."""
    options = {
        "jit_compile": config.jit_compile,
        # 0 ("auto") is resolved by run.train; callers that skip it get 1.
        "steps_per_execution": config.steps_per_execution or 1,
    }
    task = config.get("task", "classification")
    if task == "qa":
        return qa.compile_span_model(model, optimizer, **options)
    if task == "causal_lm":
        return generation.compile_lm(model, optimizer, **options)
    if task == "classification":
        loss = _loss(config, num_classes)
        metrics = [
            evaluation.accuracy(num_classes),
            evaluation.MacroF1(num_classes),
        ]
    elif task == "tokens":  # per-token tags (kft/tasks/tokens/tagging.py)
        loss, metrics = tagging.loss_and_metrics(num_classes)
    else:
        loss, metrics = compile_arguments(model, config)
    if task != "tokens":  # per-example losses (tagging's is one mean)
        loss = distribute.global_mean(loss)
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics, **options)


# === After training: decisions, evaluation ===


def choose_decision(splits, config, validation_outputs, log, model_dir):
    """Multilabel: tunes and saves the thresholds; returns them in label
    order. Regression: None (a score needs no decision)."""
    if config.task != "multilabel":
        return None
    record = multilabel.choose(
        config.eval.threshold, splits.labels, validation_outputs, log
    )
    multilabel.save(record, model_dir)
    return [record["thresholds"][label] for label in splits.labels]


def load_decision(config, model_dir, labels):
    """What a finished run decides with (see `choose_decision`)."""
    if config.task != "multilabel":
        return None
    return multilabel.load(config.eval.threshold, model_dir, labels)


def report(task, split, outputs, labels, decision):
    """The metrics.json dict of `split` given the model's `outputs`."""
    if task == "multilabel":
        return multilabel.report(
            split.label_ids, outputs, labels, split.name, decision
        )
    return regression.report(split.label_ids, outputs, split.name)


def format_table(report):
    if report.get("task") == "multilabel":
        return multilabel.format_table(report)
    return regression.format_table(report)


def prediction_rows(task, split, outputs, labels, decision):
    """predictions.jsonl rows: input, true and predicted labels or score."""
    truth = targets.decode(split.label_ids, labels, task)
    if task == "multilabel":
        chosen = targets.decode(
            multilabel.decide(outputs, decision), labels, task
        )
    rows = []
    for index, value in enumerate(split.values):
        row = {"index": index}
        if isinstance(value, str):
            row["text"] = value
        if split.pairs is not None:
            row["text_pair"] = split.pairs[index]
        row["label"] = truth[index]
        if task == "multilabel":
            row["predicted"] = chosen[index]
            row["probabilities"] = [round(float(p), 6) for p in outputs[index]]
        else:
            row["predicted"] = round(float(outputs[index]), 6)
        rows.append(row)
    return rows


# === The SavedModel ===


def serving_outputs(task, outputs, labels, decision, delimiter):
    """The outputs of the task's serving signatures, as TF ops."""
    if task == "regression":
        return {"score": tf.cast(outputs, tf.float32)}
    probabilities = tf.cast(outputs, tf.float32)
    cuts = tf.constant(np.asarray(decision, np.float32))
    chosen = probabilities >= cuts
    names = tf.broadcast_to(tf.constant(list(labels)), tf.shape(chosen))
    return {
        "probabilities": probabilities,
        "decisions": tf.cast(chosen, tf.int64),
        "labels": tf.strings.reduce_join(
            tf.ragged.boolean_mask(names, chosen), axis=1, separator=delimiter
        ),
    }


def check_served(task, expected, served, labels, decision, delimiter):
    """Compares served outputs with the Keras model's `expected` outputs;
    returns (figures, problems)."""
    key = "score" if task == "regression" else "probabilities"
    got = np.asarray(served[key], np.float32)
    scale = np.maximum(1.0, np.abs(expected))  # scores may be large numbers
    difference = (
        float(np.max(np.abs(got - expected) / scale)) if got.size else 0.0
    )
    figures = {"max_abs_difference": difference, "tolerance": TOLERANCE}
    problems = []
    if difference > TOLERANCE:
        problems.append(
            f"{key} differ by up to {difference:.2e} (> {TOLERANCE})"
        )
    if task == "multilabel":
        near = np.abs(expected - np.asarray(decision, np.float32)) < TOLERANCE
        wrong = (
            served["decisions"] != multilabel.decide(expected, decision)
        ) & ~near
        chosen = targets.decode(served["decisions"], labels, task)
        joined = [delimiter.join(row) for row in chosen]
        got_labels = [v.decode("utf-8") for v in served["labels"]]
        figures["decision_mismatches"] = int(wrong.sum())
        figures["near_ties"] = int(near.sum())
        if wrong.any():
            problems.append(f"{int(wrong.sum())} label decisions differ")
        if joined != got_labels:
            problems.append("the served label names differ from the decisions")
    return figures, problems
