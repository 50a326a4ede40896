"""SavedModel export for TF Serving: raw inputs in, checked against Keras.

`export` writes `BASE/<next integer>/` with two signatures:

- `serving_default`: raw inputs, `text` (`tf.string [None]`) for text
  models (and `text_pair` for pairs of texts) or `image_bytes` (encoded
  JPEG/PNG/BMP/GIF, `tf.string [None]`) for image models. Cleaning and
  tokenizing text (the training sequence length; longer texts are
  truncated), decoding, resizing and normalizing
  images run in the graph, through the same functions training used.
- `serving_preprocessed`: what the Keras model takes, for users who batch
  their own: `token_ids`, `padding_mask` (and `segment_ids` where the
  backbone has them) as `int32 [None, None]`, or `image` as
  `float32 [None, S, S, 3]` RGB pixels in [0, 255].

Both return `probabilities` (`float32 [None, C]`), `class_id`
(`int64 [None]`) and `label` (`tf.string [None]`, looked up in
`assets/labels.txt`). `class_id` is the argmax, or, for a two-class run
with a decision threshold (kft/tasks/classification/threshold.py), 1 where
P(class 1) >= the
threshold, so served labels agree with the run's metrics.
Multilabel and regression runs answer their own outputs instead
(kft/tasks/dispatch.py: `probabilities`, `decisions`, `labels`; or `score`).

Only the variables the signatures use are saved (Keras's `ExportArchive`
keeps the optimizer's slots out), so the SavedModel holds each weight once.
The folder is written under a hidden temporary name, loaded and run in a
fresh Python process that imports only `tensorflow` and `tensorflow_text`,
compared with the Keras model, and only then renamed to its number: TF
Serving, which polls the base folder, never sees a partial version.

A remote base (`gs://...`; `ram://` in tests) is built and checked in a
local temporary folder the same way (the checking process cannot see the
parent's `ram://` files, and checking before the upload saves uploading a
refused export). It is then uploaded to a hidden staging folder under the
base and copied from there into `BASE/<N>/` (a copy within the bucket),
`saved_model.pb` and then kft_export_check.json last: gfile cannot rename
folders (object stores have no folders; `ram://` renames lose files), and
a version without `saved_model.pb` is one TF Serving cannot load and a
version without the check file one kft does not count as complete.
"""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

import keras
import numpy as np
import tensorflow as tf

from kft import data
from kft.core import compat, distribute, files
from kft.core.errors import ExportError, UserError
from kft.serving import check as check_lib
from kft.tasks import dispatch as tasks
from kft.tasks.classification import threshold as threshold_lib

SERVING = "serving_default"
PREPROCESSED = "serving_preprocessed"
CHECK_FILE = "kft_export_check.json"
TOLERANCE = 1e-5
# How many test examples the parity check runs through both models.
CHECK_EXAMPLES = 128


# === Signatures ===


def _label_table(labels_path):
    """class id -> label, read from a text file that becomes an asset."""
    initializer = tf.lookup.TextFileInitializer(
        labels_path,
        key_dtype=tf.int64,
        key_index=tf.lookup.TextFileIndex.LINE_NUMBER,
        value_dtype=tf.string,
        value_index=tf.lookup.TextFileIndex.WHOLE_LINE,
    )
    return tf.lookup.StaticHashTable(initializer, default_value="")


def _outputs(probabilities, table, threshold=None):
    probabilities = tf.cast(probabilities, tf.float32)
    if threshold is None:
        class_id = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
    else:
        # float32 on both sides, as kft.threshold.decide compares.
        cut = tf.constant(threshold, tf.float32)
        class_id = tf.cast(probabilities[:, 1] >= cut, tf.int64)
    return {
        "probabilities": probabilities,
        "class_id": class_id,
        "label": table.lookup(class_id),
    }


def _text_inputs(model):
    return {
        name: tf.TensorSpec([None, None], tensor.dtype, name=name)
        for name, tensor in model.input.items()
    }


def _add_text_endpoints(archive, model, preprocessor, decide, pairs=False):
    for layer in preprocessor.layers():
        archive.track(layer)
    names = list(model.input)

    def serve(text, text_pair=None):
        packed = preprocessor(text, text_pair)
        inputs = {
            name: tf.cast(packed[name], model.input[name].dtype)
            for name in names
        }
        return decide(model(inputs, training=False))

    def serve_preprocessed(inputs):
        return decide(model(inputs, training=False))

    texts = [tf.TensorSpec([None], tf.string, name="text")]
    if pairs:
        texts.append(tf.TensorSpec([None], tf.string, name="text_pair"))
    archive.add_endpoint(SERVING, serve, texts)
    archive.add_endpoint(
        PREPROCESSED, serve_preprocessed, [_text_inputs(model)]
    )


