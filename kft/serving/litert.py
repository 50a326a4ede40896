"""LiteRT (TensorFlow Lite) export of classifiers: conversion, the check
in a fresh process, and a .tflite run from Python (kft-predict).

`convert` writes one `.tflite` whose `serving_default` signature takes
what an app has at hand without kft:

- image models: `image`, `uint8 [None, S, S, 3]`, the decoded RGB image
  at the run's size (pixels 0-255); the backbone's normalization runs
  inside, as in the SavedModel.
- text models: the preprocessed inputs, `token_ids`, `padding_mask` (and
  `segment_ids` where the backbone has them), `int32 [None, L]` with L
  the run's sequence length. TF Text's tokenizer ops are not LiteRT
  builtins, so the app tokenizes (the vocabulary is copied beside the
  model; docs/litert.md says how).

It answers `probabilities` (`float32 [None, C]`; `int8` with
`integer_io`, dequantized by its scale and zero point) and `class_id`
(`int32 [None]`: argmax, or a two-class run's threshold). Only LiteRT
builtin ops are used: no Select TF ops to link.

Quantization: "none" (float32 weights), "float16" (float16 weights),
"dynamic" (int8 weights, float activations), "int8" (full integer,
calibrated on up to REPRESENTATIVE_EXAMPLES training examples).
"""

import json
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

from kft import data
from kft.core import files
from kft.serving import check as check_lib
from kft.serving import export

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
# The file name's part for each mode: model_<name>.tflite, model_<name>.json.
FILE_NAMES = {
    "none": "float32",
    "float16": "float16",
    "dynamic": "dynamic",
    "int8": "int8",
}
LABELS_FILE = "labels.txt"
REPRESENTATIVE_EXAMPLES = 100
# Examples run one at a time for the latency figure; the rest in batches.
LATENCY_EXAMPLES = 200
BATCH = 64


def model_path(folder, quantization):
    return os.path.join(folder, f"model_{FILE_NAMES[quantization]}.tflite")


def check_path(folder, quantization):
    return os.path.join(folder, f"model_{FILE_NAMES[quantization]}.json")


# === Conversion ===


def _serving(built, threshold):
    """(function, input signature) of the .tflite's serving_default."""
    model = built.model

    def decide(probabilities):
        return export.decide(probabilities, threshold, tf.int32)

    if built.modality == "image":
        size = built.image_size

        def serve_image(image):
            return decide(model(tf.cast(image, tf.float32), training=False))

        spec = tf.TensorSpec([None, size, size, 3], tf.uint8, name="image")
        return serve_image, [spec]
    length = built.preprocessor.sequence_length

    def serve_text(inputs):
        return decide(model(inputs, training=False))

    specs = {
        name: tf.TensorSpec([None, length], tf.int32, name=name)
        for name in model.input
    }
    return serve_text, [specs]


def convert(
    built, quantization, path, threshold=None, representative=None, **kw
):
    """Writes the .tflite of `built` to `path`; returns its bytes.

    `representative` (int8): {input name: array} of training examples.
    `integer_io` (int8): the probabilities come out as int8.
    """
    function, signature = _serving(built, threshold)
    with tempfile.TemporaryDirectory() as scratch, check_lib.quiet():
        archive = keras.export.ExportArchive()
        archive.add_endpoint(check_lib.SERVING, function, signature)
        archive.write_out(scratch, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(scratch)
        if quantization != "none":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantization == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if quantization == "int8":
            converter.representative_dataset = _examples(representative)
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.TFLITE_BUILTINS_INT8
            ]
            if kw.get("integer_io"):
                converter.inference_output_type = tf.int8
        content = converter.convert()
    files.write_bytes(path, content)
    return len(content)


def _examples(arrays):
    count = len(next(iter(arrays.values())))

    def generate():
        for index in range(count):
            yield {k: v[index : index + 1] for k, v in arrays.items()}

    return generate


def inputs_of(built, values, pairs=None):
    """{input name: array} of raw `values` (texts, image paths or encoded
    images), as the .tflite takes them: decoded images, or texts cleaned,
    tokenized and packed by the run's own preprocessor."""
    if built.modality == "image":
        return {"image": decode_images(values, built.image_size, built.resize)}
    return pack_texts(
        built.preprocessor, list(built.model.input), values, pairs
    )


def pack_texts(preprocessor, names, values, pairs=None):
    """{name: int32 [N, L]} of texts (and pairs) packed by `preprocessor`,
    for the inputs `names`."""
    packed = {name: [] for name in names}
    for start in range(0, len(values), 256):
        part = slice(start, start + 256)
        batch = preprocessor(
            values[part], None if pairs is None else pairs[part]
        )
        for name in names:
            packed[name].append(tf.cast(batch[name], tf.int32).numpy())
    return {name: np.concatenate(parts) for name, parts in packed.items()}


