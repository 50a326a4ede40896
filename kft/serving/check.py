"""Running an export's check in a fresh interpreter, and keeping TF quiet
while a SavedModel is written.

A check script (each export kind has its own) loads the SavedModel in a
new Python process that imports only `tensorflow` and `tensorflow_text`,
as TF Serving's builds have them, answers the sample and prints one JSON
line. Every export kind (classification, NER, QA, causal LM) runs its
script through `run_script` and writes under `quiet`.
"""

import contextlib
import json
import os
import subprocess
import sys

import tensorflow as tf
from absl import logging as absl_logging

from kft.core.errors import ExportError

# The signature TF Serving answers by default; every export has it.
SERVING = "serving_default"


def run_script(script, args, stdin=None):
    """Runs a check `script` in a fresh interpreter (TF_CPP quiet); returns
    the JSON of its last output line, or raises ExportError with the last
    line of its errors."""
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ExportError(f"the export does not load or run: {last}")
    return json.loads(result.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def quiet():
    """Keeps TF's INFO lines about renamed captures and shards out of logs."""
    # TF logs through its own logger and, in newer modules, through absl's.
    logger = tf.get_logger()
    level, verbosity = logger.level, absl_logging.get_verbosity()
    logger.setLevel("WARNING")
    absl_logging.set_verbosity(absl_logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)
        absl_logging.set_verbosity(verbosity)


def folder_bytes(path):
    """The bytes of every file under the local folder `path`."""
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path)
        for name in names
    )
