"""Learning-rate range test: a short sweep that suggests a peak rate.

Leslie Smith's range test, as fastai's and ktrain's `lr_find` run it: train
the phase the run would train first (its trainable layers, its optimizer,
the same `tf.data` batches) for `steps` steps while the rate grows
exponentially from `min_rate` to `max_rate`, one `model.fit` epoch per step
so Keras reports each step's own loss. The sweep stops early once the
smoothed loss passes `divergence` times its best, or is no longer finite.

Every model variable (weights, BatchNorm statistics, dropout seeds) and
every layer's `trainable` flag is saved before and restored after, and the
sweep runs on an optimizer of its own, so the model and any optimizer it
was compiled with come out exactly as they went in.

The loss is smoothed as fastai does: an exponential moving average with
factor `smoothing` (0.98), bias-corrected so the first steps are not pulled
towards 0.

The suggestion follows fastai's `valley` rule (its default since 2.5):
drop the first tenth of the planned steps (the average is still settling),
the last 5 (the blow-up) and everything from the first non-finite loss on;
find the valley, the longest strictly decreasing subsequence of the
smoothed loss; suggest the rate halfway along it, where the loss falls
steadily, well before it turns. Why not fastai's other two rules, measured
on two 100-step sweeps on the 2-core CPU (`kft-train --experiment=NAME
--config.lr_find=true`):

    sweep                                 minimum/10  steepest  valley
    drug_reviews_minilm (full, MiniLM)      8.1e-7     3.1e-6   2.1e-4
    digits_pretrain (ResNet50, scratch)     2.4e-4     0.1      1.8e-4

The demo's measured recipe trains at 1e-4; digits_pretrain trains at 1e-3
and its sweep blows up past 3e-3. On curves this flat and noisy (small
batches; class weights in the demo) the minimum and the steepest slope
are arg-extremes of noise, off by up to three decades; the valley, which
reads a long stretch of the curve, landed within a factor of 6 both
times. No rule reads a flat curve well, so look at lr_find.png too. When
the loss never fell, or still fell at the end, a note says to widen the
range.
"""

import json
import math
import os

import keras
import numpy as np
from keras import ops

from kft.core import compat, files, freeze, optim
from kft.core.errors import UserError

JSON_FILE = "lr_find.json"
PLOT_FILE = "lr_find.png"
RULE = "valley: halfway along the longest decreasing run of the smoothed loss"


class ExponentialRate(keras.optimizers.schedules.LearningRateSchedule):
    """`start` at step 0 to `stop` at step `steps - 1`, geometrically."""

    def __init__(self, start, stop, steps):
        self.start = float(start)
        self.stop = float(stop)
        self.steps = max(int(steps), 2)

    def __call__(self, step):
        done = ops.cast(step, "float32") / float(self.steps - 1)
        return self.start * ops.power(self.stop / self.start, done)

    def get_config(self):
        return dict(start=self.start, stop=self.stop, steps=self.steps)


def check_options(options):
    """Raises UserError for lr_find_options no sweep can run with."""
    if options.steps < 2:
        raise UserError(
            f"bad value '{options.steps}' for --config.lr_find_options.steps;"
            " valid: 2 or more"
        )
    if not 0 < options.min_rate < options.max_rate:
        raise UserError(
            "--config.lr_find_options needs 0 < min_rate < max_rate; got "
            f"min_rate={options.min_rate:g}, max_rate={options.max_rate:g}"
        )
    if not 0 <= options.smoothing < 1:
        raise UserError(
            f"bad value '{options.smoothing}' for "
            "--config.lr_find_options.smoothing; valid: 0 <= smoothing < 1"
        )


def smooth(losses, factor):
    """fastai's smoothed loss: a bias-corrected exponential moving average."""
    average = 0.0
    smoothed = []
    for count, loss in enumerate(losses, start=1):
        average = factor * average + (1 - factor) * loss
        smoothed.append(average / (1 - factor**count))
    return smoothed


