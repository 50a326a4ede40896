"""A classifier's LiteRT export, checked on the evaluation split.

Writes MODEL_DIR/litert/model_<mode>.tflite (kft/serving/litert.py),
labels.txt (and a text model's vocabulary) beside it, runs the whole
split through it in a fresh process that imports only the LiteRT
interpreter, and writes model_<mode>.json: its accuracy and macro-F1 from
its own `class_id`s, the Keras model's on the same examples, their
agreement, the file's size and the median latency of one example.

float32, float16 and dynamic-range files must score within TOLERANCE (1
point) of the Keras model's accuracy and decide as it does on at least
AGREEMENT of the examples (99%; 97% for dynamic range: equal accuracy
alone could hide flipped decisions); one that does not is removed, its
figures kept with `"passed": false`, and the export refused in one line.
int8 files are reported only (`"passed"` is true).
"""

import os
import time

import numpy as np

from kft import data
from kft.core import files, run_folder
from kft.core.errors import UserError
from kft.serving import litert
from kft.tasks import labelled
from kft.tasks.classification import metrics as evaluation
from kft.tasks.classification import threshold

TOLERANCE = 0.01
# The least share of examples a file must decide as Keras does: float
# files all but rounding's borderline flips; int8 weights (dynamic) flip
# more on texts near a class boundary (the demo: 5 of 379 reviews, 98.7%,
# with accuracy 0.3 points off).
AGREEMENT = {"none": 0.99, "float16": 0.99, "dynamic": 0.97}


def judge(quantization, accuracy_gap, agreement):
    """Whether a file of `quantization` may be kept (int8: always,
    reported only)."""
    if quantization == "int8":
        return True
    return accuracy_gap <= TOLERANCE and agreement >= AGREEMENT[quantization]


def _training_split(config):
    seed = data.split_seed(config)
    return data.load_splits(config.data, seed, config.task).train


def _representative(built, train, count=litert.REPRESENTATIVE_EXAMPLES):
    """Up to `count` training examples, spread over the split (seeded)."""
    rng = np.random.default_rng(0)
    chosen = sorted(rng.permutation(len(train))[:count].tolist())
    values = [train.values[i] for i in chosen]
    pairs = None if train.pairs is None else [train.pairs[i] for i in chosen]
    return litert.inputs_of(built, values, pairs)


def export(built, labels, model_dir, split, decision, config, train=None):
    """Converts, checks and keeps (or refuses) one .tflite; returns (path,
    figures). `train`: the training split (int8), read again if None."""
    quantization = config.litert.quantization
    integer_io = bool(config.litert.integer_io) and quantization == "int8"
    folder = os.path.join(model_dir, run_folder.LITERT_DIR)
    files.makedirs(folder)
    path = litert.model_path(folder, quantization)
    cut = threshold.value(decision)
    started = time.time()
    representative = None
    if quantization == "int8":
        train = train if train is not None else _training_split(config)
        representative = _representative(built, train)
    size = litert.convert(
        built,
        quantization,
        path,
        cut,
        representative,
        integer_io=integer_io,
    )
    litert.write_assets(built, labels, folder)
    convert_seconds = time.time() - started
    inputs = litert.inputs_of(built, list(split.values), split.pairs)
    report, outputs = litert.run_fresh(path, inputs)
    expected = threshold.decide(
        labelled.predict_in_order(built, split, config), cut
    )
    figures = _figures(split, labels, outputs["class_id"], expected)
    figures.update(
        quantization=quantization,
        integer_io=integer_io,
        split=split.source,
        threshold=cut,
        tflite_bytes=size,
        convert_seconds=round(convert_seconds, 1),
        **report,
    )
    weights = run_folder.weights_path(model_dir)
    if files.exists(weights):
        figures["size_ratio"] = round(size / files.size(weights), 4)
    gap = abs(figures["accuracy"] - figures["keras_accuracy"])
    figures["tolerance"] = TOLERANCE
    figures["least_agreement"] = AGREEMENT.get(quantization)
    figures["passed"] = judge(quantization, gap, figures["agreement"])
    litert.write_check(litert.check_path(folder, quantization), figures)
    if not figures["passed"]:
        files.remove(path)
        raise UserError(
            f"LiteRT {os.path.basename(path)} ({quantization}) does not "
            f"agree with the Keras model: accuracy {figures['accuracy']:.4f}"
            f" vs {figures['keras_accuracy']:.4f}, same decision on "
            f"{figures['agreement']:.1%} of {split.source} (at most "
            f"{TOLERANCE:.0%} apart, the same on at least "
            f"{AGREEMENT[quantization]:.0%}); the file was removed, figures in "
            f"{litert.check_path(folder, quantization)}"
        )
    return path, figures


def _figures(split, labels, served, expected):
    """Accuracy and macro-F1 of the served decisions, the Keras model's,
    and how often the two decide alike."""
    truth = np.asarray(split.label_ids)
    served = np.asarray(served).astype(np.int64).reshape(-1)
    if len(served) != len(truth):
        raise UserError(
            f"the .tflite answered {len(served)} of {len(truth)} examples"
        )
    mine = evaluation.decision_figures(truth, served, labels)
    keras_figures = evaluation.decision_figures(truth, expected, labels)
    return {
        "examples": len(truth),
        "accuracy": mine["accuracy"],
        "macro_f1": mine["macro_f1"],
        "keras_accuracy": keras_figures["accuracy"],
        "keras_macro_f1": keras_figures["macro_f1"],
        "agreement": float(np.mean(served == expected)) if len(truth) else 1.0,
    }