def decode_images(values, size, resize):
    """uint8 [N, size, size, 3] of image paths or encoded images."""

    def decode(value):
        if isinstance(value, str):
            value = tf.io.read_file(value)
        return data.decode_image(value, size, resize).numpy()

    images = [decode(value) for value in values]
    return np.stack(images) if images else np.zeros((0, size, size, 3))


def write_assets(built, labels, folder):
    """labels.txt beside the models, and a text model's tokenizer files
    (vocabulary.txt for WordPiece; the SentencePiece or BPE files)."""
    files.write_text(
        os.path.join(folder, LABELS_FILE), "".join(f"{x}\n" for x in labels)
    )
    if built.modality != "text":
        return
    tokenizer = getattr(built.preprocessor.inner, "tokenizer", None)
    if tokenizer is not None and hasattr(tokenizer, "save_assets"):
        with tempfile.TemporaryDirectory() as scratch:
            tokenizer.save_assets(scratch)
            for name in os.listdir(scratch):
                with open(os.path.join(scratch, name), "rb") as file:
                    files.write_bytes(os.path.join(folder, name), file.read())


# === The check, in a fresh process ===

# Imports the LiteRT interpreter and numpy, nothing of kft or Keras.
_CHECK_SCRIPT = """
import json, sys, time
import numpy as np
try:
    from ai_edge_litert.interpreter import Interpreter
    interpreter_name = "ai_edge_litert"
except ImportError:
    import tensorflow as tf
    Interpreter, interpreter_name = tf.lite.Interpreter, "tf.lite"
path, inputs_file, outputs_file, latency_count, batch = sys.argv[1:6]
arrays = np.load(inputs_file)
names = sorted(arrays.files)
count = len(arrays[names[0]])
started = time.time()
runner = Interpreter(model_path=path).get_signature_runner("serving_default")
load_seconds = time.time() - started

def describe(details):
    return {k: [np.dtype(v["dtype"]).name,
                [int(d) for d in v["shape_signature"]]]
            for k, v in details.items()}

def dequantize(out, details):
    scale, zero = details["quantization"]
    out = np.asarray(out)
    if scale and out.dtype in (np.int8, np.uint8):
        return (out.astype(np.float32) - zero) * scale
    return out

outputs, latencies = {}, []
position = 0
while position < count:
    size = 1 if position < int(latency_count) else int(batch)
    feed = {n: arrays[n][position:position + size] for n in names}
    started = time.perf_counter()
    out = runner(**feed)
    if size == 1:
        latencies.append(time.perf_counter() - started)
    for key, value in out.items():
        outputs.setdefault(key, []).append(value)
    position += size
details = runner.get_output_details()
np.savez(outputs_file, **{
    k: dequantize(np.concatenate(v), details[k]) for k, v in outputs.items()})
modules = sorted(m for m in ("keras", "keras_hub", "kft") if m in sys.modules)
print(json.dumps({
    "interpreter": interpreter_name, "imported": modules,
    "inputs": describe(runner.get_input_details()),
    "outputs": describe(details),
    "output_quantization": {
        k: list(v["quantization"]) for k, v in details.items()},
    "load_seconds": load_seconds,
    "median_latency_ms":
        float(np.median(latencies)) * 1000 if latencies else 0.0,
}))
"""


def run_fresh(path, inputs):
    """Runs the .tflite at `path` on `inputs` ({name: array}) in a new
    interpreter; returns (its report, {output name: array})."""
    with tempfile.TemporaryDirectory() as scratch:
        inputs_file = os.path.join(scratch, "inputs.npz")
        outputs_file = os.path.join(scratch, "outputs.npz")
        np.savez(inputs_file, **inputs)
        local = path
        if not files.is_local(path):  # gs://: the interpreter reads a file
            local = os.path.join(scratch, "model.tflite")
            with open(local, "wb") as file:
                file.write(files.read_bytes(path))
        report = check_lib.run_script(
            _CHECK_SCRIPT,
            [
                local,
                inputs_file,
                outputs_file,
                str(LATENCY_EXAMPLES),
                str(BATCH),
            ],
        )
        with np.load(outputs_file) as loaded:
            outputs = {key: loaded[key] for key in loaded.files}
    return report, outputs


def write_check(path, figures):
    files.write_text(path, json.dumps(figures, indent=2))


def summary(path, figures):
    """What metrics.json keeps of a LiteRT export."""
    keys = ("quantization", "accuracy", "agreement", "tflite_bytes")
    return {"path": path, **{key: figures[key] for key in keys}}
