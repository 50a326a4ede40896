"""Classification metrics: during training (Keras) and at the end (NumPy).

`classification_report` computes every figure of metrics.json from labels
and predicted probabilities: the decisions' figures (by argmax, or by a
two-class run's threshold, kft/tasks/classification/threshold.py) and the
probabilities' own
(top-k accuracy, calibration error, ROC-AUC, average precision); the tests
check them against scikit-learn.
`MacroF1` is the streaming version `model.fit` reports for validation data,
so model selection can use the figure users judge by.
"""

import json

import keras
import numpy as np
from keras import ops

from kft.core import files
from kft.report import sections
from kft.tasks.classification import threshold as threshold_lib


def hard_labels(y_true, num_classes):
    """Integer class ids from ids or from [batch, classes] class shares.

    Mixup and cutmix give training batches soft labels; a metric then
    counts the class with the largest share (the larger of the two mixed
    images) as the true one.
    """
    if len(y_true.shape) == 2 and y_true.shape[-1] == num_classes > 1:
        return ops.argmax(y_true, axis=-1)
    return ops.reshape(ops.cast(y_true, "int32"), (-1,))


def accuracy(num_classes):
    """Accuracy over integer or soft labels (see `hard_labels`)."""

    def accuracy(y_true, y_pred):
        labels = ops.cast(hard_labels(y_true, num_classes), "int32")
        predicted = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
        return ops.cast(ops.equal(labels, predicted), "float32")

    return keras.metrics.MeanMetricWrapper(accuracy, name="accuracy")


