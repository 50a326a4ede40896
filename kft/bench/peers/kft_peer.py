"""kft's own training path, as `kft-train` runs it, for the benchmark.

The model comes from `builder.build` with the experiment's config (sent as
JSON in the spec), the optimizer from `kft.optim` through the freeze plan's
last phase, the classification task compiles it, and `labelled.batches` feeds
it. What kft-train adds around `model.fit` (checkpoints, validation,
history) is not timed.
"""

import functools
import json
import math
import time

import numpy as np

from kft import config as config_lib
from kft import data, run
from kft.bench.peers import keras_peer
from kft.core import cached, compat, distribute, freeze, optim
from kft.core.errors import UserError
from kft.model import builder
from kft.tasks import labelled
from kft.tasks.classification.task import TASK as CLASSIFICATION


def compile_last_phase(built, config, num_classes, total_steps=1000):
    """Sets the plan's last phase trainable and compiles, as fit would."""
    phase = freeze.plan_from_config(config)[-1]
    multipliers = freeze.apply_phase(
        built, phase, built.family.block_pattern, config.train_batchnorm
    )
    schedule = optim.make_schedule(
        config.schedule, phase.learning_rate, total_steps
    )
    optimizer = optim.make_optimizer(config.optimizer, schedule, multipliers)
    CLASSIFICATION.compile(built.model, optimizer, config, num_classes)


def read_split(path):
    """The case's training examples: a `data.Split` and the class count."""
    with open(path) as file:
        examples = json.load(file)
    split = data.Split(
        "train",
        path,
        examples["values"],
        np.asarray(examples["label_ids"], np.int64),
    )
    return split, examples["num_classes"]


def _case(function):
    """A case run as kft-train runs: its config resolved for this device,
    the seed and precision policy set for the case (`run.reproducible`),
    and the precision in the result."""

    @functools.wraps(function)
    def case(spec):
        config = config_lib.from_json(spec["config"])
        distribute.resolve(config)
        run.check_choices(config)
        with run.reproducible(config):
            return function(spec, config) | {"precision": config.precision}

    return case


def _build_text(spec, config):
    split, num_classes = read_split(spec["data"])
    built = builder.build(config, num_classes)
    built.preprocessor.sequence_length = config.data.sequence_length
    compile_last_phase(built, config, num_classes)
    return split, built


def _fit_steps(model, epochs, spec):
    """Step end times of one `model.fit` over warm-up plus timed steps."""
    total = spec["warmup"] + spec["steps"] * spec["repeats"]
    count = math.ceil(total / epochs.steps())
    clock = keras_peer.StepClock()
    model.fit(
        epochs.dataset(0, count),
        steps_per_epoch=total,
        epochs=1,
        verbose=0,
        callbacks=[clock],
    )
    return keras_peer.rates(clock, spec)


@_case
def text_fixed(spec, config):
    """Steps on [batch, length] token batches from kft's text pipeline."""
    split, built = _build_text(spec, config)
    epochs = labelled.batches(built, split, config, True)
    shapes = {
        tuple(inputs["token_ids"].shape) for inputs, _ in epochs.dataset(0, 1)
    }
    wanted = (config.data.batch_size, config.data.sequence_length)
    if shapes != {wanted}:
        raise UserError(
            f"kft's batches have shapes {sorted(shapes)}, not only {wanted}: "
            "the fixed-shape texts are too short for this length"
        )
    return {"rates": _fit_steps(built.model, epochs, spec)}


@_case
def text_epoch(spec, config):
    """Whole epochs from raw texts: kft's pipeline tokenizes, caches and
    groups by length (a fresh pipeline per epoch, so each timed epoch
    tokenizes as kft-train's first does); one warm-up epoch."""
    split, built = _build_text(spec, config)
    shapes = set()
    seconds = []
    for epoch in range(1 + spec["repeats"]):
        started = time.perf_counter()
        epochs = labelled.batches(built, split, config, True)
        steps = epochs.steps()
        built.model.fit(
            epochs.dataset(epoch, epoch + 1),
            steps_per_epoch=steps,
            epochs=1,
            verbose=0,
        )
        seconds.append(time.perf_counter() - started)
    for inputs, _ in epochs.dataset(0, 1):
        shapes.add(tuple(inputs["token_ids"].shape))
    return {
        "rates": [len(split) / s for s in seconds[1:]],
        "warmup_seconds": seconds[0],
        "batch_shapes": len(shapes),
    }


@_case
def images(spec, config):
    """Steps on image batches from kft's image pipeline; the config's plan
    (full: everything trains; linear_probe: the backbone is frozen and
    recomputed every step)."""
    split, num_classes = read_split(spec["data"])
    built = builder.build(config, num_classes)
    compile_last_phase(built, config, num_classes)
    epochs = labelled.batches(built, split, config, True)
    return {"rates": _fit_steps(built.model, epochs, spec)}


@_case
def images_cached(spec, config):
    """Whole epochs of a frozen backbone's head on cached features, as
    kft-train's cached phase runs them (kft/core/cached.py): the features of
    every image computed once (`features_seconds`, not in the rates), then
    one warm-up epoch and `repeats` timed epochs of the head's fit."""
    split, num_classes = read_split(spec["data"])
    built = builder.build(config, num_classes)
    compile_last_phase(built, config, num_classes)
    extractor, head = cached.split(built)
    CLASSIFICATION.compile(head, built.model.optimizer, config, num_classes)
    epochs = labelled.batches(built, split, config, True)
    started = time.perf_counter()
    labels, features = distribute.predict(extractor, epochs.ordered)
    features_seconds = time.perf_counter() - started
    feature_epochs = epochs.in_memory((features, labels))
    seconds = []
    for epoch in range(1 + spec["repeats"]):
        started = time.perf_counter()
        head.fit(
            feature_epochs.dataset(epoch, epoch + 1),
            steps_per_epoch=feature_epochs.steps(),
            epochs=1,
            verbose=0,
        )
        seconds.append(time.perf_counter() - started)
    return {
        "rates": [len(split) / s for s in seconds[1:]],
        "warmup_seconds": seconds[0],
        "features_seconds": features_seconds,
    }


def layer_flops(model):
    """Forward FLOPs per example of `model`'s Conv2D, DepthwiseConv2D and
    Dense layers (nested models walked), and the part in layers that train
    now; other layers (normalization, activations, pooling) are left out.
    """
    import keras

    total = trainable = 0
    for layer in compat.flatten_layers(model):
        if isinstance(layer, keras.Model):
            continue
        if not isinstance(
            layer,
            (
                keras.layers.Conv2D,
                keras.layers.DepthwiseConv2D,
                keras.layers.Dense,
            ),
        ):
            continue
        out = layer.output.shape[1:]
        kernel = layer.kernel.shape
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            # One multiply-add per kernel tap and output value.
            flops = 2 * kernel[0] * kernel[1] * math.prod(out)
        else:
            # Conv2D kernel [kh, kw, in/groups, filters], Dense [in, out].
            flops = 2 * math.prod(kernel[:-1]) * math.prod(out)
        total += flops
        if layer.trainable_weights:
            trainable += flops
    return total, trainable
