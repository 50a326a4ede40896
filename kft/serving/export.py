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
Other tasks answer their own outputs instead (the `outputs` each task
gives `export`: multilabel `probabilities`, `decisions`, `labels`;
regression `score`).

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
import os
import tempfile

import keras
import tensorflow as tf

from kft import data
from kft.core import compat
from kft.serving import check as check_lib
from kft.serving import parity, publish

PREPROCESSED = "serving_preprocessed"


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


def decide(probabilities, threshold=None, id_dtype=tf.int64):
    """Probabilities as float32 and the decided class id, as TF ops:
    argmax, or with a two-class `threshold` 1 where P(class 1) >= it.
    LiteRT models take int32 ids (kft/serving/litert.py)."""
    probabilities = tf.cast(probabilities, tf.float32)
    if threshold is None:
        class_id = tf.argmax(probabilities, axis=-1, output_type=id_dtype)
    else:
        # float32 on both sides, as kft.threshold.decide compares.
        cut = tf.constant(threshold, tf.float32)
        class_id = tf.cast(probabilities[:, 1] >= cut, id_dtype)
    return {"probabilities": probabilities, "class_id": class_id}


def class_outputs(probabilities, table, threshold=None):
    """Probabilities, the decided class id and its label, as TF ops."""
    outputs = decide(probabilities, threshold)
    return outputs | {"label": table.lookup(outputs["class_id"])}


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
    archive.add_endpoint(check_lib.SERVING, serve, texts)
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
        check_lib.SERVING,
        serve,
        [tf.TensorSpec([None], tf.string, name="image_bytes")],
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


def write_saved_model(built, labels, path, outputs=None):
    """Writes the SavedModel of `built` (a `builder.Built`) to `path`.

    `outputs(model_outputs, table)` gives the signatures' outputs as TF
    ops (`table` looks up label names by class id); by default
    `class_outputs` by argmax.
    """
    outputs = outputs or class_outputs
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

        def decide(model_outputs):
            return outputs(model_outputs, table)

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


def export(
    built,
    labels,
    base,
    sample,
    weights_file=None,
    log=print,
    *,
    outputs=None,
    compare=None,
):
    """Writes, checks and publishes `base/<N>/`; returns (path, figures).

    Args:
        built: the trained `builder.Built`.
        labels: class names in class-id order.
        base: the folder TF Serving polls, local or remote (`gs://...`).
        sample: raw inputs for the parity check (see `sample_inputs`).
        weights_file: the run's weights file, to compare sizes with.
        log: where progress lines go.
        outputs: the signatures' outputs (see `write_saved_model`); by
            default class probabilities, the argmax class and its label.
        compare: `compare(expected, served)` -> (figures, problems), the
            task's check of served outputs against the Keras model's; by
            default `parity.compare_classes` by argmax.
    """
    if compare is None:

        def compare(expected, served):
            return parity.compare_classes(expected, served, labels)

    def build(folder):
        write_saved_model(built, labels, folder, outputs)
        figures = parity.check(folder, built, sample, compare)
        figures["saved_model_bytes"] = check_lib.folder_bytes(folder)
        figures["variables_bytes"] = check_lib.folder_bytes(
            os.path.join(folder, "variables")
        )
        publish.size_ratio(figures, weights_file)
        return figures

    path, figures = publish.build_and_publish(base, build)
    log(
        f"exported {path}: serving and Keras agree on {figures['examples']} "
        f"test examples (max |diff| {figures['max_abs_difference']:.1e}), "
        f"{figures['saved_model_bytes'] / 2**20:.1f} MiB"
    )
    return path, figures
