"""File access for run folders, local or remote, through `tf.io.gfile`.

Every file kft reads from or writes to a run folder goes through here, so
`--model_dir=gs://bucket/run` works for Colab and TPU users as a local path
does (tests use TensorFlow's in-memory `ram://` file system as the remote
stand-in). Paths are joined with `os.path.join`, which keeps URLs intact.
"""

import io
import os
import warnings

import tensorflow as tf

gfile = tf.io.gfile
# What gfile raises for a missing or unreadable path, local or remote
# (tf.errors.NotFoundError, PermissionDeniedError, ...); `.message` says why.
Error = tf.errors.OpError


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
    """Sorted names in folder `path`; [] if it is not a folder.

    Folder names lose the trailing "/" that object stores list them with.
    """
    if not gfile.isdir(path):
        return []
    return sorted(name.rstrip("/") for name in gfile.listdir(path))


def walk(path):
    """`os.walk` for local or remote folders: (folder, folders, files)."""
    return gfile.walk(path)


def open_file(path, mode="r"):
    """`open` for local or remote paths (text unless `mode` has "b")."""
    return gfile.GFile(path, mode)


def read_text(path, errors="strict"):
    """The UTF-8 text of `path`; `errors` as in `bytes.decode`."""
    return read_bytes(path).decode("utf-8", errors)


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
    try:
        with gfile.GFile(temporary, "wb") as file:
            file.write(data)
        gfile.rename(temporary, path, overwrite=True)
    except BaseException:
        if gfile.exists(temporary):
            gfile.remove(temporary)
        raise


def remove(path):
    """Removes a file or a folder tree; nothing if it is not there."""
    if gfile.isdir(path):
        gfile.rmtree(path)
    elif gfile.exists(path):
        gfile.remove(path)


def size(path):
    return gfile.stat(path).length


def copy_tree(source, target, last=()):
    """Copies folder `source` into `target` file by file (gfile has no
    recursive copy); `target` must not exist yet.

    The files in `last` (paths relative to `source`) are copied after all
    others, in that order: a reader that waits for them finds the rest.
    """
    copies = []
    for folder, _, names in gfile.walk(source):
        relative = os.path.relpath(folder, source)
        destination = target
        if relative != ".":
            destination = os.path.join(target, relative)
        gfile.makedirs(destination)
        copies += [
            (os.path.join(folder, name), os.path.join(destination, name))
            for name in names
        ]
    ends = [os.path.join(target, name) for name in last]
    copies.sort(key=lambda pair: ends.index(pair[1]) if pair[1] in ends else -1)
    for source_file, target_file in copies:
        gfile.copy(source_file, target_file, overwrite=True)


def png_bytes(figure):
    """A matplotlib figure as PNG bytes (report plots, the lr_find plot)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # A name in a script the font lacks (CJK) draws as boxes; matplotlib
        # would warn once per glyph, naming kft's source lines, in the log.
        warnings.filterwarnings("ignore", message="Glyph .* missing from")
        figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()
