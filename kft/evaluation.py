"""Classification metrics: during training (Keras) and at the end (NumPy).

`classification_report` computes every figure of metrics.json from labels
and predicted probabilities; the tests check it against scikit-learn.
`MacroF1` is the streaming version `model.fit` reports for validation data,
so model selection can use the figure users judge by.
"""

import json

import keras
import numpy as np
from keras import ops


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
        return ops.mean(f1)

    def reset_state(self):
        self.matrix.assign(ops.zeros_like(self.matrix))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


def confusion_matrix(y_true, y_pred, num_classes):
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return matrix


def _safe_divide(numerator, denominator):
    numerator = numerator.astype(np.float64)
    result = np.zeros_like(numerator)
    np.divide(numerator, denominator, out=result, where=denominator > 0)
    return result


def classification_report(y_true, probabilities, labels, split):
    """Returns the metrics.json dict of the contract.

    Args:
        y_true: integer class ids, shape [N].
        probabilities: predicted class probabilities, shape [N, C].
        labels: the C class names in class-id order.
        split: the name of the evaluated split, recorded as given.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.argmax(np.asarray(probabilities), axis=-1)
    matrix = confusion_matrix(y_true, y_pred, len(labels))
    true_positive = np.diag(matrix)
    precision = _safe_divide(true_positive, matrix.sum(axis=0))
    recall = _safe_divide(true_positive, matrix.sum(axis=1))
    f1 = _safe_divide(2 * precision * recall, precision + recall)
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
        "split": split,
        "num_examples": int(len(y_true)),
        "accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else 0.0,
        "macro_f1": float(np.mean(f1)),
        "weighted_f1": float(np.sum(f1 * support) / max(support.sum(), 1)),
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
        "labels": list(labels),
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
    return "\n".join(lines)


def write_report(report, path):
    with open(path, "w") as file:
        json.dump(report, file, indent=2)
