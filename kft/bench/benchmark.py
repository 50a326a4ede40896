"""Speed measurements behind `kft-benchmark`, one function per mode.

`data`: is the input pipeline fast enough? It times the training split's
`tf.data` pipeline alone, on its first (cold: reading, decoding or
tokenizing, filling the cache) and a later (warm: from the cache) pass,
next to the train step of the built model on the same batches, so input
never starves the model when the pipeline is several times faster.

`compare`: kft against what a user would otherwise write, on the same
model, data, batch size and optimizer (AdamW), in one invocation: each case
runs in its own process (kft/bench/peers/), warm-up steps are excluded, and each
figure is the median of several repeats. Suites:

    text_fixed   training steps on [batch, length] token batches, for each
                 length: kft vs plain keras-hub fit vs PyTorch+transformers
    text_epoch   whole epochs of the experiment's training texts from raw
                 text (tokenizing included): kft's length-grouped batches vs
                 keras-hub padded to kft's sequence length vs PyTorch with
                 dynamic padding and length grouping
    images       image-backbone training steps (random weights): kft vs
                 plain keras.applications fit; and a frozen backbone with a
                 Dense head: kft recomputing the backbone every step vs
                 kft's cached-features path (kft/core/cached.py: the features
                 computed once, then whole epochs of the head's fit)
    utilization  a float32 matmul peak measured in the same run; every row
                 gets its achieved model FLOP/s and share of that peak

The cases are built in kft/bench/peers/cases.py, run by kft/bench/peers/, and
reported
by kft/bench/peers/table.py.
"""

import dataclasses
import os
import pathlib
import sys
import tempfile
import time

import numpy as np

from kft import run
from kft.bench import machine, peers
from kft.bench.peers import cases as cases_lib
from kft.bench.peers import table
from kft.bench.peers.kft_peer import compile_last_phase
from kft.core.errors import UserError
from kft.tasks import labelled


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
    built, splits = labelled.prepare(config)
    dataset = labelled.batches(built, splits.train, config, True).dataset(0, 1)
    cold, examples = time_pipeline(dataset)
    warm, _ = time_pipeline(dataset, pipeline_batches)
    compile_last_phase(built, config, len(splits.labels))
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
        dataset = labelled.batches(built, split, config, True).dataset(0, 3)
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


# === compare ===

SUITES = ("text_fixed", "text_epoch", "images", "utilization")
PEERS = ("kft", "keras", "torch")


@dataclasses.dataclass
class Settings:
    """What `compare` measures and how; `TINY` is a smoke-test size."""

    suites: tuple = SUITES
    peers: tuple = PEERS
    repeats: int = 3
    steps: int = 5
    warmup: int = 3
    batch_size: int = 32
    lengths: tuple = (64, 128)
    image_backbone: str = "ResNet50"
    image_size: int = 224
    # The Hugging Face folder the PyTorch peer loads; "" is the backbone.
    torch_model: str = ""
    # Each case in its own process (peak memory per peer); False runs them
    # here, without memory figures.
    isolate: bool = True
    # Threads of every framework in every case (0: their defaults, all
    # cores); needs `isolate`.
    threads: int = 0
    matmul_size: int = 2048
    # Batches of distinct examples in the step suites' data.
    distinct_batches: int = 4


TINY = dict(
    repeats=2,
    steps=2,
    warmup=1,
    batch_size=4,
    lengths=(16, 32),
    image_backbone="MobileNetV3Small",
    image_size=32,
    matmul_size=256,
    distinct_batches=2,
)


def _check_bench_extra(settings):
    text = {"text_fixed", "text_epoch"} & set(settings.suites)
    if not (text and "torch" in settings.peers):
        return
    import importlib.util

    for module in ("torch", "transformers"):
        if importlib.util.find_spec(module) is None:
            raise UserError(
                "the PyTorch peer needs `pip install -e .[bench]` (torch, "
                f"transformers; {module} is missing), or leave it out with "
                "--peers=kft,keras"
            )


def _run_case(spec, settings, work, index):
    """Runs one case (in a child process unless settings.isolate is off)."""
    if not settings.isolate:
        return peers.run_case(spec) | {"peak_rss_mb": None}
    result, lines = peers.run_isolated(
        spec,
        pathlib.Path(work) / f"case_{index}.json",
        pathlib.Path(work) / f"result_{index}.json",
    )
    if result is None:
        sys.stderr.write("\n".join(lines) + "\n")
        return {"error": lines[-1], "peak_rss_mb": None}
    return result


def compare(config, settings, log=print):
    """Runs the suites of `settings`; returns the report (JSON-able).

    Args:
        config: the experiment's config (after --config overrides): kft's
            settings, and for text its backbone folder and training data.
        settings: a `Settings`.
        log: progress lines go here.
    """
    unknown = set(settings.suites) - set(SUITES)
    if unknown:
        raise UserError(
            f"unknown suite '{sorted(unknown)[0]}'; valid: {', '.join(SUITES)}"
        )
    unknown = set(settings.peers) - set(PEERS)
    if unknown:
        raise UserError(
            f"unknown peer '{sorted(unknown)[0]}'; valid: {', '.join(PEERS)}"
        )
    if "kft" not in settings.peers:
        raise UserError("--peers must include kft (ratios are kft's)")
    if settings.warmup < 1 or settings.steps < 1 or settings.repeats < 1:
        raise UserError("--warmup, --steps and --repeats must be at least 1")
    if settings.threads and not settings.isolate:
        raise UserError("--threads needs --isolate (a process per case)")
    _check_bench_extra(settings)
    report = {
        "settings": dataclasses.asdict(settings),
        "machine": machine.describe(),
        "rows": [],
    }
    with tempfile.TemporaryDirectory(prefix="kft-benchmark-") as work:
        cases = []
        if {"text_fixed", "text_epoch"} & set(settings.suites):
            cases += cases_lib.text_cases(config, settings, work, log)
        if "images" in settings.suites:
            cases += cases_lib.image_cases(config, settings, work)
        if "utilization" in settings.suites:
            cases.append(cases_lib.matmul_case(settings))
        for index, spec in enumerate(cases):
            started = time.perf_counter()
            row = table.row(spec, _run_case(spec, settings, work, index))
            report["rows"].append(row)
            log(
                f"{row['suite']} | {row['case']} | {row['label']}: "
                f"{table.describe(row)} "
                f"({time.perf_counter() - started:.0f} s)"
            )
    report["machine"]["load_average_end"] = os.getloadavg()[0]
    table.add_ratios(report)
    report["targets"] = table.targets(report["rows"])
    return report