@keras.saving.register_keras_serializable(package="kft")
class MacroF1(keras.metrics.Metric):
    """Macro-averaged F1 over labels (ids or shares) and probabilities."""

    def __init__(self, num_classes, name="macro_f1", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = num_classes
        self.matrix = self.add_variable(
            shape=(num_classes, num_classes),
            initializer="zeros",
            dtype="float32",
            name="confusion",
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = hard_labels(y_true, self.num_classes)
        predicted = ops.argmax(y_pred, axis=-1)
        # A product of one-hot matrices, not bincount: XLA compiles it.
        actual = ops.one_hot(y_true, self.num_classes, dtype="float32")
        guessed = ops.one_hot(predicted, self.num_classes, dtype="float32")
        self.matrix.assign_add(ops.matmul(ops.transpose(actual), guessed))

    def result(self):
        true_positive = ops.diagonal(self.matrix)
        predicted = ops.sum(self.matrix, axis=0)
        actual = ops.sum(self.matrix, axis=1)
        f1 = 2.0 * true_positive / ops.maximum(predicted + actual, 1.0)
        # As macro_mean: classes neither seen nor predicted do not count.
        present = ops.cast(predicted + actual > 0, "float32")
        return ops.sum(f1 * present) / ops.maximum(ops.sum(present), 1.0)

    def reset_state(self):
        self.matrix.assign(ops.zeros_like(self.matrix))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


def confusion_matrix(y_true, y_pred, num_classes):
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return matrix


def macro_mean(f1, matrix):
    """The mean F1 over the classes the split holds or the model predicted
    (scikit-learn's default labels): a class with neither, one too small
    for a held-out example, has no F1 to average. 0 for an empty split."""
    present = (matrix.sum(axis=0) + matrix.sum(axis=1)) > 0
    return float(np.mean(f1[present])) if present.any() else 0.0


def safe_divide(numerator, denominator):
    numerator = numerator.astype(np.float64)
    result = np.zeros_like(numerator)
    np.divide(numerator, denominator, out=result, where=denominator > 0)
    return result


def decision_figures(y_true, y_pred, labels):
    """Accuracy, F1s, per-class figures and the confusion matrix."""
    matrix = confusion_matrix(y_true, y_pred, len(labels))
    true_positive = np.diag(matrix)
    precision = safe_divide(true_positive, matrix.sum(axis=0))
    recall = safe_divide(true_positive, matrix.sum(axis=1))
    f1 = safe_divide(2 * precision * recall, precision + recall)
    support = matrix.sum(axis=1)
    per_class = {
        label: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    }
    return {
        "accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else 0.0,
        "macro_f1": macro_mean(f1, matrix),
        "weighted_f1": float(np.sum(f1 * support) / max(support.sum(), 1)),
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
    }


# === Figures of the probabilities (decision-free) ===

# Top-k accuracy is reported for these k below the class count.
TOP_K = (5,)
CALIBRATION_BINS = 15


def top_k_accuracy(y_true, probabilities, k):
    """Share of examples whose class is among the k most probable.

    Equal probabilities rank the higher class id first, as scikit-learn's
    top_k_accuracy_score does.
    """
    ranked = np.argsort(probabilities, axis=1, kind="mergesort")[:, ::-1]
    return float(np.mean((ranked[:, :k] == y_true[:, None]).any(axis=1)))


def expected_calibration_error(y_true, probabilities, bins=CALIBRATION_BINS):
    """ECE of the top-label confidence, in `bins` equal-width bins.

    Confidence is the largest probability, correct means its class is the
    true one (argmax, whatever the decision threshold); bin b holds the
    confidences in (b/bins, (b+1)/bins]. ECE is the sum over bins of
    (examples in the bin / N) * |accuracy in it - mean confidence in it|
    (Guo et al., 2017), 0 for perfect calibration. None without examples.
    """
    if not len(y_true):
        return None
    confidence = probabilities.max(axis=1).astype(np.float64)
    correct = probabilities.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.searchsorted(edges, confidence, side="left") - 1
    index = np.clip(index, 0, bins - 1)
    hits = np.bincount(index, weights=correct, minlength=bins)
    confidences = np.bincount(index, weights=confidence, minlength=bins)
    return float(np.abs(hits - confidences).sum() / len(y_true))


def roc_auc(is_positive, scores):
    """Area under the ROC curve, None when either side has no example.

    The Mann-Whitney statistic with tied scores at their average rank, which
    equals the trapezoidal area under the ROC curve (ties give its diagonal
    steps).
    """
    positives = int(is_positive.sum())
    negatives = len(is_positive) - positives
    if not positives or not negatives:
        return None
    _, inverse, counts = np.unique(
        scores, return_inverse=True, return_counts=True
    )
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0
    rank_sum = average_rank[inverse][is_positive].sum()
    return float(
        (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
    )


def average_precision(is_positive, scores):
    """Area under the precision-recall curve as scikit-learn sums it.

    The sum over distinct scores, from the highest, of precision at that
    cut times the recall it adds; None when there is no positive example.
    """
    positives = int(is_positive.sum())
    if not positives:
        return None
    _, inverse = np.unique(scores, return_inverse=True)
    true_positive = np.cumsum(np.bincount(inverse, weights=is_positive)[::-1])
    predicted = np.cumsum(np.bincount(inverse)[::-1])
    recall_gain = np.diff(true_positive, prepend=0.0) / positives
    return float(np.sum(recall_gain * true_positive / predicted))


def probability_figures(y_true, probabilities, labels):
    """Top-k accuracy, ECE and ROC-AUC (binary: also PR-AUC) of a split.

    Two classes: ROC-AUC and average precision of class 1 (labels[1]) on
    P(class 1). More: ROC-AUC is the macro mean of the one-vs-rest AUCs of
    the classes that have one (a class absent from the split has none, nor
    has any class of a split that holds one class only); None, never NaN,
    where no figure is defined.
    """
    classes = len(labels)
    figures = {
        f"top_{k}_accuracy": (
            top_k_accuracy(y_true, probabilities, k) if len(y_true) else None
        )
        for k in TOP_K
        if k < classes
    }
    figures["ece"] = expected_calibration_error(y_true, probabilities)
    scores = probabilities.astype(np.float64)
    if classes == 2:
        is_positive = y_true == 1
        figures["positive_label"] = labels[1]
        figures["roc_auc"] = roc_auc(is_positive, scores[:, 1])
        figures["average_precision"] = average_precision(
            is_positive, scores[:, 1]
        )
        return figures
    areas = [roc_auc(y_true == c, scores[:, c]) for c in range(classes)]
    areas = [area for area in areas if area is not None]
    figures["roc_auc"] = float(np.mean(areas)) if areas else None
    return figures


def classification_report(y_true, probabilities, labels, split, threshold=None):
    """Returns the metrics.json dict of the contract, and more figures.

    Args:
        y_true: integer class ids, shape [N].
        probabilities: predicted class probabilities, shape [N, C].
        labels: the C class names in class-id order.
        split: the name of the evaluated split, recorded as given.
        threshold: two classes only: predict class 1 when P(class 1) >=
            this (see kft/tasks/classification/threshold.py); None decides by
            argmax. With a
            threshold, `at_argmax` holds the argmax figures beside it.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float32)
    y_pred = threshold_lib.decide(probabilities, threshold)
    report = {
        "split": split,
        "num_examples": int(len(y_true)),
        **decision_figures(y_true, y_pred, labels),
        "labels": list(labels),
        **probability_figures(y_true, probabilities, labels),
        "threshold": None if threshold is None else float(threshold),
    }
    report["interval"] = interval(y_true, y_pred, len(labels))
    if threshold is not None:
        argmax = threshold_lib.decide(probabilities)
        report["at_argmax"] = decision_figures(y_true, argmax, labels)
    return report


def _accuracy_and_macro_f1(y_true, y_pred, num_classes):
    matrix = np.bincount(
        y_true * num_classes + y_pred, minlength=num_classes * num_classes
    ).reshape(num_classes, num_classes)
    true_positive = np.diag(matrix)
    f1 = safe_divide(2 * true_positive, matrix.sum(0) + matrix.sum(1))
    return np.mean(y_true == y_pred), macro_mean(f1, matrix)


def interval(y_true, y_pred, num_classes, level=0.95, resamples=1000):
    """The `level` percentile bootstrap interval of accuracy and macro-F1
    over the evaluated examples (seeded): how far the figures could move
    on another sample of the same size. Training again with another seed
    moves them too; `kft-benchmark accuracy` measures that. None for fewer
    than 2 examples.

    A plain loop rather than scipy.stats.bootstrap: scipy holds a batch of
    resampled copies ([batch, N], 400 MB at N=100,000) and resamples once
    per figure; this holds one resample of N indices for both figures.
    """
    count = len(y_true)
    if count < 2:
        return None
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    rng = np.random.default_rng(0)
    figures = np.empty((resamples, 2))
    for index in range(resamples):
        chosen = rng.integers(0, count, count)
        figures[index] = _accuracy_and_macro_f1(
            y_true[chosen], y_pred[chosen], num_classes
        )
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(figures, [tail, 100 - tail], axis=0)
    return {
        "accuracy": [round(float(low[0]), 4), round(float(high[0]), 4)],
        "macro_f1": [round(float(low[1]), 4), round(float(high[1]), 4)],
        "level": level,
        "resamples": resamples,
    }


def format_table(report):
    """Renders the report as the table `kft-train` prints at the end."""
    width = max([len("class")] + [len(str(k)) for k in report["labels"]])
    lines = [
        f"{report['split']} split: {report['num_examples']} examples, "
        f"accuracy {report['accuracy']:.4f}, "
        f"macro-F1 {report['macro_f1']:.4f}",
        f"{'class':<{width}}  precision  recall     f1  support",
    ]
    for label, row in report["per_class"].items():
        lines.append(
            f"{label:<{width}}  {row['precision']:9.4f}  {row['recall']:6.4f}"
            f"  {row['f1']:.4f}  {row['support']:7d}"
        )
    return "\n".join(lines + _more_lines(report))


def _more_lines(report):
    """The threshold and the decision-free figures, under the table."""
    lines = []
    if report.get("threshold") is not None:
        argmax = report["at_argmax"]
        lines.append(
            f"decision threshold {report['threshold']:.4f} on "
            f"P({report['labels'][1]}); by argmax: accuracy "
            f"{argmax['accuracy']:.4f}, macro-F1 {argmax['macro_f1']:.4f}"
        )
    if report.get("interval"):
        lines.append(sections.interval_line(report["interval"]))
    names = {"ece": "ECE", "roc_auc": "ROC-AUC", "average_precision": "AP"}
    names |= {f"top_{k}_accuracy": f"top-{k} accuracy" for k in TOP_K}
    figures = [
        f"{name} {report[key]:.4f}"
        for key, name in names.items()
        if report.get(key) is not None
    ]
    return lines + ([", ".join(figures)] if figures else [])


def write_report(report, path):
    """Writes metrics.json (atomically; `path` may be remote)."""
    files.write_text(path, json.dumps(report, indent=2))