def _add_image_endpoints(archive, model, size, resize, decide):
    def serve(image_bytes):
        images = tf.map_fn(
            lambda value: data.decode_image(value, size, resize),
            image_bytes,
            fn_output_signature=tf.TensorSpec([size, size, 3], tf.uint8),
        )
        return decide(model(tf.cast(images, tf.float32), training=False))

    def serve_preprocessed(image):
        return decide(model(image, training=False))

    archive.add_endpoint(
        SERVING, serve, [tf.TensorSpec([None], tf.string, name="image_bytes")]
    )
    archive.add_endpoint(
        PREPROCESSED,
        serve_preprocessed,
        [tf.TensorSpec([None, size, size, 3], tf.float32, name="image")],
    )


def round_robin_trim(segments, budget):
    """Cuts one or two ragged token segments to `budget` tokens in all, as
    TF Text's RoundRobinTrimmer does, in plain TensorFlow ops.

    Two segments take a token each in turn until the budget is spent (the
    first gets the odd one); a segment that runs out leaves the rest to
    the other.
    """
    lengths = [tf.cast(s.row_lengths(), tf.int32) for s in segments]
    if len(segments) == 1:
        keep = [tf.minimum(lengths[0], budget)]
    else:
        first, second = lengths
        half = (budget + 1) // 2
        kept = tf.minimum(first, tf.maximum(half, budget - second))
        keep = [kept, tf.minimum(second, budget - kept)]
    return [
        tf.ragged.boolean_mask(
            segment,
            tf.ragged.range(length) < tf.expand_dims(count, 1),
        )
        for segment, length, count in zip(segments, lengths, keep)
    ]


@contextlib.contextmanager
def _plain_tensorflow_truncation(preprocessor):
    """Packs with plain-TensorFlow truncation while serving is traced.

    keras-hub's round robin truncation is the TFText>RoundRobinTrim kernel,
    newer than the TF Text ops that TF Serving's stock images carry;
    `round_robin_trim` cuts alike in core TensorFlow ops (one segment or a
    pair). The parity check compares with the training-time packer.
    """
    if preprocessor is not None:
        preprocessor(tf.constant([""]))  # builds the packer
    packer = getattr(preprocessor, "packer", None)
    if getattr(packer, "truncate", None) == "round_robin":

        def trim(inputs, sequence_length=None, **_):
            length = sequence_length or packer.sequence_length
            special = len(packer.start_value) + len(packer.end_value)
            special += (len(inputs) - 1) * len(packer.sep_value)
            return round_robin_trim(list(inputs), length - special)

        compat.replace_packer_trim(packer, trim)  # undone below
    try:
        yield
    finally:
        compat.restore_packer_trim(packer)


def write_saved_model(built, labels, path, threshold=None, delimiter=","):
    """Writes the SavedModel of `built` (a `builder.Built`) to `path`.

    `threshold`: the two-class decision threshold on P(class 1), or None
    for argmax class ids; multilabel: the per-label thresholds, whose
    chosen labels the `labels` output joins with `delimiter`.
    """
    with tempfile.TemporaryDirectory() as scratch:
        labels_path = os.path.join(scratch, "labels.txt")
        with open(labels_path, "w", encoding="utf-8") as file:
            file.write("".join(f"{label}\n" for label in labels))
        table = _label_table(labels_path)
        archive = keras.export.ExportArchive()
        # Not archive.track(built.model): that saves a second copy of every
        # weight beside the one the endpoints capture (2x the size). The
        # endpoints' own variables are all a SavedModel needs.
        archive.track(table)

        def decide(outputs):
            if built.task != "classification":
                return tasks.serving_outputs(
                    built.task, outputs, labels, threshold, delimiter
                )
            return _outputs(outputs, table, threshold)

        with (
            _plain_tensorflow_truncation(built.preprocessor),
            check_lib.quiet(),
        ):
            if built.modality == "text":
                _add_text_endpoints(
                    archive,
                    built.model,
                    built.preprocessor,
                    decide,
                    built.pairs,
                )
            else:
                _add_image_endpoints(
                    archive,
                    built.model,
                    built.image_size,
                    built.resize,
                    decide,
                )
            # Traced here; the table's file is copied into the assets.
            archive.write_out(path, verbose=False)


