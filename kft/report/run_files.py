"""A finished run's files as report.html and kft-compare read them.

Every file is read through tf.io.gfile (local or `gs://` folders); a file
cut off or not JSON is one line naming it, never a traceback.
"""

import csv
import dataclasses
import io
import json
import os

from kft.core import files
from kft.core.errors import UserError

REPORT_FILE = "report.html"
CURVES_FILE = "curves.png"
CONFUSION_FILE = "confusion_matrix.png"
NORMALIZED_FILE = "confusion_matrix_normalized.png"
PREDICTIONS_FILE = "predictions.jsonl"
# Left by --config.lr_find=true (kft.lr_find), shown when present.
LR_FIND_JSON, LR_FIND_PLOT = "lr_find.json", "lr_find.png"


@dataclasses.dataclass
class Run:
    """A run folder's records, as read from its files.

    Args:
        folder: the run (or kft-evaluate) folder.
        config: config.json as a dict; {} where there is none.
        history: history.csv rows (dicts of floats and the phase name).
        metrics: metrics.json as a dict.
        predictions: predictions.jsonl rows; [] where there is none.
    """

    folder: str
    config: dict
    history: list
    metrics: dict
    predictions: list

    @property
    def name(self):
        return os.path.basename(os.path.normpath(self.folder))


def load(folder, config=None):
    """Reads a finished run's files; UserError if `folder` is not one."""
    path = os.path.join(folder, "metrics.json")
    if not files.exists(path):
        raise UserError(
            f"{folder} is not a finished kft run folder (no metrics.json)"
        )
    metrics = read_json(path)
    if config is None:
        config = read_json(os.path.join(folder, "config.json"))
    return Run(
        folder,
        config,
        read_history(os.path.join(folder, "history.csv")),
        metrics,
        read_jsonl(os.path.join(folder, PREDICTIONS_FILE)),
    )


def read_json(path):
    if not files.exists(path):
        return {}
    return _parsed(path, json.loads)


def read_jsonl(path):
    if not files.exists(path):
        return []

    def parse(text):
        lines = io.StringIO(text, newline=None)
        return [json.loads(line) for line in lines if line.strip()]

    return _parsed(path, parse)


def _parsed(path, parse):
    """`parse` of the run file at `path`; UserError if it is cut off or
    not JSON (a run killed while writing it, a file edited by hand)."""
    try:
        return parse(files.read_text(path))
    except (ValueError, UnicodeDecodeError) as error:
        raise UserError(
            f"{path} is not valid JSON ({error}); rerun the command that "
            "wrote it, or leave this run out"
        ) from None


def read_history(path):
    """history.csv as rows of floats, one per epoch, in epoch order.

    A resumed run may have written an epoch twice; its last row counts.
    """
    if not files.exists(path):
        return []
    by_epoch = {}
    text = io.StringIO(files.read_text(path), newline="")
    for row in csv.DictReader(text):
        parsed = {
            key: float(value)
            for key, value in row.items()
            if key != "phase" and value not in ("", None)
        }
        parsed["phase"] = row["phase"]
        by_epoch[parsed["epoch"]] = parsed
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def phase_spans(history):
    """[(phase name, first epoch, last epoch)] in training order."""
    spans = []
    for row in history:
        epoch = int(row["epoch"])
        if spans and spans[-1][0] == row["phase"]:
            spans[-1] = (row["phase"], spans[-1][1], epoch)
        else:
            spans.append((row["phase"], epoch, epoch))
    return spans