def suggest(rates, smoothed, planned_steps):
    """Returns (suggested peak rate, valley's rates, note) by the valley rule.

    Args:
        rates: the rate of each step run.
        smoothed: the smoothed loss of each step run.
        planned_steps: the sweep's `steps` (the first tenth is skipped).
    """
    usable = [math.isfinite(value) for value in smoothed] + [False]
    start, end = planned_steps // 10, min(usable.index(False), len(rates) - 5)
    if end - start < 2:  # a short sweep: read all of it
        start, end = 0, usable.index(False)
    if not end:
        return rates[0], (rates[0], rates[0]), "the loss was never finite"
    first, last = _longest_valley(smoothed[start:end])
    first, last = start + first, start + last
    rounded = float(f"{rates[(first + last) // 2]:.2g}")
    suggestion = min(max(rounded, rates[0]), rates[-1])
    note = ""
    if first == last:
        note = "the loss never fell; lower min_rate"
    elif last == end - 1:
        note = "the loss still fell at the end; raise max_rate"
    return suggestion, (rates[first], rates[last]), note


def _longest_valley(values):
    """(first, last) index of the valley, as fastai's `valley` measures it.

    The longest strictly decreasing subsequence ends at `last`; the valley
    is as many steps as that subsequence has, ending there. Its own first
    element is not the start: a flat, noisy stretch adds a few points far
    to the left, which would stretch the valley over the noise.
    """
    length = [1] * len(values)
    for i, value in enumerate(values):
        for j in range(i):
            if values[j] > value:
                length[i] = max(length[i], length[j] + 1)
    last = int(np.argmax(length))
    return last - length[last] + 1, last


class _Recorder(keras.callbacks.Callback):
    """Records each step's rate and loss; stops when the loss diverges."""

    def __init__(self, smoothing, divergence):
        super().__init__()
        self.smoothing = smoothing
        self.divergence = divergence
        self.rates, self.losses = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.rates.append(float(np.asarray(self.model.optimizer.learning_rate)))

    def on_epoch_end(self, epoch, logs=None):
        loss = float(logs["loss"])
        self.losses.append(loss)
        smoothed = smooth(self.losses, self.smoothing)
        diverged = self.divergence and (
            smoothed[-1] > self.divergence * min(smoothed)
        )
        if not math.isfinite(loss) or diverged:
            self.model.stop_training = True


def _snapshot(model):
    layers = compat.flatten_layers(model)
    flags = [(layer, layer.trainable) for layer in layers]
    values = [ops.convert_to_numpy(v) for v in model.variables]
    return flags, values


def _restore(model, snapshot):
    flags, values = snapshot
    # Parents come before their sublayers, and setting a parent's flag
    # sets its sublayers', so the sublayers' own flags are set after.
    for layer, trainable in flags:
        layer.trainable = trainable
    for variable, value in zip(model.variables, values, strict=True):
        variable.assign(value)


def sweep(
    built, phase, dataset, config, num_classes, class_weight=None, *, task
):
    """Runs the range test on `phase`; returns the lr_find.json dict.

    Args:
        built: a `builder.Built`; left as it was found.
        phase: the `freeze.Phase` to sweep (the run's first).
        dataset: the training batches; repeated when the sweep is longer.
        config: the run config (`lr_find_options`, optimizer, loss).
        num_classes: the number of classes.
        class_weight: as for `model.fit`.
    """
    options = config.lr_find_options
    check_options(options)
    model = built.model
    previous = getattr(model, "optimizer", None)
    snapshot = _snapshot(model)
    recorder = _Recorder(options.smoothing, options.divergence)
    try:
        multipliers = freeze.apply_phase(
            built, phase, built.family.block_pattern, config.train_batchnorm
        )
        schedule = ExponentialRate(
            options.min_rate, options.max_rate, options.steps
        )
        optimizer = optim.make_optimizer(
            config.optimizer, schedule, multipliers
        )
        # One step per epoch, so each epoch's logged loss is that step's.
        sweep_config = config.copy_and_resolve_references()
        sweep_config.steps_per_execution = 1
        task.compile(model, optimizer, sweep_config, num_classes)
        model.fit(
            dataset.repeat(),
            steps_per_epoch=1,
            epochs=options.steps,
            callbacks=[recorder],
            class_weight=class_weight,
            verbose=0,
        )
    finally:
        _restore(model, snapshot)
        if previous is not None:
            task.compile(model, previous, config, num_classes)
    return _result(phase, options, recorder)