# === The check in a fresh process ===

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
    """Calls `serving_default` of `path` on `values` in a new interpreter."""
    with tempfile.TemporaryDirectory() as scratch:
        inputs_file = os.path.join(scratch, "inputs")
        outputs_file = os.path.join(scratch, "outputs")
        tf.io.write_file(
            inputs_file, tf.io.serialize_tensor(tf.constant(values))
        )
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                _CHECK_SCRIPT,
                path,
                inputs_file,
                outputs_file,
            ],
            capture_output=True,
            text=True,
            env=env,
        )
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise ExportError(f"the export does not load or run: {last}")
        report = json.loads(result.stdout.strip().splitlines()[-1])

        def read(suffix, dtype):
            raw = tf.io.read_file(outputs_file + suffix)
            return tf.io.parse_tensor(raw, dtype).numpy()

        outputs = report["signatures"][SERVING]["outputs"]
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

    serve = tf.saved_model.load(path).signatures[SERVING]
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


def check(path, built, labels, values, threshold=None, delimiter=","):
    """Compares the SavedModel at `path` with the Keras model on `values`.

    Returns the figures written to kft_export_check.json; raises
    ExportError when a probability differs by more than TOLERANCE or a label
    differs (except a near tie, where the two best probabilities, or
    P(class 1) and the decision `threshold`, are closer than TOLERANCE and
    either answer is right). Multilabel and regression outputs are
    compared by kft.tasks.check_served.
    """
    expected = keras_probabilities(built, values)
    report, served = _run_in_fresh_process(path, values)
    count = len(values[0] if isinstance(values, tuple) else values)
    if built.task == "classification":
        figures, problems = _check_classes(expected, served, labels, threshold)
    else:
        figures, problems = tasks.check_served(
            built.task, expected, served, labels, threshold, delimiter
        )
    figures = {"examples": count, **figures, **report}
    expected_inputs = {"text"} if built.modality == "text" else {"image_bytes"}
    if built.pairs:
        expected_inputs.add("text_pair")
    got_inputs = set(report["signatures"][SERVING]["inputs"])
    if got_inputs != expected_inputs:
        problems.append(f"serving inputs are {sorted(got_inputs)}")
    if problems:
        raise ExportError("export refused: " + "; ".join(problems))
    return figures


def _check_classes(expected, served, labels, threshold):
    """(figures, problems) of served classification outputs."""
    got, class_ids = served["probabilities"], served["class_id"]
    got_labels = [v.decode("utf-8") for v in served["label"]]
    difference = float(np.max(np.abs(got - expected))) if len(got) else 0.0
    if threshold is None:
        top2 = np.sort(expected, axis=-1)[:, -2:]
        tie = (top2[:, 1] - top2[:, 0]) < TOLERANCE
    else:
        tie = np.abs(expected[:, 1] - threshold) < TOLERANCE
    expected_ids = threshold_lib.decide(expected, threshold)
    wrong_ids = (class_ids != expected_ids) & ~tie
    wrong_labels = [
        i for i, label in enumerate(got_labels) if label != labels[class_ids[i]]
    ]
    figures = {
        "max_abs_difference": difference,
        "tolerance": TOLERANCE,
        "class_id_mismatches": int(wrong_ids.sum()),
        "label_mismatches": len(wrong_labels),
        "near_ties": int(tie.sum()),
        "threshold": threshold,
    }
    problems = []
    if difference > TOLERANCE:
        problems.append(
            f"probabilities differ by up to {difference:.2e} (> {TOLERANCE})"
        )
    if wrong_ids.any():
        problems.append(f"{int(wrong_ids.sum())} class ids differ")
    if wrong_labels:
        problems.append(f"{len(wrong_labels)} labels differ")
    return figures, problems


# === Versions and the atomic write ===


def next_version(base):
    """1 + the largest integer folder name under `base` (1 when none)."""
    numbers = [int(name) for name in files.listdir(base) if name.isdigit()]
    return max(numbers, default=0) + 1


