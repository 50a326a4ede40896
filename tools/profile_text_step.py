"""What one of kft's kernel choices is worth on kft's text train step.

Builds an experiment's text model as `kft-train` does (whole model
trainable, its optimizer and metrics), then times `train_on_batch` on one
random [batch, length] token batch without and with one choice,
alternating the two in one process so both see the same machine, every
other choice left as kft makes it. Prints the median step time of each
and the speed-up. `--compare`:

    einsum  Keras's einsum vs kft's folded 2-D matmuls (kft/model/kernels.py)
    adam    Keras's Adam ops vs TensorFlow's fused kernel (kft/core/optim.py)
    xla     the step without and with XLA (`--config.jit_compile`; auto
            in kft: off on CPU, on on GPUs)

    python tools/profile_text_step.py --compare=einsum --lengths=64,128

Measured on a 2-core AVX2 CPU, 2026-11-28, otherwise idle, MiniLM, batch
32 (median of 4-8 rounds; an AVX-512 CPU's figures are in
docs/benchmarks.md):

    einsum  length 64: 2.05 -> 1.53 s (1.35x)
            length 128: 3.95 -> 3.56 s (1.11x)
    adam    length 64: 1.57 -> 1.48 s (1.06x), 8 rounds of 3 steps
"""

import statistics
import time

import numpy as np
import tensorflow as tf
from absl import app, flags

from kft import run
from kft.bench.peers import kft_peer
from kft.core import experiments, optim
from kft.model import builder, kernels

_COMPARE = flags.DEFINE_enum(
    "compare", "einsum", ["einsum", "adam", "xla"], "What to measure."
)
_EXPERIMENT = flags.DEFINE_string("experiment", "drug_reviews_minilm", "")
_LENGTHS = flags.DEFINE_list("lengths", "64,128", "Sequence lengths.")
_BATCH = flags.DEFINE_integer("batch_size", 32, "")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Alternating rounds.")
_STEPS = flags.DEFINE_integer("steps", 2, "Timed steps per round and mode.")


def _batch(model, batch, length):
    rng = np.random.default_rng(0)
    names = {tensor.name for tensor in model.inputs}
    inputs = {
        "token_ids": tf.constant(rng.integers(1000, 20000, (batch, length))),
        "padding_mask": tf.ones((batch, length), tf.bool),
    }
    if "segment_ids" in names:
        inputs["segment_ids"] = tf.zeros((batch, length), tf.int32)
    return inputs, tf.constant(rng.integers(0, 3, (batch,)))


def profile(length):
    config = experiments.load(_EXPERIMENT.value)
    config.plan = "full"
    config.data.batch_size = _BATCH.value
    config.data.sequence_length = length
    run.set_seed(config.seed)
    built = builder.build(config, 3)
    kft_peer.compile_last_phase(built, config, 3)
    model = built.model
    inputs, labels = _batch(model, _BATCH.value, length)
    functions = {}
    for mode in ("without", "with"):
        _choose(model, mode == "with")
        model.train_function = None
        model.train_on_batch(inputs, labels)  # traces in this mode
        functions[mode] = model.train_function
    seconds = {mode: [] for mode in functions}
    for _ in range(_ROUNDS.value):
        for mode, function in functions.items():
            model.train_function = function
            model.train_on_batch(inputs, labels)  # warm
            started = time.perf_counter()
            for _ in range(_STEPS.value):
                model.train_on_batch(inputs, labels)
            seconds[mode].append((time.perf_counter() - started) / _STEPS.value)
    _choose(model, _COMPARE.value != "xla")
    without = statistics.median(seconds["without"])
    with_it = statistics.median(seconds["with"])
    print(
        f"{_COMPARE.value}, length {length}, batch {_BATCH.value}: without "
        f"{without:.3f} s/step, with {with_it:.3f} s/step, "
        f"{without / with_it:.2f}x",
        flush=True,
    )


def _choose(model, on):
    if _COMPARE.value == "einsum":
        (kernels.fold if on else kernels.unfold)(model)
    elif _COMPARE.value == "adam":
        optim.FUSED_ADAM = on
    else:
        model.jit_compile = on


def main(argv):
    del argv
    for length in _LENGTHS.value:
        profile(int(length))


if __name__ == "__main__":
    app.run(main)
