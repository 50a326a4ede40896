"""Image folders to file paths and labels; the decode check of images.

A folder, local or remote, holds one sub-folder per class (searched
recursively; class names are the sub-folder names, sorted). Every image,
from a folder or TFDS, is decoded once at load time by a parallel tf.data
pass with the decoder the pipeline uses, so a corrupt file is a bad record
found before training rather than an error halfway through an epoch.
"""

import os

import numpy as np
import tensorflow as tf

from kft import files
from kft.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def read_folder(path):
    """Returns (file paths, class names) from a folder of class folders.

    `path` may be remote (kft.files); the images are read by
    `tf.io.read_file`, which reads remote files too.
    """
    classes = [
        name
        for name in files.listdir(path)
        if files.isdir(os.path.join(path, name))
    ]
    if not classes:
        raise UserError(
            f"image folder {path} has no class sub-folders "
            "(expected one sub-folder per class)"
        )
    paths, labels = [], []
    for name in classes:
        found = [
            os.path.join(folder, file)
            for folder, _, names in files.walk(os.path.join(path, name))
            for file in names
            if os.path.splitext(file)[1].lower() in IMAGE_EXTENSIONS
        ]
        # Sorted as paths, part by part, whatever the file system.
        found.sort(key=lambda file: file.split("/"))
        paths += found
        labels += [name] * len(found)
    return paths, labels


def _decodes(index, value, is_path):
    data = tf.io.read_file(value) if is_path else value
    # The same call as kft.data.decode_image; the shape is returned so the
    # decode is not pruned from the graph.
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    return index, tf.shape(image)


def undecodable(values):
    """Indices of `values` (file paths or encoded bytes) that do not decode.

    One parallel tf.data pass over every image; failing elements are
    dropped by `ignore_errors`, and the indices that did not come out are
    the bad ones.
    """
    if not values:
        return []
    is_path = isinstance(values[0], str)
    dataset = tf.data.Dataset.from_tensor_slices(
        (np.arange(len(values)), tf.constant(values))
    )
    dataset = dataset.map(
        lambda index, value: _decodes(index, value, is_path),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=False,
    ).ignore_errors()
    good = np.zeros(len(values), bool)
    for batch, _ in dataset.batch(1024).as_numpy_iterator():
        good[batch] = True
    return np.flatnonzero(~good).tolist()
