"""Framework-free measuring helpers: rates, peak memory, FLOPs, matmul peak.

FLOPs follow the usual model-FLOPs convention: a multiply-add is 2 FLOPs,
and a training step costs its forward pass plus twice the forward FLOPs of
the layers that train (the backward pass), so 3x forward when all train.
"""

import os
import pathlib
import resource
import statistics
import time


def step_rates(ends, warmup, steps, repeats, samples_per_step):
    """Samples/s of each repeat from step end times.

    Args:
        ends: {steps done: time.perf_counter() at that point}; steps done
            must include warmup, warmup + steps, ... (a repeat starts when
            the last warm-up step ends, so warm-up is excluded).
        warmup, steps, repeats: warm-up steps, steps per repeat, repeats.
        samples_per_step: the batch size.
    """
    rates = []
    for repeat in range(repeats):
        first = warmup + repeat * steps
        last = first + steps
        if first not in ends or last not in ends:
            raise ValueError(
                f"no step time at step {first} or {last}; warm-up and steps "
                "must be multiples of steps_per_execution"
            )
        rates.append(steps * samples_per_step / (ends[last] - ends[first]))
    return rates


def median(values):
    return statistics.median(values) if values else None


def peak_rss_mb():
    """This process's peak resident memory in MiB.

    Linux: VmHWM, the high-water mark of this program's memory since it
    started. Not ru_maxrss, which Linux carries over from the forking
    parent across exec, so a child of a 900 MiB parent would report 900.
    """
    try:
        with open("/proc/self/status") as file:
            for line in file:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def transformer_train_flops(layers, hidden, intermediate, length):
    """Training FLOPs of one sequence of `length` tokens through a BERT-style
    encoder: projections (4 h^2 per token), feed-forward (2 h f per token)
    and attention scores and sums (2 L h per token) per layer, each 2 FLOPs
    per multiply-add, times 3 (forward and backward). Embedding lookups and
    the small head are left out."""
    per_token = 4 * hidden * hidden + 2 * hidden * intermediate
    per_token += 2 * length * hidden
    return 3 * 2 * layers * length * per_token


def _best_seconds(run, repeats):
    run()  # warm-up: thread pools, allocation
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def matmul_peak(spec):
    """GFLOP/s of a float32 size x size matmul in numpy, TensorFlow and
    (when installed and asked for) PyTorch, best of `repeats` runs each;
    the largest is this machine's measured peak for utilization."""
    import numpy as np

    size, repeats = spec["matmul_size"], spec["matmul_repeats"]
    flops = 2 * size**3
    a = np.random.default_rng(0).standard_normal((size, size), np.float32)
    found = {"numpy": flops / _best_seconds(lambda: a @ a, repeats) / 1e9}

    import tensorflow as tf

    t = tf.constant(a)
    found["tensorflow"] = (
        flops / _best_seconds(lambda: tf.linalg.matmul(t, t).numpy(), repeats)
    ) / 1e9
    if spec.get("torch"):
        import torch

        p = torch.from_numpy(a)
        found["torch"] = flops / _best_seconds(lambda: p @ p, repeats) / 1e9
    return {"gflops": found, "size": size}


def child_env():
    """The environment of a benchmark's child process: TensorFlow quiet,
    and this checkout's kft first on the path (the one that runs here)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    root = str(pathlib.Path(__file__).resolve().parents[3])  # holds kft/
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (root, env.get("PYTHONPATH", "")) if p
    )
    return env
