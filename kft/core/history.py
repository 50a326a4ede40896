"""history.csv: one row per epoch (phase, epoch, learning rate, every
training and validation metric), rewritten whole on each change, since
gs:// files cannot be appended to."""

import csv
import io
import os

from kft.core import files

HISTORY_FILE = "history.csv"


def rows(model_dir):
    path = os.path.join(model_dir, HISTORY_FILE)
    if not files.exists(path):
        return []
    return list(csv.DictReader(io.StringIO(files.read_text(path))))


def write(model_dir, epochs):
    fields = []
    for row in epochs:
        fields += [key for key in row if key not in fields]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, restval="")
    writer.writeheader()
    writer.writerows(epochs)
    files.write_text(os.path.join(model_dir, HISTORY_FILE), buffer.getvalue())


def append(model_dir, row):
    """Adds one epoch's row (rewriting the file: gs:// has no append)."""
    write(model_dir, rows(model_dir) + [row])


def truncate(model_dir, epochs):
    """Drops rows of epochs after the first `epochs` (a resumed run redoes
    them)."""
    every = rows(model_dir)
    kept = [row for row in every if int(row["epoch"]) <= epochs]
    if len(kept) != len(every):
        write(model_dir, kept)


def epochs_per_phase(model_dir):
    counts = {}
    for row in rows(model_dir):
        counts[row["phase"]] = counts.get(row["phase"], 0) + 1
    return counts
