"""Splits to `tf.data` pipelines that feed `model.fit`.

Text is tokenized once, cached and batched by similar length; images are
decoded, resized, cached and (for training) augmented. `decode_image` is
also the SavedModel's decoder (kft.export), so serving sees the pixels
training saw.
"""

import numpy as np
import tensorflow as tf

from kft.data import augment as augment_lib

# === Epochs ===


def prefetched(dataset):
    """`dataset` as kft hands it to `fit`, `evaluate` and `predict`:
    prefetched, with tf.data's autotuning off. Its optimization thread
    sleeps in a loop the end of each iterator waits out (TF 2.21: up to
    15 s at the end of a fit or evaluate, and kft calls them once per
    epoch); without it, AUTOTUNE parallelism is the number of cores."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)


def in_order(arrays, batch_size):
    """In-memory `arrays` batched in their order, for `evaluate` and
    `predict`."""
    dataset = tf.data.Dataset.from_tensor_slices(arrays)
    return prefetched(dataset.batch(batch_size))


def epoch_seed(seed, epoch):
    """The shuffle and augmentation seed of one epoch: (seed, epoch) alone."""
    return (int(seed) * 1_000_003 + int(epoch) * 7919) % (2**31 - 1)


class Epochs:
    """Training batches whose order is a function of the seed and epoch.

    tf.data's `reshuffle_each_iteration` draws each epoch's order from how
    many epochs came before in the same process, which a resumed run
    cannot replay; here epoch `e` is shuffled and augmented with seeds made
    of (seed, e) only, and the same in every iteration (Keras iterates a
    distributed dataset once more before training, to build the model).
    The examples are decoded or tokenized and cached once for all epochs.

    Args:
        make_epoch: epoch number -> that epoch's batches, a tf.data.Dataset.
        ordered: the same examples, unshuffled and unaugmented, batched
            for inference (kft/core/cached.py computes features from them);
            None where there is no such order.
        count: how many examples there are.
        batch_size: examples per training batch.
        seed: the run's seed (epoch `e` uses `epoch_seed(seed, e)`).
        drop_remainder: whether a partial last batch is dropped.
    """

    def __init__(
        self,
        make_epoch,
        ordered=None,
        count=0,
        batch_size=0,
        seed=0,
        drop_remainder=False,
    ):
        self._make_epoch = make_epoch
        self._steps = None
        self.ordered = ordered
        self.count = count
        self.batch_size = batch_size
        self.seed = seed
        self.drop_remainder = drop_remainder

    def dataset(self, first=0, last=None, skip=0):
        """Epochs [first, last) back to back (one without `last`), without
        the first `skip` batches of epoch `first`."""
        batches = self._make_epoch(first)
        if skip:
            batches = batches.skip(skip)
        for epoch in range(first + 1, first + 1 if last is None else last):
            batches = batches.concatenate(self._make_epoch(epoch))
        return prefetched(batches)

    def steps(self):
        """Batches per epoch, the same every epoch (the first call reads
        one epoch, which fills the cache)."""
        if self._steps is None:
            self._steps = int(
                self.dataset(0, 1).reduce(
                    tf.constant(0, tf.int64), lambda count, _: count + 1
                )
            )
        return self._steps

    def in_memory_steps(self):
        """Batches per epoch of `in_memory` epochs, known before them."""
        whole, rest = divmod(self.count, self.batch_size)
        return whole + (1 if rest and not self.drop_remainder else 0)

    def in_memory(self, arrays):
        """`arrays` (a row per example, e.g. features and labels) as Epochs
        batched like these: epoch `e` shuffles all rows with its seed and
        batches them (no length grouping: rows have no padding). Image
        epochs whose shuffle buffer holds the whole split come in the
        same order as these."""
        examples = tf.data.Dataset.from_tensor_slices(arrays)

        def make_epoch(epoch):
            seed = epoch_seed(self.seed, epoch)
            return _shuffle(examples, self.count, seed).batch(
                self.batch_size, drop_remainder=self.drop_remainder
            )

        epochs = Epochs(
            make_epoch,
            count=self.count,
            batch_size=self.batch_size,
            seed=self.seed,
            drop_remainder=self.drop_remainder,
        )
        epochs._steps = self.in_memory_steps()
        return epochs

    # The validation set of `in_memory` training epochs (for
    # kft/core/cached.py, which cannot import kft.data).
    in_memory_evaluation = staticmethod(in_order)


def _shuffle(dataset, buffer, seed):
    """The one order `seed` gives, in every iteration (see `Epochs`)."""
    return dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=False)


# === Text pipeline ===


def token_lengths(preprocessor, texts, pairs=None, batch=256):
    """Token counts (with special tokens) of `texts` under `preprocessor`;
    of both texts and their separators where `pairs` are given."""
    lengths = []
    for start in range(0, len(texts), batch):
        part = slice(start, start + batch)
        second = None if pairs is None else tf.constant(pairs[part])
        packed = _pack(preprocessor, tf.constant(texts[part]), second)
        mask = packed["padding_mask"]
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


# Examples sorted by length together (Hugging Face's `group_by_length`
# megabatch, in batches).
GROUP_BATCHES = 50


def _by_length(inputs, labels):
    """A group's rows sorted longest first (ties keep their order)."""
    lengths = tf.reduce_sum(tf.cast(inputs["padding_mask"], tf.int32), -1)
    order = tf.argsort(lengths, direction="DESCENDING", stable=True)
    return tf.nest.map_structure(
        lambda values: tf.gather(values, order), (inputs, labels)
    )


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

    Examples are tokenized once and cached; each training epoch shuffles
    (in an order fixed by `seed` and the epoch, see `Epochs`) and groups
    examples of similar length into the same batch as Hugging Face's
    `group_by_length` does: every `GROUP_BATCHES` batches' worth of
    examples are sorted by length and cut into full batches (only a
    group's last batch can be short), and the batches are shuffled. Each
    batch's padding is trimmed to its longest row, rounded up to
    `granularity` (dynamic shapes: least padding) or, with `fixed_shapes`,
    to one of the few `fixed_lengths` (for XLA and TPU, so recompiles stay
    bounded). `drop_remainder` drops each group's short batch (TPU needs
    it). Training data comes as `Epochs`, other data as one
    `tf.data.Dataset`.
    """
    length = preprocessor.sequence_length
    texts = (tf.constant(list(split.values)),)
    if split.pairs is not None:  # packed together, with segment ids
        texts += (tf.constant(list(split.pairs)),)
    dataset = tf.data.Dataset.from_tensor_slices((texts, split.label_ids))
    dataset = dataset.batch(256).map(
        lambda text, label: (_pack(preprocessor, *text), label),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    dataset = dataset.unbatch().cache()
    if fixed_shapes:
        lengths = fixed_lengths(length)
    else:
        lengths = list(range(granularity, length, granularity)) + [length]

    def batches(examples, order_seed=None, drop=drop_remainder):
        if order_seed is not None:
            examples = _shuffle(examples, len(split), order_seed)
        examples = examples.batch(GROUP_BATCHES * batch_size).map(_by_length)
        examples = examples.flat_map(
            lambda *group: tf.data.Dataset.from_tensor_slices(group).batch(
                batch_size, drop_remainder=drop
            )
        )
        examples = examples.map(_trim(lengths))
        if order_seed is not None:
            # A group's batches come longest first; shuffle them so
            # lengths do not drift within an epoch.
            examples = _shuffle(examples, GROUP_BATCHES, order_seed + 1)
        return examples

    # Every example once (none dropped), unshuffled.
    ordered = prefetched(batches(dataset, drop=False))
    if not training:
        return ordered
    return Epochs(
        lambda epoch: batches(dataset, epoch_seed(seed, epoch)),
        ordered,
        len(split),
        batch_size,
        seed,
        drop_remainder,
    )


def _pack(preprocessor, texts, pairs=None):
    # A plain keras-hub preprocessor (tests) takes (x, y): no pairs there.
    packed = (
        preprocessor(texts) if pairs is None else preprocessor(texts, pairs)
    )
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
    """An endless stream of stateless seeds, fixed by `seed`."""
    return tf.data.Dataset.random(seed=seed).batch(2)


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
    Training data comes as `Epochs`, other data as one `tf.data.Dataset`.
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
    ordered = prefetched(
        dataset.map(
            lambda image, label: (tf.cast(image, tf.float32), label)
        ).batch(batch_size, drop_remainder=drop_remainder and not training)
    )
    if not training:
        return ordered
    buffer = _shuffle_buffer(len(split), size * size * 3)

    def batches(epoch):
        key = epoch_seed(seed, epoch)
        examples = _shuffle(dataset, buffer, key).map(
            lambda image, label: (tf.cast(image, tf.float32), label)
        )
        if augment:
            examples = tf.data.Dataset.zip(examples, _seeds(key + 1)).map(
                lambda example, key: (
                    augment_lib.augment_image(example[0], augment, key),
                    example[1],
                ),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
        examples = examples.batch(batch_size, drop_remainder=drop_remainder)
        if mixup or cutmix:
            examples = _mix(examples, num_classes, mixup, cutmix, key + 2)
        return examples

    return Epochs(
        batches, ordered, len(split), batch_size, seed, drop_remainder
    )


def _mix(dataset, num_classes, mixup, cutmix, seed):
    """Mixup/cutmix on every batch; labels become one-hot class shares."""

    def mix(batch, key):
        images, labels = batch
        labels = tf.one_hot(tf.cast(labels, tf.int32), num_classes)
        return augment_lib.mix_batch(images, labels, mixup, cutmix, key)

    return tf.data.Dataset.zip(dataset, _seeds(seed)).map(
        mix, num_parallel_calls=tf.data.AUTOTUNE
    )
