"""Splits to `tf.data` pipelines that feed `model.fit`.

Text is tokenized once, cached and batched by similar length; images are
decoded, resized, cached and (for training) augmented. `decode_image` is
also the SavedModel's decoder (kft.export), so serving sees the pixels
training saw.
"""

import numpy as np
import tensorflow as tf

# === Text pipeline ===


def token_lengths(preprocessor, texts, batch=256):
    """Token counts (with special tokens) of `texts` under `preprocessor`."""
    lengths = []
    for start in range(0, len(texts), batch):
        packed = preprocessor(tf.constant(texts[start : start + batch]))
        mask = packed["padding_mask"] if isinstance(packed, dict) else None
        if isinstance(packed, tuple):
            mask = packed[0]["padding_mask"]
        lengths.append(tf.reduce_sum(tf.cast(mask, tf.int32), axis=-1))
    return np.concatenate([length.numpy() for length in lengths])


def pick_sequence_length(lengths, percentile, maximum, multiple=8):
    """The percentile of token lengths, rounded up to `multiple`, capped."""
    length = int(np.ceil(np.percentile(lengths, percentile)))
    length = int(np.ceil(length / multiple) * multiple)
    return max(multiple, min(length, maximum))


def _trim(granularity):
    """Cuts a batch's padding to its longest row, rounded up."""

    def trim(inputs, labels):
        mask = tf.cast(inputs["padding_mask"], tf.int32)
        longest = tf.reduce_max(tf.reduce_sum(mask, axis=-1))
        width = tf.shape(mask)[1]
        rounded = (longest + granularity - 1) // granularity * granularity
        length = tf.minimum(tf.maximum(rounded, 1), width)
        return {k: v[:, :length] for k, v in inputs.items()}, labels

    return trim


def text_batches(
    split, preprocessor, batch_size, training, seed, granularity=16
):
    """Tokenized, length-grouped batches of `split` for `model.fit`.

    Examples are tokenized once and cached; each epoch shuffles (training
    only), groups examples of similar length into the same batch (as Hugging
    Face's `group_by_length`), and trims each batch's padding to its longest
    row rounded up to `granularity`, so little work is spent on padding and
    the number of distinct shapes stays small.
    """
    length = preprocessor.sequence_length
    texts = tf.constant(list(split.values))
    dataset = tf.data.Dataset.from_tensor_slices((texts, split.label_ids))
    dataset = dataset.batch(256).map(
        lambda text, label: (_pack(preprocessor, text), label),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    dataset = dataset.unbatch().cache()
    if training:
        dataset = dataset.shuffle(
            len(split), seed=seed, reshuffle_each_iteration=True
        )
    boundaries = list(range(granularity, length, granularity))
    dataset = dataset.bucket_by_sequence_length(
        element_length_func=lambda inputs, _: tf.reduce_sum(
            tf.cast(inputs["padding_mask"], tf.int32)
        ),
        bucket_boundaries=[b + 1 for b in boundaries],
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
    )
    dataset = dataset.map(_trim(granularity))
    if training:
        # bucket_by_sequence_length emits a bucket when it fills; shuffle the
        # batches too so that lengths do not drift through the epoch.
        dataset = dataset.shuffle(64, seed=seed)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _pack(preprocessor, texts):
    packed = preprocessor(texts)
    if isinstance(packed, tuple):
        packed = packed[0]
    return packed


# === Image pipeline ===


def decode_image(value, size):
    """Decodes encoded bytes to a uint8 [size, size, 3] RGB image.

    JPEG, PNG, BMP and GIF (its first frame); resized with antialiasing and
    rounded back to uint8. Training, evaluation and the SavedModel's
    serving signature all decode through here, so they see the same pixels.
    """
    image = tf.io.decode_image(value, channels=3, expand_animations=False)
    image = tf.image.resize(image, (size, size), antialias=True)
    image = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
    image.set_shape((size, size, 3))
    return image


def _augment(image, seed):
    image = tf.image.random_flip_left_right(image, seed=seed)
    return image


def image_batches(split, size, batch_size, training, seed, augment=False):
    """Decoded, resized image batches of `split` for `model.fit`."""
    values = list(split.values)
    dataset = tf.data.Dataset.from_tensor_slices(
        (tf.constant(values), split.label_ids)
    )
    is_path = bool(values) and isinstance(values[0], str)

    def load(value, label):
        data = tf.io.read_file(value) if is_path else value
        return decode_image(data, size), label

    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    if len(split) * size * size * 3 < 2**30:
        dataset = dataset.cache()
    if training:
        dataset = dataset.shuffle(
            min(len(split), 10000), seed=seed, reshuffle_each_iteration=True
        )
    dataset = dataset.map(
        lambda image, label: (tf.cast(image, tf.float32), label)
    )
    if training and augment:
        dataset = dataset.map(
            lambda image, label: (_augment(image, seed), label)
        )
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
