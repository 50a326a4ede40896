"""Speed measurements behind `kft-benchmark`, one function per mode.

`data`: is the input pipeline fast enough? It times the training split's
`tf.data` pipeline alone, on its first (cold: reading, decoding or
tokenizing, filling the cache) and a later (warm: from the cache) pass,
next to the train step of the built model on the same batches, so input
never starves the model when the pipeline is several times faster.
"""

import time

import numpy as np

from kft import freeze, optim, run, training


def _count(batch):
    """Examples in a batch of (inputs, labels)."""
    return int(np.shape(batch[1])[0])


def time_pipeline(dataset, limit=None):
    """Examples per second over `dataset` (its first `limit` batches)."""
    if limit is not None:
        dataset = dataset.take(limit)
    started = time.perf_counter()
    examples = sum(_count(batch) for batch in dataset)
    return examples / (time.perf_counter() - started), examples


def text_shapes(dataset, epochs=1):
    """The distinct (batch, length) shapes of text batches over epochs."""
    shapes = set()
    for _ in range(epochs):
        for inputs, _ in dataset:
            shapes.add(tuple(inputs["token_ids"].shape))
    return shapes


def _compile_last_phase(built, config, num_classes):
    """Sets the plan's last phase trainable and compiles, as fit would."""
    phase = freeze.plan_from_config(config)[-1]
    multipliers = freeze.apply_phase(
        built, phase, built.family.block_pattern, config.train_batchnorm
    )
    schedule = optim.make_schedule(config.schedule, phase.learning_rate, 1000)
    optimizer = optim.make_optimizer(config.optimizer, schedule, multipliers)
    training.compile_model(built.model, optimizer, config, num_classes)


def time_train_steps(model, batches):
    """Examples per second of `model.train_on_batch` over `batches`.

    A first pass over the same batches traces and compiles every shape, so
    the timed second pass measures steady-state steps.
    """
    for inputs, labels in batches:
        model.train_on_batch(inputs, labels)
    started = time.perf_counter()
    for inputs, labels in batches:
        model.train_on_batch(inputs, labels)
    examples = sum(_count(batch) for batch in batches)
    return examples / (time.perf_counter() - started)


def data(config, pipeline_batches=50, train_batches=5):
    """Pipeline and train-step throughput of `config`'s training data.

    Returns a dict of examples/s: `cold` (the first full epoch),
    `warm` (up to `pipeline_batches` batches from the cache), `train` (the
    train step on `train_batches` of those batches) and `ratio` (warm over
    train), plus for text the distinct batch shapes of one epoch in each
    shape mode.
    """
    run.set_seed(config.seed)
    run.check_choices(config)
    built, splits = run.prepare(config)
    dataset = run.batches(built, splits.train, config, True).dataset(0, 1)
    cold, examples = time_pipeline(dataset)
    warm, _ = time_pipeline(dataset, pipeline_batches)
    _compile_last_phase(built, config, len(splits.labels))
    batches = list(dataset.take(train_batches))
    train = time_train_steps(built.model, batches)
    result = {
        "examples": examples,
        "batch_size": config.data.batch_size,
        "cold": cold,
        "warm": warm,
        "train": train,
        "ratio": warm / train,
    }
    if built.modality == "text":
        result["shapes"] = _shapes_by_mode(built, splits.train, config)
    return result


def _shapes_by_mode(built, split, config):
    """Distinct batch shapes over 3 epochs with dynamic and fixed shapes."""
    counts = {}
    chosen = config.data.text_shapes
    for mode in ("dynamic", "fixed"):
        config.data.text_shapes = mode
        dataset = run.batches(built, split, config, True).dataset(0, 3)
        counts[mode] = len(text_shapes(dataset))
    config.data.text_shapes = chosen
    return counts


def format_data(name, result):
    """The lines `kft-benchmark data` prints."""
    lines = [
        f"{name}: {result['examples']} training examples, batch "
        f"{result['batch_size']}",
        f"  pipeline, cold (first epoch)  {result['cold']:10.1f} examples/s",
        f"  pipeline, warm (cached)       {result['warm']:10.1f} examples/s",
        f"  train step                    {result['train']:10.1f} examples/s",
        f"  warm pipeline / train step    {result['ratio']:10.1f}x "
        f"(cold / train {result['cold'] / result['train']:.1f}x)",
    ]
    if "shapes" in result:
        shapes = result["shapes"]
        lines.append(
            f"  text batch shapes over 3 epochs: {shapes['dynamic']} dynamic, "
            f"{shapes['fixed']} fixed"
        )
    return "\n".join(lines)
