"""`python -m kft.bench.peers SPEC OUT`: one benchmark case in its own process.

Writes the case's result and this process's peak resident memory to OUT
as JSON; a user error (kft.errors.UserError) is written as {"error": ...}.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from kft.bench.peers import measure, run_case  # noqa: E402
from kft.core.errors import UserError  # noqa: E402


def limit_threads(count, torch=False, tensorflow=True):
    """Every framework in this process at `count` threads, before any of
    them runs: OpenMP and BLAS pools (PyTorch, numpy) by environment,
    TensorFlow's op pools by its config."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(count)
    if torch:
        import torch

        torch.set_num_threads(count)
    if tensorflow:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(count)
        tf.config.threading.set_inter_op_parallelism_threads(count)


def main(spec_path, out_path):
    with open(spec_path) as file:
        spec = json.load(file)
    if spec.get("threads"):
        peer = spec["peer"]
        limit_threads(
            spec["threads"],
            torch=peer == "torch" or bool(spec.get("torch")),
            tensorflow=peer != "torch",
        )
    try:
        result = run_case(spec)
    except UserError as error:
        result = {"error": str(error)}
    result["peak_rss_mb"] = measure.peak_rss_mb()
    with open(out_path, "w") as file:
        json.dump(result, file)


if __name__ == "__main__":
    main(*sys.argv[1:])
