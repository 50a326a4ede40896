"""Image folders to file paths and labels; the decode check of images.

A folder, local or remote, holds one sub-folder per class (searched
recursively; class names are the sub-folder names, sorted). Each real file
is read once: in a local folder a link into the folder or above it (a
loop, such as `ln -s .. cats/loop`) is not followed, a second way to a
file or folder already read is not taken, and a broken link to an image
is reported; each is a bad record (kft.data.bad_records) with the reason.
Links out of the folder are followed. Remote folders (`gs://`) have no
links. Every image, from a folder or TFDS, is decoded once at load time by
a parallel tf.data pass with the decoder the pipeline uses, so a corrupt
file is a bad record found before training rather than an error halfway
through an epoch.
"""

import os

import numpy as np
import tensorflow as tf

from kft.core import files
from kft.core.errors import UserError

# What tf.io.decode_image reads (the pipeline's and the export's decoder).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


def is_image(name):
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def read_folder(path, bad):
    """Returns (file paths, class names) from a folder of class folders.

    `path` may be remote (kft.files); the images are read by
    `tf.io.read_file`, which reads remote files too. Links that would read
    a file twice go to `bad` (see the module docstring).
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
    for file in image_files(path, bad):
        relative = os.path.relpath(file, path).split(os.sep)
        if len(relative) > 1:  # files beside the class folders: no class
            paths.append(file)
            labels.append(relative[0])
    if not paths:
        others = sum(
            not is_image(name)
            for _, _, names in files.walk(path)
            for name in names
        )
        raise UserError(
            f"image folder {path} holds no images "
            f"({', '.join(IMAGE_EXTENSIONS)}) in its class sub-folders"
            + (f"; {others} other files there" if others else "")
        )
    return paths, labels


def image_files(path, bad):
    """The image files under folder `path`, each real file once, sorted
    as paths, part by part, whatever the file system."""
    if files.is_local(path) and "://" not in path:
        root = os.path.realpath(path)
        found = list(_local_images(path, root, {}, bad))
    else:
        found = [
            os.path.join(folder, name)
            for folder, _, names in files.walk(path)
            for name in names
            if is_image(name)
        ]
    return sorted(found, key=lambda file: file.split("/"))


def _local_images(path, root, seen, bad):
    """Yields the images under local `path` not yet in `seen` ({real path:
    the path it was read as}); links not followed go to `bad`."""
    folder = os.path.isdir(path)
    if not folder and not is_image(path):
        return
    real = os.path.realpath(path)
    problem = _link_problem(path, real, root) or _seen_problem(real, seen)
    if problem:
        bad.add(path, problem)
        return
    seen[real] = path
    if not folder:
        yield path
        return
    try:
        names = sorted(os.listdir(path))
    except OSError as error:
        bad.add(path, f"cannot list the folder: {error.strerror}")
        return
    for name in names:
        yield from _local_images(os.path.join(path, name), root, seen, bad)


def _link_problem(path, real, root):
    """Why link `path` (to `real`) is not followed, or None."""
    if not os.path.islink(path):
        return None
    if not os.path.exists(real):
        return f"a broken link to {real}"
    if os.path.commonpath([real, root]) == real:
        return f"a link to {real}, which holds the data folder: a loop"
    if os.path.commonpath([real, root]) == root:
        return f"a link to {real}, inside the data folder, read there"
    return None


def _seen_problem(real, seen):
    if real in seen:
        return f"the same file or folder as {seen[real]}, read there"
    return None


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
