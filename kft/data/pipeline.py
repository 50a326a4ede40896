"""Splits to `tf.data` pipelines that feed `model.fit`.

Text is tokenized once, cached and batched by similar length; images are
decoded, resized, cached and (for training) augmented. `decode_image` is
also the SavedModel's decoder (kft.export), so serving sees the pixels
training saw.
"""

import numpy as np
import tensorflow as tf

from kft.data import augment as augment_lib

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


def fixed_lengths(sequence_length, smallest=16):
    """The padded lengths of fixed-shape mode: powers of two, then the cap.

    For sequence length 128: 16, 32, 64, 128; for 200: 16, 32, 64, 128,
    200. A jit-compiled step compiles once per length (and batch size).
    """
    lengths = []
    length = smallest
    while length < sequence_length:
        lengths.append(length)
        length *= 2
    return lengths + [sequence_length]


def _trim(lengths):
    """Cuts a batch's padding to the shortest of `lengths` that fits it."""
    lengths = tf.constant(lengths, tf.int32)

    def trim(inputs, labels):
        mask = tf.cast(inputs["padding_mask"], tf.int32)
        longest = tf.reduce_max(tf.reduce_sum(mask, axis=-1))
        index = tf.searchsorted(lengths, longest[tf.newaxis], side="left")
        index = tf.minimum(index[0], tf.size(lengths) - 1)
        length = tf.minimum(lengths[index], tf.shape(mask)[1])
        return {k: v[:, :length] for k, v in inputs.items()}, labels

    return trim


def text_batches(
    split,
    preprocessor,
    batch_size,
    training,
    seed,
    fixed_shapes=False,
    drop_remainder=False,
    granularity=16,
):
    """Tokenized, length-grouped batches of `split` for `model.fit`.

    Examples are tokenized once and cached; each epoch shuffles (training
    only, in an order fixed by `seed`), groups examples of similar length
    into the same batch (as Hugging Face's `group_by_length`), and trims
    each batch's padding to its longest row, rounded up to `granularity`
    (dynamic shapes: least padding) or, with `fixed_shapes`, to one of the
    few `fixed_lengths` (for XLA and TPU, so recompiles stay bounded).
    `drop_remainder` drops each bucket's partial batch (TPU needs it).
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
    if fixed_shapes:
        lengths = fixed_lengths(length)
    else:
        lengths = list(range(granularity, length, granularity)) + [length]
    dataset = dataset.bucket_by_sequence_length(
        element_length_func=lambda inputs, _: tf.reduce_sum(
            tf.cast(inputs["padding_mask"], tf.int32)
        ),
        bucket_boundaries=[b + 1 for b in lengths[:-1]],
        bucket_batch_sizes=[batch_size] * len(lengths),
        drop_remainder=drop_remainder,
    )
    dataset = dataset.map(_trim(lengths))
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


RESIZE_MODES = ("squash", "crop", "pad")


def decode_image(value, size, mode="squash"):
    """Decodes encoded bytes to a uint8 [size, size, 3] RGB image.

    JPEG, PNG, BMP and GIF (its first frame); resized with antialiasing and
    rounded back to uint8. `mode` says how a non-square image becomes
    square: "squash" stretches it, "crop" keeps the aspect and cuts the
    center square, "pad" keeps the aspect and pads with black. Training,
    evaluation and the SavedModel's serving signature all decode through
    here, so they see the same pixels; it is deterministic.
    """
    image = tf.io.decode_image(value, channels=3, expand_animations=False)
    if mode == "squash":
        image = tf.image.resize(image, (size, size), antialias=True)
    elif mode == "crop":
        image = _resize_shorter_side(image, size)
        image = tf.image.resize_with_crop_or_pad(image, size, size)
    elif mode == "pad":
        image = tf.image.resize_with_pad(image, size, size, antialias=True)
    else:
        raise ValueError(f"resize mode {mode!r} not in {RESIZE_MODES}")
    image = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
    image.set_shape((size, size, 3))
    return image


def _resize_shorter_side(image, size):
    """Resizes so the shorter side is `size`, keeping the aspect ratio."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = size / tf.reduce_min(shape)
    target = tf.maximum(tf.cast(tf.math.ceil(shape * scale), tf.int32), size)
    return tf.image.resize(image, target, antialias=True)


def _seeds(seed):
    """An endless, seeded stream of stateless seeds, new every epoch."""
    return tf.data.Dataset.random(
        seed=seed, rerandomize_each_iteration=True
    ).batch(2)


def _shuffle_buffer(count, example_bytes, budget=2**29):
    """The whole split, unless that needs more than `budget` bytes."""
    return max(1, min(count, max(1024, budget // example_bytes)))


def image_batches(
    split,
    size,
    batch_size,
    training,
    seed,
    augment=(),
    mixup=0.0,
    cutmix=0.0,
    num_classes=0,
    resize="squash",
    drop_remainder=False,
):
    """Decoded, resized image batches of `split` for `model.fit`.

    Images are decoded once (`decode_image`, `resize` mode) and cached as
    uint8 when they fit in 1 GiB. Training data only is shuffled and
    augmented: the `augment` ops of kft.data.augment per image, then mixup
    or cutmix per batch (Beta alphas; 0 is off), which turn the labels into
    float [batch, num_classes] class shares. Other labels stay integers.
    """
    values = list(split.values)
    dataset = tf.data.Dataset.from_tensor_slices(
        (tf.constant(values), split.label_ids)
    )
    is_path = bool(values) and isinstance(values[0], str)

    def load(value, label):
        data = tf.io.read_file(value) if is_path else value
        return decode_image(data, size, resize), label

    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    if len(split) * size * size * 3 < 2**30:
        dataset = dataset.cache()
    if training:
        buffer = _shuffle_buffer(len(split), size * size * 3)
        dataset = dataset.shuffle(
            buffer, seed=seed, reshuffle_each_iteration=True
        )
    dataset = dataset.map(
        lambda image, label: (tf.cast(image, tf.float32), label)
    )
    if training and augment:
        dataset = tf.data.Dataset.zip(dataset, _seeds(seed)).map(
            lambda example, key: (
                augment_lib.augment_image(example[0], augment, key),
                example[1],
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    if training and (mixup or cutmix):
        dataset = _mix(dataset, num_classes, mixup, cutmix, seed + 1)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _mix(dataset, num_classes, mixup, cutmix, seed):
    """Mixup/cutmix on every batch; labels become one-hot class shares."""

    def mix(batch, key):
        images, labels = batch
        labels = tf.one_hot(tf.cast(labels, tf.int32), num_classes)
        return augment_lib.mix_batch(images, labels, mixup, cutmix, key)

    return tf.data.Dataset.zip(dataset, _seeds(seed)).map(
        mix, num_parallel_calls=tf.data.AUTOTUNE
    )
