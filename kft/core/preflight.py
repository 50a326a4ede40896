"""Checks that a run will work on a TPU, before a TPU minute is spent.

A TPU compiles one program per input shape, cannot run Python, and (a
Cloud TPU reached over the network) reads files on its own hosts, which see
Google Cloud Storage and not this machine's disk. Each check raises a
UserError with one line naming the problem and the fix.
"""

import tensorflow as tf

from kft.core import compat, files
from kft.core.errors import UserError

# Ops that call back into Python (tf.py_function, tf.numpy_function).
PYTHON_OPS = ("EagerPyFunc", "PyFunc", "PyFuncStateless")


def check_paths(config, model_dir):
    """A remote TPU needs gs:// for the run folder and the data.

    On a TPU VM (`--config.tpu=local`, Colab's TPU runtime) the host is
    this machine, so local paths work there.
    """
    if config.tpu == "local":
        return
    if files.is_local(model_dir):
        raise UserError(
            f"--model_dir={model_dir} is local, but the TPU writes through "
            "its own hosts: use a gs:// folder (or --config.tpu=local on a "
            "TPU VM)"
        )
    paths = {}
    for key in ("train", "validation", "test"):
        spec = config.data[key]
        if spec.startswith("tfds:"):
            paths["tfds_data_dir"] = config.data.tfds_data_dir
        elif spec:
            paths[key] = spec
    for key, path in paths.items():
        if files.is_local(path):
            raise UserError(
                f"--config.data.{key}={path or '(empty: local)'} is local, "
                "but the TPU reads data through its own hosts: use a gs:// "
                "path"
            )


def check_config(config):
    if config.data.text_shapes == "dynamic":
        raise UserError(
            "--config.data.text_shapes=dynamic trims every batch to its "
            "own length, a new TPU program each time: use fixed (or auto)"
        )


def check_dataset(dataset, name, static="all"):
    """Rejects a pipeline with Python ops, or with a shape that varies.

    `static` says which dimensions must be fixed: "all", "batch" (the
    first: full batches, drop_remainder) or "none". Text batches come in a
    few padded lengths (`check_config` rules out the dynamic mode), so
    their length dimension may vary.
    """
    for spec in tf.nest.flatten(dataset.element_spec):
        shape = spec.shape
        if static == "none":
            break
        dims = shape if static == "all" else shape[:1]
        if shape.rank is None or any(d is None for d in dims):
            raise UserError(
                f"the {name} data has a dynamic shape {shape}; TPUs need "
                "static shapes (full batches: drop_remainder; fixed sizes)"
            )
    graph = compat.serialized_graph(dataset)
    graph_def = tf.compat.v1.GraphDef.FromString(graph)
    nodes = list(graph_def.node)
    for function in graph_def.library.function:
        nodes += list(function.node_def)
    for node in nodes:
        if node.op in PYTHON_OPS:
            raise UserError(
                f"the {name} data pipeline calls Python ({node.op}, from "
                "tf.py_function or tf.numpy_function), which a TPU cannot "
                "run: write it with TensorFlow ops"
            )
