"""Training-only image augmentation with fixed shapes and stateless seeds.

Every op takes a float32 [size, size, 3] image in [0, 255] (or a batch of
them, for mixup and cutmix) and returns the same shape and dtype, so the
pipeline's shapes never change and a jit-compiled (XLA or TPU) train step
compiles once. Randomness comes from stateless ops keyed by a seed tensor
the pipeline draws from `tf.data.Dataset.random`, so a run is repeatable
under `config.seed` even with parallel maps.

`config.data.augment` is a comma list of the per-image ops below (or "" for
none); `config.data.mixup` and `config.data.cutmix` are Beta alphas, 0 off.
"""

import math

import tensorflow as tf

from kft.core.errors import UserError

# Strengths: mild, label-preserving for photos of objects.
MAX_ROTATION_DEGREES = 15.0
ZOOM_RANGE = 0.15
MIN_CROP_SIDE = 0.75
BRIGHTNESS = 0.15
CONTRAST = 0.2
SATURATION = 0.2


def _seed(seed, index):
    """A distinct stateless seed for op number `index`."""
    return tf.stack([seed[0], seed[1] + index])


def flip(image, seed):
    """Mirrors left-right with probability 1/2."""
    return tf.image.stateless_random_flip_left_right(image, seed)


def crop(image, seed):
    """A random square of 75-100% of the side, resized back."""
    size = tf.shape(image)[0]
    side = tf.random.stateless_uniform([], seed, MIN_CROP_SIDE, 1.0)
    corner = tf.random.stateless_uniform([2], _seed(seed, 1), 0.0, 1.0 - side)
    box = tf.concat([corner, corner + side], axis=0)[tf.newaxis]
    resized = tf.image.crop_and_resize(
        image[tf.newaxis], box, [0], tf.stack([size, size])
    )
    return resized[0]


def _transform(image, matrix):
    """Applies a 3x3 inverse map (output pixel -> input pixel), reflecting."""
    flat = tf.reshape(matrix, [9])[:8] / matrix[2, 2]
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=image[tf.newaxis],
        transforms=flat[tf.newaxis],
        output_shape=tf.shape(image)[:2],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="REFLECT",
    )[0]


def _about_center(image, linear):
    """The 3x3 map applying the 2x2 `linear` about the image center."""
    size = tf.cast(tf.shape(image)[0], tf.float32)
    center = (size - 1.0) / 2.0
    middle = tf.stack([center, center])
    offset = middle - tf.linalg.matvec(linear, middle)
    top = tf.concat([linear, offset[:, tf.newaxis]], axis=1)
    return tf.concat([top, tf.constant([[0.0, 0.0, 1.0]])], axis=0)


def rotate(image, seed):
    """Rotates by up to 15 degrees either way, reflecting at the edges."""
    limit = MAX_ROTATION_DEGREES * math.pi / 180.0
    angle = tf.random.stateless_uniform([], seed, -limit, limit)
    cos, sin = tf.cos(angle), tf.sin(angle)
    linear = tf.reshape(tf.stack([cos, -sin, sin, cos]), [2, 2])
    return _transform(image, _about_center(image, linear))


def zoom(image, seed):
    """Zooms in or out by up to 15%, reflecting at the edges."""
    scale = tf.random.stateless_uniform(
        [], seed, 1.0 - ZOOM_RANGE, 1.0 + ZOOM_RANGE
    )
    linear = tf.eye(2) * scale
    return _transform(image, _about_center(image, linear))


def color(image, seed):
    """Jitters brightness, contrast and saturation; stays in [0, 255]."""
    image = image / 255.0
    image = tf.image.stateless_random_brightness(image, BRIGHTNESS, seed)
    image = tf.image.stateless_random_contrast(
        image, 1.0 - CONTRAST, 1.0 + CONTRAST, _seed(seed, 1)
    )
    image = tf.image.stateless_random_saturation(
        image, 1.0 - SATURATION, 1.0 + SATURATION, _seed(seed, 2)
    )
    return tf.clip_by_value(image, 0.0, 1.0) * 255.0


OPS = {
    "flip": flip,
    "crop": crop,
    "rotate": rotate,
    "zoom": zoom,
    "color": color,
}
# Older configs said augment=true for random flips.
_ALIASES = {"true": "flip", "false": "", "none": ""}


def parse(text):
    """The op names of a `config.data.augment` comma list, checked."""
    text = _ALIASES.get(text.strip().lower(), text)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in OPS]
    if unknown:
        raise UserError(
            f"unknown augmentation '{unknown[0]}' in --config.data.augment; "
            f"valid: a comma list of {', '.join(OPS)} (or empty for none)"
        )
    return names


def augment_image(image, names, seed):
    """Applies the ops `names` in order, each with its own seed."""
    for index, name in enumerate(names):
        image = OPS[name](image, _seed(seed, 10 * index))
    return image


# === Batch mixing: soft labels ===


def _beta(alpha, seed):
    """One draw from Beta(alpha, alpha), from two stateless gammas."""
    draws = tf.random.stateless_gamma([2], seed, alpha=alpha)
    return draws[0] / (draws[0] + draws[1])


def mixup(images, labels, alpha, seed):
    """Blends each example with the batch reversed, labels alike."""
    share = _beta(alpha, seed)
    images = share * images + (1.0 - share) * tf.reverse(images, [0])
    labels = share * labels + (1.0 - share) * tf.reverse(labels, [0])
    return images, labels


def cutmix(images, labels, alpha, seed):
    """Pastes a box of the batch reversed; labels mixed by area."""
    size = tf.shape(images)[1]
    share = _beta(alpha, seed)
    side = tf.cast(size, tf.float32) * tf.sqrt(1.0 - share)
    center = tf.random.stateless_uniform(
        [2], _seed(seed, 1), 0.0, tf.cast(size, tf.float32)
    )
    low = tf.clip_by_value(center - side / 2.0, 0.0, 1e9)
    high = tf.minimum(center + side / 2.0, tf.cast(size, tf.float32))
    positions = tf.range(size, dtype=tf.float32) + 0.5
    rows = (positions >= low[0]) & (positions < high[0])
    columns = (positions >= low[1]) & (positions < high[1])
    box = tf.cast(rows[:, tf.newaxis] & columns[tf.newaxis, :], tf.float32)
    box = box[tf.newaxis, :, :, tf.newaxis]
    images = (1.0 - box) * images + box * tf.reverse(images, [0])
    pasted = tf.reduce_mean(box)
    labels = (1.0 - pasted) * labels + pasted * tf.reverse(labels, [0])
    return images, labels


def mix_batch(images, labels, mixup_alpha, cutmix_alpha, seed):
    """Mixup or cutmix (a coin picks when both are on) on one batch."""
    if mixup_alpha and cutmix_alpha:
        coin = tf.random.stateless_uniform([], _seed(seed, 7))
        return tf.cond(
            coin < 0.5,
            lambda: mixup(images, labels, mixup_alpha, seed),
            lambda: cutmix(images, labels, cutmix_alpha, seed),
        )
    if mixup_alpha:
        return mixup(images, labels, mixup_alpha, seed)
    return cutmix(images, labels, cutmix_alpha, seed)
