"""The parity check: an export answers as the Keras model does.

A sample of the test split (raw texts or encoded images, saved with the
run so kft-export can check again) goes through the SavedModel in a fresh
process that imports only `tensorflow` and `tensorflow_text`, and through
the Keras model here; probabilities must agree within `tolerance()` and
the served class ids and labels must be the decisions the run made.
"""

import os
import tempfile

import numpy as np
import tensorflow as tf

from kft import data
from kft.core import distribute, files
from kft.core.errors import ExportError, UserError
from kft.serving import check as check_lib

# How far a served figure may be from the Keras model's, by the compute
# dtype both ran in: float32's rounding, or a few roundings of the
# mixed-precision dtype's (8 bits of mantissa for bfloat16, 11 for
# float16), as the SavedModel's graph rounds in other places than Keras.
TOLERANCES = {"float32": 1e-5, "float16": 2e-3, "bfloat16": 1e-2}
# How many test examples the parity check runs through both models.
CHECK_EXAMPLES = 128


def tolerance(compute_dtype=None):
    """The largest difference allowed between served and Keras figures
    computed in `compute_dtype` (by default the precision policy's)."""
    if compute_dtype is None:
        import keras

        compute_dtype = keras.mixed_precision.global_policy().compute_dtype
    return TOLERANCES.get(compute_dtype, TOLERANCES["float32"])


# Runs in a subprocess with nothing of kft or Keras imported: what TF
# Serving or a user's own Python sees.
_CHECK_SCRIPT = """
import json, os, sys, time
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry

path, inputs_file, outputs_file = sys.argv[1:4]
# The ops core TensorFlow lacks: what a server must link in (TF Text's).
proto = saved_model_pb2.SavedModel()
with open(os.path.join(path, "saved_model.pb"), "rb") as file:
    proto.ParseFromString(file.read())
graph = proto.meta_graphs[0].graph_def
ops = {node.op for node in graph.node}
ops |= {n.op for f in graph.library.function for n in f.node_def}
extra_ops = sorted(op for op in ops if op_def_registry.get(op) is None)
import tensorflow_text  # noqa: F401  (registers the tokenizer ops)
started = time.time()
loaded = tf.saved_model.load(path)
load_seconds = time.time() - started
serve = loaded.signatures["serving_default"]
names = sorted(serve.structured_input_signature[1])  # text, text_pair
values = tf.io.parse_tensor(tf.io.read_file(inputs_file), tf.string)
if len(names) == 1:
    values = values[tf.newaxis]
started = time.time()
out = serve(**dict(zip(names, tf.unstack(values))))
call_seconds = time.time() - started
for key in out:
    tf.io.write_file(f"{outputs_file}.{key}", tf.io.serialize_tensor(out[key]))
signatures = {
    key: {
        "inputs": {k: [v.dtype.name, v.shape.as_list()]
                   for k, v in fn.structured_input_signature[1].items()},
        "outputs": {k: [v.dtype.name, v.shape.as_list()]
                    for k, v in fn.structured_outputs.items()},
    }
    for key, fn in loaded.signatures.items()
}
modules = sorted(m for m in ("keras", "keras_hub", "kft") if m in sys.modules)
print(json.dumps({"signatures": signatures, "load_seconds": load_seconds,
                  "call_seconds": call_seconds, "imported": modules,
                  "non_core_ops": extra_ops}))
"""


def _run_in_fresh_process(path, values):
    """Calls `serving_default` of `path` on `values` in a new interpreter;
    returns (its report, {output name: array})."""
    with tempfile.TemporaryDirectory() as scratch:
        inputs_file = os.path.join(scratch, "inputs")
        outputs_file = os.path.join(scratch, "outputs")
        tf.io.write_file(
            inputs_file, tf.io.serialize_tensor(tf.constant(values))
        )
        report = check_lib.run_script(
            _CHECK_SCRIPT, [path, inputs_file, outputs_file]
        )

        def read(suffix, dtype):
            raw = tf.io.read_file(outputs_file + suffix)
            return tf.io.parse_tensor(raw, dtype).numpy()

        outputs = report["signatures"][check_lib.SERVING]["outputs"]
        served = {
            key: read(f".{key}", tf.as_dtype(dtype))
            for key, (dtype, _) in outputs.items()
        }
    return report, served


def sample_inputs(split, modality, count=CHECK_EXAMPLES):
    """Up to `count` raw inputs of `split`: texts, (texts, pairs) or
    encoded image bytes."""
    values = list(split.values[:count])
    if split.pairs is not None:
        return values, list(split.pairs[:count])
    if modality == "image":
        values = [
            tf.io.read_file(v).numpy() if isinstance(v, str) else v
            for v in values
        ]
    return values


