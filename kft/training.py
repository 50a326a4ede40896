"""Trains a built model through its freeze plan, one `model.fit` per phase.

Each phase sets `trainable`, makes a fresh optimizer on its own warmup and
decay schedule (carrying over the moments of variables that stay
trainable), recompiles (Keras needs it after `trainable` changes) and fits.
The best weights by the monitored validation metric are kept across phases
and restored at the end.
"""

import csv
import os
import sys
import time
import warnings

import keras
import numpy as np

from kft import evaluation, freeze, optim, summaries
from kft.errors import UserError

# Keras warns about both for every tf.data input whose length it cannot see
# (length-grouped batches); neither is a problem here.
warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed.*")
warnings.filterwarnings("ignore", message=".*Your input ran out of data.*")


class HistoryCSV(keras.callbacks.Callback):
    """Appends one row per epoch to history.csv: phase, epoch, lr, metrics."""

    def __init__(self, path, phase):
        super().__init__()
        self.path = path
        self.phase = phase

    def on_epoch_end(self, epoch, logs=None):
        row = summaries.epoch_row(self.model, self.phase, epoch, logs)
        exists = os.path.exists(self.path)
        fields = list(row)
        if exists:
            with open(self.path, newline="") as file:
                header = next(csv.reader(file), fields)
            fields = header + [key for key in row if key not in header]
        with open(self.path, "a", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=fields, restval="")
            if not exists:
                writer.writeheader()
            writer.writerow(row)


class BestWeights(keras.callbacks.Callback):
    """Remembers the weights of the best epoch by `monitor`, across phases."""

    def __init__(self, monitor):
        super().__init__()
        self.monitor = monitor
        self.mode = "min" if monitor.endswith("loss") else "max"
        self.best = None
        self.best_epoch = None
        self.weights = None

    def is_better(self, value):
        if self.best is None:
            return True
        return value < self.best if self.mode == "min" else value > self.best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            return
        if self.is_better(float(value)):
            self.best = float(value)
            self.best_epoch = epoch + 1
            self.weights = [np.array(w) for w in self.model.get_weights()]

    def restore(self, model):
        if self.weights is not None:
            model.set_weights(self.weights)


def _verbosity(verbose):
    if verbose >= 0:
        return verbose
    return 1 if sys.stdout.isatty() else 2


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
    model.compile(
        optimizer=optimizer,
        loss=_loss(config, num_classes),
        metrics=[
            evaluation.accuracy(num_classes),
            evaluation.MacroF1(num_classes),
        ],
        jit_compile=config.jit_compile,
        steps_per_execution=config.steps_per_execution,
    )


def train(
    built,
    phases,
    train_data,
    validation_data,
    config,
    model_dir,
    num_classes,
    class_weight=None,
    log=print,
):
    """Runs every phase; returns {"phases": [...], "best": ...} timings."""
    model = built.model
    metrics = ("loss", "accuracy", "macro_f1")
    monitors = [f"val_{m}" for m in metrics] + list(metrics)
    if config.monitor not in monitors:
        raise UserError(
            f"unknown monitor '{config.monitor}'; valid: {', '.join(monitors)}"
        )
    best = BestWeights(config.monitor)
    steps_per_epoch = int(train_data.cardinality())
    if steps_per_epoch < 0:
        steps_per_epoch = sum(1 for _ in train_data)
    optimizer = None
    epoch = 0
    summary = []
    tensorboard = summaries.TensorBoardScalars(
        os.path.join(model_dir, "tensorboard")
    )
    for phase in phases:
        started = time.time()
        multipliers = freeze.apply_phase(
            built, phase, built.family.block_pattern, config.train_batchnorm
        )
        schedule = optim.make_schedule(
            config.schedule,
            phase.learning_rate,
            phase.epochs * steps_per_epoch,
        )
        new_optimizer = optim.make_optimizer(
            config.optimizer, schedule, multipliers
        )
        optim.carry_state(optimizer, new_optimizer, model.trainable_variables)
        optimizer = new_optimizer
        compile_model(model, optimizer, config, num_classes)
        trainable = sum(
            int(np.prod(v.shape)) for v in model.trainable_variables
        )
        log(
            f"phase {phase.name}: {phase.epochs} epoch(s), peak lr "
            f"{phase.learning_rate:g}, {trainable:,} trainable parameters"
        )
        callbacks = [
            HistoryCSV(os.path.join(model_dir, "history.csv"), phase.name),
            best,
            tensorboard.callback(phase.name, schedule),
        ]
        if config.early_stopping_patience:
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    config.monitor,
                    patience=config.early_stopping_patience,
                    mode=best.mode,
                )
            )
        history = model.fit(
            train_data,
            validation_data=validation_data,
            initial_epoch=epoch,
            epochs=epoch + phase.epochs,
            callbacks=callbacks,
            class_weight=class_weight,
            verbose=_verbosity(config.verbose),
        )
        epoch += len(history.epoch)
        summary.append(
            {
                "phase": phase.name,
                "epochs": len(history.epoch),
                "seconds": round(time.time() - started, 1),
            }
        )
    tensorboard.close()
    best.restore(model)
    if best.best is None:
        log("no validation data: keeping the last epoch's weights")
    else:
        log(
            f"restored the best weights: epoch {best.best_epoch}, "
            f"{config.monitor} {best.best:.4f}"
        )
    return {
        "phases": summary,
        "best_epoch": best.best_epoch,
        "best_value": best.best,
    }