def _result(phase, options, recorder):
    smoothed = smooth(recorder.losses, options.smoothing)
    suggestion, valley, note = suggest(recorder.rates, smoothed, options.steps)
    return {
        "phase": phase.name,
        "min_rate": options.min_rate,
        "max_rate": options.max_rate,
        "steps": options.steps,
        "steps_run": len(recorder.losses),
        "rule": RULE,
        "suggestion": suggestion,
        "valley": list(valley),
        "note": note,
        "rates": recorder.rates,
        "losses": [_finite_or_none(x) for x in recorder.losses],
        "smoothed": [_finite_or_none(x) for x in smoothed],
    }


def _finite_or_none(value):
    return value if math.isfinite(value) else None


def plot(result, path):
    """Draws the raw and smoothed loss against the rate (log axis) to PNG."""
    # Imported here: only a sweep needs matplotlib. Figure draws on the Agg
    # canvas without pyplot, so no display and no global backend switch.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    rates = np.asarray(result["rates"])
    for key, style in (("losses", dict(alpha=0.3)), ("smoothed", {})):
        values = np.array(result[key], dtype=float)  # None becomes nan
        axes.plot(rates, values, label=key.replace("losses", "loss"), **style)
    smoothed = np.array(result["smoothed"], dtype=float)
    lowest = int(np.nanargmin(smoothed))
    axes.axvspan(*result["valley"], color="C2", alpha=0.15, label="valley")
    axes.axvline(
        result["suggestion"], color="C3", linestyle="--", label="suggestion"
    )
    # Past the minimum the raw loss can spike by orders of magnitude; the
    # axis stops at the smoothed curve's top or the raw loss's noise before
    # the minimum, whichever is higher.
    raw = np.array(result["losses"], dtype=float)
    top = max(np.nanmax(smoothed), np.nanpercentile(raw[: lowest + 1], 98))
    bottom = min(np.nanmin(raw), np.nanmin(smoothed))
    margin = 0.05 * (top - bottom) or 0.05
    axes.set_ylim(bottom - margin, top + margin)
    axes.set_xscale("log")
    axes.set_xlabel("learning rate")
    axes.set_ylabel("training loss")
    axes.set_title(
        f"lr_find, phase {result['phase']}: "
        f"suggested peak rate {result['suggestion']:.2g}"
    )
    axes.legend()
    files.write_bytes(path, files.png_bytes(figure))


def rate_key(config):
    """The config key the first phase's peak rate comes from."""
    if config.plan == "custom":
        return "phases"
    first = freeze.plan_from_config(config)[0]
    return "head_learning_rate" if first.name == "head" else "learning_rate"


def apply(config, rate):
    """Sets the first phase's peak rate to `rate` in `config`; returns the key.

    The config, not just the phase, changes, so config.json records the
    rate that was trained with.
    """
    key = rate_key(config)
    if key != "phases":
        config[key] = rate
        return key
    items = json.loads(config.phases)
    first = next(item for item in items if int(item["epochs"]) > 0)
    first["learning_rate"] = rate
    config.phases = json.dumps(items)
    return key


def find(
    built,
    phase,
    dataset,
    config,
    model_dir,
    num_classes,
    class_weight=None,
    log=print,
    *,
    task,
):
    """Sweeps `phase`, writes lr_find.json and .png; returns the suggestion.

    `task` compiles the model (its `compile`, kft/tasks/base.py)."""
    options = config.lr_find_options
    log(
        f"lr_find: phase {phase.name}, {options.steps} steps from "
        f"{options.min_rate:g} to {options.max_rate:g}"
    )
    result = sweep(
        built, phase, dataset, config, num_classes, class_weight, task=task
    )
    path = os.path.join(model_dir, JSON_FILE)
    files.write_text(path, json.dumps(result, indent=1))
    plot(result, os.path.join(model_dir, PLOT_FILE))
    note = f" ({result['note']})" if result["note"] else ""
    log(
        f"lr_find: suggested peak rate {result['suggestion']:.2g} for phase "
        f"{phase.name} after {result['steps_run']} steps{note}; "
        f"plot in {os.path.join(model_dir, PLOT_FILE)}"
    )
    return result["suggestion"]