def build_and_publish(base, build):
    """Builds and checks an export in a temporary folder, then publishes
    it as `base/<N>/`; returns (path, figures).

    `build(folder)` writes and checks the SavedModel in `folder` and
    returns its figures. The folder is beside the versions under a local
    base (so the rename is atomic) and a local temporary one otherwise.
    """
    if files.exists(base) and not files.isdir(base):
        raise UserError(
            f"export base {base} is a file; give a folder (TF Serving's "
            "model base path), new or holding numbered versions"
        )
    local = files.is_local(base)
    if local:
        os.makedirs(base, exist_ok=True)
    started = time.time()
    temporary = tempfile.mkdtemp(
        prefix=".kft-export-", dir=base if local else None
    )
    try:
        figures = build(temporary)
        figures.setdefault(
            "saved_model_bytes", check_lib.folder_bytes(temporary)
        )
        figures["export_seconds"] = round(time.time() - started, 1)
        path = (_publish if local else _upload)(temporary, base, figures)
    finally:
        # Gone already where _publish renamed it.
        shutil.rmtree(temporary, ignore_errors=True)
    return path, figures


def summary(figures):
    """The export figures metrics.json keeps."""
    keys = ("version", "max_abs_difference", "size_ratio", "export_seconds")
    return {key: figures[key] for key in keys if key in figures}


def size_ratio(figures, weights_file):
    """Adds the export's size against the run's weights file."""
    if weights_file and files.exists(weights_file):
        weights_bytes = files.size(weights_file)
        figures["weights_file_bytes"] = weights_bytes
        figures["size_ratio"] = round(
            figures["saved_model_bytes"] / weights_bytes, 4
        )


def export(
    built,
    labels,
    base,
    sample,
    weights_file=None,
    log=print,
    threshold=None,
    delimiter=",",
):
    """Writes, checks and publishes `base/<N>/`; returns (path, figures).

    Args:
        built: the trained `builder.Built`.
        labels: class names in class-id order.
        base: the folder TF Serving polls, local or remote (`gs://...`).
        sample: raw inputs for the parity check (see `sample_inputs`).
        weights_file: the run's weights file, to compare sizes with.
        log: where progress lines go.
        threshold: the two-class decision threshold the served class ids
            apply (kft/tasks/classification/threshold.py); None for argmax.
            Multilabel: the
            per-label thresholds (kft/tasks/multilabel.py).
        delimiter: multilabel: what joins the served label names.
    """

    def build(folder):
        write_saved_model(built, labels, folder, threshold, delimiter)
        figures = check(folder, built, labels, sample, threshold, delimiter)
        figures["saved_model_bytes"] = check_lib.folder_bytes(folder)
        figures["variables_bytes"] = check_lib.folder_bytes(
            os.path.join(folder, "variables")
        )
        size_ratio(figures, weights_file)
        return figures

    path, figures = build_and_publish(base, build)
    log(
        f"exported {path}: serving and Keras agree on {figures['examples']} "
        f"test examples (max |diff| {figures['max_abs_difference']:.1e}), "
        f"{figures['saved_model_bytes'] / 2**20:.1f} MiB"
    )
    return path, figures


def _publish(temporary, base, figures):
    """Renames the checked folder to the next free version number."""
    for _ in range(100):
        version = next_version(base)
        path = os.path.join(base, str(version))
        figures["version"] = version
        with open(os.path.join(temporary, CHECK_FILE), "w") as file:
            json.dump(figures, file, indent=2)
        if os.path.exists(path):
            continue
        try:
            os.rename(temporary, path)
        except OSError:
            continue  # another writer took this number first
        return path
    raise UserError(f"could not find a free version number in {base}")


def _upload(temporary, base, figures):
    """Publishes the checked local folder under a remote `base` as `<N>/`.

    The upload goes to a hidden staging folder, which TF Serving and
    `next_version` ignore, so a failed or interrupted upload leaves no
    numbered folder. The copy into `<N>/` writes `saved_model.pb` after
    the variables and assets it needs, and the check file last. Unlike a
    local rename, choosing the number is not atomic: two exports to one
    remote base at the same moment could pick the same number.
    """
    staging = os.path.join(base, f".kft-export-{uuid.uuid4().hex}")
    path = None
    try:
        files.copy_tree(temporary, staging)
        figures["version"] = next_version(base)
        path = os.path.join(base, str(figures["version"]))
        # Until saved_model.pb is there, nothing loads the version.
        files.copy_tree(staging, path, last=["saved_model.pb"])
        files.write_text(
            os.path.join(path, CHECK_FILE), json.dumps(figures, indent=2)
        )
    except BaseException:
        if path is not None:
            files.remove(path)
        raise
    finally:
        files.remove(staging)
    return path
