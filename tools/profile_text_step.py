"""What one of kft's kernel choices is worth on kft's text train step.

Builds an experiment's text model as `kft-train` does (whole model
trainable, its optimizer and metrics), then times `train_on_batch` on one
random [batch, length] token batch with Keras's own way ("plain") and
kft's ("kft"), alternating the two in one process so both see the same
machine, the other choice left as kft makes it. Prints the median step
time of each and the speed-up. `--compare`:

    einsum  Keras's einsum vs kft's folded 2-D matmuls (kft/kernels.py)
    adam    Keras's Adam ops vs TensorFlow's fused kernel (kft/optim.py)

    python tools/profile_text_step.py --compare=einsum --lengths=64,128

Measured on the 2-core CPU (2026-11-28, machine otherwise idle), MiniLM,
batch 32: length 64: plain 1.88 s, folded 1.50 s (1.25x); length 128:
see the closing note of issue 8.
"""

import statistics
import time

import numpy as np
import tensorflow as tf
from absl import app, flags

from kft import builder, experiments, kernels, optim, run
from kft.peers import kft_peer

_COMPARE = flags.DEFINE_enum("compare", "einsum", ["einsum", "adam"], "")
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
    for mode in ("plain", "kft"):
        _choose(mode == "kft")
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
    _choose(True)
    plain = statistics.median(seconds["plain"])
    ours = statistics.median(seconds["kft"])
    print(
        f"{_COMPARE.value}, length {length}, batch {_BATCH.value}: plain "
        f"{plain:.3f} s/step, kft {ours:.3f} s/step, {plain / ours:.2f}x",
        flush=True,
    )


def _choose(kft_way):
    if _COMPARE.value == "einsum":
        (kernels.install if kft_way else kernels.uninstall)()
    else:
        optim.FUSED_ADAM = kft_way


def main(argv):
    del argv
    for length in _LENGTHS.value:
        profile(int(length))


if __name__ == "__main__":
    app.run(main)