def serve_probabilities(path, split, modality, batch_size=64):
    """`serving_default` of the SavedModel at `path` over all of `split`."""
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops)

    serve = tf.saved_model.load(path).signatures[check_lib.SERVING]
    names = sorted(serve.structured_input_signature[1])  # text, text_pair
    outputs = []
    for start in range(0, len(split), batch_size):
        part = slice(start, start + batch_size)
        pairs = None if split.pairs is None else split.pairs[part]
        part = data.Split(
            split.name,
            split.source,
            split.values[part],
            split.label_ids[part],
            pairs,
        )
        values = sample_inputs(part, modality, count=batch_size)
        values = values if isinstance(values, tuple) else (values,)
        out = serve(**{n: tf.constant(v) for n, v in zip(names, values)})
        key = "probabilities" if "probabilities" in out else "score"
        outputs.append(out[key].numpy())
    return np.concatenate(outputs)


def save_sample(values, path):
    """Keeps the check's raw inputs in the run folder, for kft-export.

    Pairs are kept as a [2, N] tensor, other inputs as [N].
    """
    tf.io.write_file(path, tf.io.serialize_tensor(tf.constant(values)))


def load_sample(path):
    if not files.exists(path):
        raise UserError(f"{path} is missing; is this a kft-train run folder?")
    # Texts come back as UTF-8 bytes, which tokenizers take as they are.
    values = tf.io.parse_tensor(tf.io.read_file(path), tf.string).numpy()
    if values.ndim == 2:
        return tuple(list(row) for row in values)
    return list(values)


def keras_probabilities(built, values):
    """The Keras model's probabilities on raw `values`, in this process.

    Texts are tokenized in a graph, as the tf.data pipeline does in
    training: some keras-hub tokenizers (byte-pair ones on words their
    vocabulary cannot spell) answer differently when run eagerly.
    """
    if built.modality == "text":
        texts = values if isinstance(values, tuple) else (values,)
        inputs = tf.function(built.preprocessor)(
            *[tf.constant(v) for v in texts]
        )
    else:
        inputs = tf.cast(
            tf.stack(
                [
                    data.decode_image(v, built.image_size, built.resize)
                    for v in values
                ]
            ),
            tf.float32,
        )
    return np.asarray(distribute.predict_batch(built.model, inputs), np.float32)


def class_ids(probabilities, cut=None):
    """Class ids: argmax, or P(class 1) >= `cut` for two classes.

    The comparison is in float32, as in the SavedModel's graph
    (`export.class_outputs`), so the metrics and the export decide alike
    on every example.
    """
    probabilities = np.asarray(probabilities, np.float32)
    if cut is None:
        return np.argmax(probabilities, axis=-1)
    if probabilities.shape[-1] != 2:
        raise ValueError("a decision threshold needs two classes")
    return (probabilities[:, 1] >= np.float32(cut)).astype(np.int64)


def check(path, built, values, compare):
    """Compares the SavedModel at `path` with the Keras model on `values`.

    `compare(expected, served)` is the task's comparison of the served
    outputs with the Keras model's (probabilities within `tolerance()`, the
    same decisions except near ties); it returns (figures, problems).
    Returns the figures written to kft_export_check.json; raises
    ExportError on any problem.
    """
    expected = keras_probabilities(built, values)
    report, served = _run_in_fresh_process(path, values)
    count = len(values[0] if isinstance(values, tuple) else values)
    figures, problems = compare(expected, served)
    figures = {"examples": count, **figures, **report}
    expected_inputs = {"text"} if built.modality == "text" else {"image_bytes"}
    if built.pairs:
        expected_inputs.add("text_pair")
    got_inputs = set(report["signatures"][check_lib.SERVING]["inputs"])
    if got_inputs != expected_inputs:
        problems.append(f"serving inputs are {sorted(got_inputs)}")
    if problems:
        raise ExportError("export refused: " + "; ".join(problems))
    return figures


def compare_classes(expected, served, labels, cut=None):
    """(figures, problems) of served class probabilities, ids and labels
    (`export.class_outputs`) against the Keras model's `expected`
    probabilities, decided by `cut` as `class_ids` decides."""
    got, served_ids = served["probabilities"], served["class_id"]
    got_labels = [v.decode("utf-8") for v in served["label"]]
    difference = float(np.max(np.abs(got - expected))) if len(got) else 0.0
    allowed = tolerance()
    if cut is None:
        top2 = np.sort(expected, axis=-1)[:, -2:]
        tie = (top2[:, 1] - top2[:, 0]) < allowed
    else:
        tie = np.abs(expected[:, 1] - cut) < allowed
    expected_ids = class_ids(expected, cut)
    wrong_ids = (served_ids != expected_ids) & ~tie
    wrong_labels = [
        i
        for i, label in enumerate(got_labels)
        if label != labels[served_ids[i]]
    ]
    figures = {
        "max_abs_difference": difference,
        "tolerance": allowed,
        "class_id_mismatches": int(wrong_ids.sum()),
        "label_mismatches": len(wrong_labels),
        "near_ties": int(tie.sum()),
        "threshold": cut,
    }
    problems = []
    if difference > allowed:
        problems.append(
            f"probabilities differ by up to {difference:.2e} (> {allowed})"
        )
    if wrong_ids.any():
        problems.append(f"{int(wrong_ids.sum())} class ids differ")
    if wrong_labels:
        problems.append(f"{len(wrong_labels)} labels differ")
    return figures, problems


# === Versions and the atomic write ===
