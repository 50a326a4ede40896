"""The decision threshold of two-class runs: tuned, stored, applied.

Argmax predicts class 1 when P(class 1) > 0.5. When the classes are
unbalanced, another cut on P(class 1) often scores the rare class better,
so `--config.eval.threshold` picks how a two-class run decides:

- `auto` (the default): at the end of kft-train, once the best weights are
  back, the threshold that maximizes macro-F1 on the validation split;
  argmax when the run has no validation split (the log says so) or more
  than two classes.
- `argmax`: no threshold.
- a number in [0, 1], such as `0.3`: that threshold (two-class runs only).

P(class 1) >= threshold predicts class 1. The run writes the threshold to
MODEL_DIR/threshold.json and applies it everywhere a decision is made:
the test metrics (metrics.json also keeps the argmax figures under
`at_argmax`), kft-evaluate, and the SavedModel's `class_id` and `label`
outputs (the probabilities stay as they are), so kft-predict and TF Serving
answer as the metrics say.
"""

import json
import os
import types

import numpy as np

from kft.core import files
from kft.core.errors import UserError
from kft.serving import parity

FILE = "threshold.json"
AUTO, ARGMAX = "auto", "argmax"


def parse(setting):
    """`auto`, `argmax` or the threshold as a float; else a UserError."""
    text = str(setting).strip().lower()
    if text in (AUTO, ARGMAX):
        return text
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0.0 <= value <= 1.0:
        raise UserError(
            f"bad value '{setting}' for --config.eval.threshold; valid: "
            "auto, argmax, or a number in [0, 1]"
        )
    return value


def check(setting, num_classes):
    """Raises UserError for a fixed threshold on a run of C != 2 classes."""
    value = parse(setting)
    if isinstance(value, float) and num_classes != 2:
        raise UserError(
            f"--config.eval.threshold={setting} needs two classes, but this "
            f"run has {num_classes}; use auto or argmax"
        )
    return value


def decide(probabilities, threshold=None):
    """Class ids: argmax, or P(class 1) >= `threshold` for two classes
    (the SavedModel's rule; kft/serving/parity.py)."""
    return parity.class_ids(probabilities, threshold)


def tune(y_true, scores):
    """The threshold on `scores` maximizing the F1 of class 1: (threshold,
    F1), or None when no example is of class 1. Multilabel runs tune each
    label so, where class 1 is the label being present."""
    cuts = _cuts(y_true, scores)
    if not cuts.positives:
        return None
    return _best(
        cuts, 2 * cuts.true_positive / (cuts.positives + cuts.predicted)
    )


def tune_macro(y_true, scores):
    """The threshold on `scores` maximizing macro-F1 (the mean of both
    classes' F1): (threshold, macro-F1), or None when the split lacks one
    of the classes.

    Two-class runs tune so: macro-F1 does not depend on which class is
    class 1 (the second name in sorted order, not necessarily the one a
    user cares about), and is what their best epoch is chosen by.
    """
    cuts = _cuts(y_true, scores)
    negatives = cuts.count - cuts.positives
    if not cuts.positives or not negatives:
        return None
    true_negative = negatives - (cuts.predicted - cuts.true_positive)
    f1 = cuts.true_positive / (cuts.positives + cuts.predicted) + (
        true_negative / (negatives + cuts.count - cuts.predicted)
    )  # the mean over both classes of 2 TP / (true + predicted)
    return _best(cuts, f1)


def _cuts(y_true, scores):
    """Counts at every cut on `scores`: cut i predicts class 1 for scores
    >= distinct[i] (F1 only changes at a score, so trying each is
    exhaustive); `lower` is the next lower score."""
    positive = np.asarray(y_true) == 1
    distinct, inverse = np.unique(
        np.asarray(scores, np.float32), return_inverse=True
    )
    return types.SimpleNamespace(
        count=len(positive),
        positives=int(positive.sum()),
        distinct=distinct,
        lower=np.concatenate([[0.0], distinct[:-1]]).astype(np.float32),
        true_positive=_count_from_top(np.bincount(inverse, weights=positive)),
        predicted=_count_from_top(np.bincount(inverse)),
    )


