"""The config keys that hold local paths, and their one rule: a local path
that exists is made absolute (with ~ expanded); anything else (a hub preset,
a remote URL, a tfds: spec, a missing file) stays as written.

A run records its paths absolute (`make_absolute`), so config.json and the
held-out splits name them from any folder; a rerun that names the same file
by another spelling asks for the same run (`resolve`, run_folder's config
comparison).
"""

import json
import os

from kft.core import files

PATH_KEYS = (
    "backbone",
    "weights",
    "data.train",
    "data.validation",
    "data.test",
    "data.tfds_data_dir",
)


def resolve(config_dict):
    """A copy of a config dict whose local paths are absolute."""
    resolved = json.loads(json.dumps(config_dict))
    for key in PATH_KEYS:
        node, last = _holder(
            resolved, key, lambda node, part: node.get(part, {})
        )
        if last in node:
            node[last] = _absolute(node[last])
    return resolved


def make_absolute(config):
    """Sets the config's local PATH_KEYS that exist to absolute paths, so
    config.json and the held-out splits' files name them from anywhere
    (kft-evaluate, kft-predict started in another folder)."""
    for key in PATH_KEYS:
        node, last = _holder(config, key, lambda node, part: node[part])
        node[last] = _absolute(node[last])


def _holder(tree, key, child):
    """(the node holding dotted `key`, its last part)."""
    *parents, last = key.split(".")
    for part in parents:
        tree = child(tree, part)
    return tree, last


def _absolute(value):
    """A local path that exists, made absolute; anything else as it is."""
    if isinstance(value, str) and _is_local(value):
        return os.path.abspath(os.path.expanduser(value))
    return value


def _is_local(value):
    if not value or not files.is_local(value) or value.startswith("tfds:"):
        return False
    return os.path.exists(os.path.expanduser(value))
