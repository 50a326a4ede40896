"""Classification (`--config.task=classification`): one class per text,
text pair or image, from a softmax head.

The loss is cross-entropy on class ids, or on class shares for mixup and
cutmix batches; fit reports accuracy and macro-F1. A two-class run decides
with the threshold tuned on validation (kft/tasks/classification/
threshold.py), everywhere: metrics.json, predictions.jsonl, kft-evaluate
and the SavedModel's `class_id` and `label`. metrics.json's figures are
kft/tasks/classification/metrics.py's.
"""

import os

import keras

from kft import data
from kft.core.run_folder import PREDICTIONS_FILE, write_jsonl
from kft.core.run_folder import log as _log
from kft.serving import export as export_lib
from kft.serving import parity
from kft.tasks import labelled
from kft.tasks.classification import litert, threshold
from kft.tasks.classification import metrics as evaluation


def _loss(config, num_classes):
    smoothing = config.label_smoothing

    def loss(labels, probabilities):
        if len(labels.shape) == 2 and labels.shape[-1] == num_classes:
            # Soft labels (mixup, cutmix): class shares per example.
            labels = keras.ops.cast(labels, probabilities.dtype)
        else:
            labels = keras.ops.one_hot(
                keras.ops.reshape(keras.ops.cast(labels, "int32"), (-1,)),
                num_classes,
            )
        return keras.losses.categorical_crossentropy(
            labels, probabilities, label_smoothing=smoothing
        )

    return loss


class ClassificationTask(labelled.LabelledTask):
    name = "classification"
    metrics = ("loss", "accuracy", "macro_f1")

    def check(self, config):
        threshold.parse(config.eval.threshold)

    def before_training(self, built, splits, config, folder):
        threshold.check(config.eval.threshold, len(splits.labels))

    def class_weight(self, splits, config):
        if not config.class_weight:
            return None
        return data.class_weights(
            splits.train.label_ids, len(splits.labels), config.class_weight
        )

    def loss_and_metrics(self, model, config, num_outputs):
        metrics = [
            evaluation.accuracy(num_outputs),
            evaluation.MacroF1(num_outputs),
        ]
        return _loss(config, num_outputs), metrics

    def decide(self, built, splits, config, folder):
        """The threshold record (threshold.json) of a two-class run."""

        def validation_outputs():
            return labelled.validation_outputs(built, splits.validation, config)

        record = threshold.choose(
            config.eval.threshold, splits.labels, validation_outputs, _log
        )
        threshold.save(record, folder)
        return record

    def load_decision(self, config, folder, labels):
        return threshold.load(config.eval.threshold, folder, len(labels))

    def score(self, split, outputs, labels, decision, modality, folder):
        cut = threshold.value(decision)
        if folder:
            write_predictions(split, outputs, labels, modality, folder, cut)
        return evaluation.classification_report(
            split.label_ids, outputs, labels, split.name, cut
        )

    def summarize(self, built, splits, config, decision, folder):
        report = super().summarize(built, splits, config, decision, folder)
        tuning = (decision or {}).get("tuning")
        if tuning is not None:
            report["threshold_tuning"] = tuning
        return report

    def format_table(self, report):
        return evaluation.format_table(report)

    def serving(self, labels, decision, config):
        cut = threshold.value(decision)

        def outputs(probabilities, table):
            return export_lib.class_outputs(probabilities, table, cut)

        def compare(expected, served):
            return parity.compare_classes(expected, served, labels, cut)

        return outputs, compare

    def export_litert(
        self, built, labels, model_dir, split, decision, config, train=None
    ):
        return litert.export(
            built, labels, model_dir, split, decision, config, train
        )


TASK = ClassificationTask()


def write_predictions(split, probabilities, labels, modality, folder, cut):
    """Writes one JSON line per example: input, label, prediction, odds.

    `predicted` is decided as the metrics decide (`cut`, the threshold, or
    argmax); `probability` is the predicted class's, `label_probability`
    the true class's. Encoded images (TFDS) get their index only.
    """
    decisions = threshold.decide(probabilities, cut)
    key = "text" if modality == "text" else "image"
    rows = []
    for index, (value, label_id) in enumerate(
        zip(split.values, split.label_ids)
    ):
        row = {"index": index}
        if isinstance(value, str):
            row[key] = value
        if split.pairs is not None:
            row["text_pair"] = split.pairs[index]
        predicted = int(decisions[index])
        row.update(
            label=labels[label_id],
            predicted=labels[predicted],
            probability=round(float(probabilities[index][predicted]), 6),
            label_probability=round(float(probabilities[index][label_id]), 6),
        )
        rows.append(row)
    write_jsonl(os.path.join(folder, PREDICTIONS_FILE), rows)
