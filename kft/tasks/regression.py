"""Regression: a number per example, from a linear head.

The head's Dense unit is followed by `TargetScale`, which maps it to the
targets' units (times the training targets' std, plus their mean, with
`regression.scaling=standardize`; identity with `none`). The loss divides
both target and prediction by that std, so it is the loss on standardized
targets (unit-scale gradients, whatever the targets' units), while the
model, its evaluation and its export all answer in the original units:
nothing has to undo the scaling outside the model. The mean and std are
model weights (not trainable), so they travel with the checkpoints and
the SavedModel; target_scaling.json records them for people.

`report` gives metrics.json's figures: MAE, RMSE, Pearson's and
Spearman's correlation (tested against scipy).
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from kft.core import files
from kft.core.errors import UserError
from kft.core.run_folder import PREDICTIONS_FILE, write_jsonl
from kft.model import heads
from kft.tasks import labelled

LOSSES = ("mse", "huber")
SCALINGS = ("standardize", "none")
SCALING_FILE = "target_scaling.json"
LAYER = "target_scale"
# Keras metric names during training (history.csv, --config.monitor).
METRICS = ("loss", "mae", "rmse")


@keras.saving.register_keras_serializable(package="kft")
class TargetScale(keras.layers.Layer):
    """[batch, 1] standardized outputs to [batch] targets: x * std + mean."""

    def build(self, input_shape):
        self.mean = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="mean"
        )
        self.std = self.add_weight(
            shape=(), initializer="ones", trainable=False, name="std"
        )

    def call(self, outputs):
        outputs = ops.cast(outputs[:, 0], "float32")
        return outputs * self.std + self.mean

    def compute_output_shape(self, input_shape):
        return input_shape[:1]


def check_options(config):
    for key, valid in (("loss", LOSSES), ("scaling", SCALINGS)):
        if config.regression[key] not in valid:
            raise UserError(
                f"bad value '{config.regression[key]}' for "
                f"--config.regression.{key}; valid: {', '.join(valid)}"
            )
    if config.regression.huber_delta <= 0:
        raise UserError("--config.regression.huber_delta must be above 0")


def fit_scaling(model, targets, scaling):
    """Sets the model's mean and std from the training targets; returns
    the record of target_scaling.json."""
    targets = np.asarray(targets, np.float64)
    mean, std = 0.0, 1.0
    if scaling == "standardize":
        mean, std = float(targets.mean()), float(targets.std())
        std = std if std > 0 else 1.0  # constant targets: shift only
    layer = model.get_layer(LAYER)
    layer.mean.assign(mean)
    layer.std.assign(std)
    return {"scaling": scaling, "mean": mean, "std": std}


def save_scaling(record, model_dir):
    path = os.path.join(model_dir, SCALING_FILE)
    files.write_text(path, json.dumps(record, indent=2))


def loss(model, config):
    """MSE or Huber on standardized targets (see the module docstring)."""
    std = model.get_layer(LAYER).std
    delta = config.regression.huber_delta

    def regression_loss(targets, predictions):
        targets = ops.reshape(ops.cast(targets, "float32"), (-1,))
        error = (targets - predictions) / std
        if config.regression.loss == "huber":
            small = ops.abs(error) <= delta
            linear = delta * (ops.abs(error) - 0.5 * delta)
            return ops.where(small, 0.5 * ops.square(error), linear)
        return ops.square(error)

    return regression_loss


def keras_metrics(model):
    """MAE and RMSE in the targets' units, for history.csv and the monitor.

    Both average errors divided by the training targets' std, times it
    again at the end: the squares of errors near 1e30 would overflow
    float32 (inf for every epoch, and no best epoch to choose).
    """
    std = model.get_layer(LAYER).std
    return [
        ScaledMean("mae", std, ops.abs, lambda mean: mean),
        ScaledMean("rmse", std, ops.square, ops.sqrt),
    ]


class ScaledMean(keras.metrics.Mean):
    """`finish`(mean of `each`(error / std)) * std."""

    def __init__(self, name, std, each, finish):
        super().__init__(name=name)
        self.std, self.each, self.finish = std, each, finish

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.reshape(ops.cast(y_true, "float32"), (-1,))
        y_pred = ops.reshape(ops.cast(y_pred, "float32"), (-1,))
        error = (y_true - y_pred) / self.std
        super().update_state(self.each(error), sample_weight)

    def result(self):
        return self.finish(super().result()) * self.std


# === metrics.json ===


def _ranks(values):
    """Ranks from 1, ties at their average rank (as scipy's rankdata)."""
    _, inverse, counts = np.unique(
        values, return_inverse=True, return_counts=True
    )
    average = np.cumsum(counts) - (counts - 1) / 2.0
    return average[inverse]


def pearson(x, y):
    """Pearson's r; None when either side is constant (or too short)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) < 2:
        return None
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denominator) if denominator > 0 else None


def spearman(x, y):
    """Spearman's rho: Pearson's r of the ranks."""
    if len(x) < 2:
        return None
    return pearson(_ranks(np.asarray(x)), _ranks(np.asarray(y)))


def report(targets, predictions, split):
    """The metrics.json dict of a regression split."""
    targets = np.asarray(targets, np.float64)
    predictions = np.asarray(predictions, np.float64).reshape(-1)
    error = predictions - targets
    count = len(targets)
    return {
        "task": "regression",
        "split": split,
        "num_examples": int(count),
        "mae": float(np.abs(error).mean()) if count else None,
        "rmse": float(np.sqrt((error**2).mean())) if count else None,
        "pearson": pearson(targets, predictions),
        "spearman": spearman(targets, predictions),
        "target_mean": float(targets.mean()) if count else None,
        "target_std": float(targets.std()) if count else None,
    }


def format_table(report):
    def show(key):
        value = report[key]
        return "n/a" if value is None else f"{value:.4f}"

    return (
        f"{report['split']} split: {report['num_examples']} examples, "
        f"MAE {show('mae')}, RMSE {show('rmse')}, Pearson "
        f"{show('pearson')}, Spearman {show('spearman')} (targets: mean "
        f"{show('target_mean')}, std {show('target_std')})"
    )


# === The task ===


class RegressionTask(labelled.LabelledTask):
    name = "regression"
    metrics = METRICS
    unsupported = frozenset({"class_weight", "mixup", "litert"})
    head = heads.Head(
        activation="linear", finish=lambda: TargetScale(name=LAYER)
    )
    output_name = "target"

    def check(self, config):
        check_options(config)

    def before_training(self, built, splits, config, folder):
        scaling = fit_scaling(
            built.model, splits.train.label_ids, config.regression.scaling
        )
        save_scaling(scaling, folder)

    def loss_and_metrics(self, model, config, num_outputs):
        return loss(model, config), keras_metrics(model)

    def score(self, split, outputs, labels, decision, modality, folder):
        if folder:
            rows = labelled.input_rows(split)
            for index, row in enumerate(rows):
                row["label"] = float(split.label_ids[index])
                row["predicted"] = round(float(outputs[index]), 6)
            write_jsonl(os.path.join(folder, PREDICTIONS_FILE), rows)
        return report(split.label_ids, outputs, split.name)

    def format_table(self, report):
        return format_table(report)

    def serving(self, labels, decision, config):
        return (
            lambda outputs, table: {"score": tf.cast(outputs, tf.float32)},
            lambda expected, served: labelled.compare_values(
                expected, served, "score"
            ),
        )


TASK = RegressionTask()
