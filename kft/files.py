"""File access for run folders, local or remote, through `tf.io.gfile`.

Every file kft reads from or writes to a run folder goes through here, so
`--model_dir=gs://bucket/run` works for Colab and TPU users as a local path
does (tests use TensorFlow's in-memory `ram://` file system as the remote
stand-in). Paths are joined with `os.path.join`, which keeps URLs intact.
"""

import os

import tensorflow as tf

gfile = tf.io.gfile


def is_local(path):
    """Whether `path` is on the local file system (no `scheme://`)."""
    return "://" not in str(path) or str(path).startswith("file://")


def exists(path):
    return gfile.exists(path)


def isdir(path):
    return gfile.isdir(path)


def makedirs(path):
    gfile.makedirs(path)


def listdir(path):
    return sorted(gfile.listdir(path)) if gfile.isdir(path) else []


def open_file(path, mode="r"):
    """`open` for local or remote paths (text unless `mode` has "b")."""
    return gfile.GFile(path, mode)


def read_text(path):
    with gfile.GFile(path, "r") as file:
        return file.read()


def read_bytes(path):
    with gfile.GFile(path, "rb") as file:
        return file.read()


def write_text(path, text):
    """Writes `text` to `path` atomically: a temporary name, then a rename.

    A reader (or a run resumed after a kill) sees the old file or the new
    one, never half of one.
    """
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path, data):
    temporary = f"{path}.tmp-{os.getpid()}"
    with gfile.GFile(temporary, "wb") as file:
        file.write(data)
    gfile.rename(temporary, path, overwrite=True)


def remove(path):
    """Removes a file or a folder tree; nothing if it is not there."""
    if gfile.isdir(path):
        gfile.rmtree(path)
    elif gfile.exists(path):
        gfile.remove(path)


def size(path):
    return gfile.stat(path).length


def copy_tree(source, target):
    """Copies folder `source` into `target` file by file (gfile has no
    recursive copy); `target` must not exist yet."""
    for folder, _, names in gfile.walk(source):
        relative = os.path.relpath(folder, source)
        destination = target
        if relative != ".":
            destination = os.path.join(target, relative)
        gfile.makedirs(destination)
        for name in names:
            gfile.copy(
                os.path.join(folder, name),
                os.path.join(destination, name),
                overwrite=True,
            )