def _best(cuts, f1):
    """(threshold, best F1). Any threshold between a cut and the next lower
    score decides the same; among the best cuts, 0.5 is kept where it is
    one (argmax already decides as well as any), else the middle of the
    gap nearest 0.5."""
    distinct, lower = cuts.distinct, cuts.lower
    best = np.flatnonzero(f1 == f1.max())
    holds_half = (lower[best] < 0.5) & (0.5 <= distinct[best])
    if holds_half.any():
        return 0.5, float(f1.max())
    middle = (lower[best] + distinct[best]) / 2  # float32, as decided
    pick = np.argmin(np.abs(middle - 0.5))
    threshold = middle[pick]
    if threshold <= lower[best[pick]]:  # adjacent floats have no middle
        threshold = distinct[best[pick]]
    return float(threshold), float(f1.max())


def _count_from_top(counts):
    return np.cumsum(counts[::-1])[::-1]


def macro_f1(y_true, y_pred):
    """The mean of both classes' F1; a class never true nor predicted
    has none to average (as metrics.macro_mean)."""
    y_true, y_pred = np.asarray(y_true) == 1, np.asarray(y_pred) == 1
    scores = []
    for true, pred in ((y_true, y_pred), (~y_true, ~y_pred)):
        denominator = true.sum() + pred.sum()
        if denominator:
            scores.append(2 * (true & pred).sum() / denominator)
    return float(np.mean(scores)) if scores else 0.0


def choose(setting, labels, validation_outputs, log):
    """A new run's threshold record (threshold.json), or None for argmax.

    Args:
        setting: `--config.eval.threshold`.
        labels: the class names.
        validation_outputs: a callable giving (label ids, probabilities)
            of the validation split, or None when the run has none; called
            only when the threshold is tuned.
        log: where the decision is explained.
    """
    value = check(setting, len(labels))
    if value == ARGMAX or len(labels) != 2:
        return None
    if isinstance(value, float):
        return {"threshold": value, "source": "config"}
    outputs = validation_outputs()
    if outputs is None:
        log(
            "no validation split to tune the decision threshold on: "
            "decisions by argmax (--config.eval.threshold=NUMBER sets one)"
        )
        return None
    y_true, probabilities = outputs
    tuned = tune_macro(y_true, np.asarray(probabilities)[:, 1])
    if tuned is None:
        absent = labels[0] if np.all(np.asarray(y_true) == 1) else labels[1]
        log(
            f"the validation split has no '{absent}' example to tune "
            "the decision threshold on: decisions by argmax"
        )
        return None
    value, f1 = tuned
    at_argmax = macro_f1(y_true, decide(probabilities))
    log(
        f"decision threshold {value:.4f} on P({labels[1]}), tuned on "
        f"validation: macro-F1 {f1:.4f} (argmax {at_argmax:.4f})"
    )
    return {
        "threshold": value,
        "source": "validation",
        "positive_label": labels[1],
        "tuning": {
            "split": "validation",
            "num_examples": int(len(y_true)),
            "macro_f1": f1,
            "macro_f1_at_argmax": at_argmax,
        },
    }


def value(record):
    return None if record is None else record["threshold"]


def save(record, model_dir):
    """Writes threshold.json, or removes a stale one when `record` is None."""
    path = os.path.join(model_dir, FILE)
    if record is None:
        files.remove(path)
        return
    files.write_text(path, json.dumps(record, indent=2))


def load(setting, model_dir, num_classes):
    """The record a finished run decides with: threshold.json under `auto`.

    `argmax` or a number given now (--config.eval.threshold=...) wins over
    the stored one; runs from before thresholds existed have no file, and
    decide by argmax.
    """
    value = check(setting, num_classes)
    if value == ARGMAX:
        return None
    if isinstance(value, float):
        return {"threshold": value, "source": "config"}
    path = os.path.join(model_dir, FILE)
    if num_classes != 2 or not files.exists(path):
        return None
    return json.loads(files.read_text(path))
