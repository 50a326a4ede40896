"""What classification, multilabel and regression runs share: batches of
texts or images with one target each, predictions in example order, their
evaluation and prediction files, and the held-out test split kft-predict
and kft-evaluate read again."""

import dataclasses
import json
import os

import numpy as np

from kft import data
from kft.core import distribute, files
from kft.core.errors import UserError
from kft.core.run_folder import PREDICTIONS_FILE, TEST_SPLIT_FILE, write_jsonl
from kft.core.run_folder import log as _log
from kft.model import builder
from kft.tasks import dispatch as tasks
from kft.tasks.classification import metrics as evaluation
from kft.tasks.classification import threshold


def prepare(config):
    """Reads the data and builds the model; returns (built, splits)."""
    if config.data.split_seed < 0:
        config.data.split_seed = config.seed  # recorded in config.json
    tasks.check(config)
    splits = data.load_splits(config.data, config.data.split_seed, config.task)
    for note in splits.notes:
        _log(note)
    built = builder.build(config, len(splits.labels))
    if built.modality != splits.modality:
        raise UserError(
            f"backbone {config.backbone} takes {built.modality} but "
            f"{config.data.train} holds {splits.modality}"
        )
    if built.modality == "text":
        _check_image_only(config.data)
        _set_sequence_length(built, splits.train, config)
    return built, splits


def _check_image_only(data_config):
    """Image augmentations on a text run would be silently ignored."""
    for key in ("augment", "mixup", "cutmix"):
        if data_config[key]:
            raise UserError(
                f"--config.data.{key} is for images; this run's data is "
                "text (leave it at its default)"
            )


def _set_sequence_length(built, train_split, config):
    preprocessor = built.preprocessor
    maximum = preprocessor.sequence_length
    if config.data.sequence_length:
        length = min(config.data.sequence_length, maximum)
    else:
        lengths = data.token_lengths(
            preprocessor, train_split.values, train_split.pairs
        )
        length = data.pick_sequence_length(
            lengths, config.data.length_percentile, maximum
        )
        _log(
            f"sequence length {length}: the {config.data.length_percentile:g}"
            f"th percentile of training token lengths (median "
            f"{int(np.median(lengths))}, max {lengths.max()}, cap {maximum})"
        )
    preprocessor.sequence_length = length
    config.data.sequence_length = length


def fixed_text_shapes(config):
    """Whether text batches pad to a few fixed lengths (XLA, TPU)."""
    if config.data.text_shapes == "auto":
        return bool(config.jit_compile) or config.strategy == "tpu"
    return config.data.text_shapes == "fixed"


def batches(built, split, config, training_data):
    """The `tf.data` pipeline of `split` for the model's modality.

    Only training data is shuffled and augmented; with mixup or cutmix its
    labels are float class shares [batch, classes], others integer ids.
    """
    data_config = config.data
    size = (
        data_config.batch_size
        if training_data
        else (data_config.eval_batch_size)
    )
    # TPUs need every batch full; elsewhere no example is dropped.
    drop_remainder = training_data and config.strategy == "tpu"
    if built.modality == "text":
        return data.text_batches(
            split,
            built.preprocessor,
            size,
            training_data,
            config.seed,
            fixed_shapes=fixed_text_shapes(config),
            drop_remainder=drop_remainder,
        )
    return data.image_batches(
        split,
        built.image_size,
        size,
        training_data,
        config.seed,
        augment=data.parse_augment(data_config.augment),
        mixup=data_config.mixup,
        cutmix=data_config.cutmix,
        num_classes=built.model.output_shape[-1],
        resize=data_config.resize,
        drop_remainder=drop_remainder,
    )


def validation_outputs(built, split, config):
    """(label ids, probabilities) of the validation split, None without."""
    if split is None:
        return None
    return distribute.predict(built.model, batches(built, split, config, False))


def predict_in_order(built, split, config):
    """The model's outputs for `split`, in the split's example order.

    Text batches are grouped by length, so examples come back reordered;
    the dataset carries each example's index in place of its label, which
    undoes that.
    """
    indexed = dataclasses.replace(split, label_ids=np.arange(len(split)))
    dataset = batches(built, indexed, config, training_data=False)
    order, probabilities = distribute.predict(built.model, dataset)
    if not np.array_equal(np.sort(order), np.arange(len(split))):
        raise RuntimeError(
            f"the {split.name} split has {len(split)} examples, but "
            f"{len(order)} predictions came back ({len(set(order))} distinct)"
        )
    ordered = np.zeros_like(probabilities)
    ordered[order] = probabilities
    return ordered


def evaluate(built, split, labels, config, cut=None, folder=""):
    """Runs `split` through the model; returns the metrics.json dict.

    `cut` is the binary decision threshold
    (kft/tasks/classification/threshold.py), None argmax.
    With `folder`, also writes its predictions.jsonl.
    """
    probabilities = predict_in_order(built, split, config)
    if config.task != "classification":
        return task_report(
            config.task, split, probabilities, labels, cut, folder
        )
    if folder:
        write_predictions(
            split, probabilities, labels, built.modality, folder, cut
        )
    report = evaluation.classification_report(
        split.label_ids, probabilities, labels, split.name, cut
    )
    # Predictions made, each example once (predict_in_order checks it).
    report["evaluated_examples"] = len(probabilities)
    return report


def task_report(task, split, outputs, labels, decision, folder=""):
    """evaluate() of multilabel and regression runs (kft/tasks/dispatch.py)."""
    if folder:
        rows = tasks.prediction_rows(task, split, outputs, labels, decision)
        write_jsonl(os.path.join(folder, PREDICTIONS_FILE), rows)
    return tasks.report(task, split, outputs, labels, decision)


def format_table(report):
    if report.get("task", "classification") != "classification":
        return tasks.format_table(report)
    return evaluation.format_table(report)


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
        predicted = int(decisions[index])
        row.update(
            label=labels[label_id],
            predicted=labels[predicted],
            probability=round(float(probabilities[index][predicted]), 6),
            label_probability=round(float(probabilities[index][label_id]), 6),
        )
        rows.append(row)
    write_jsonl(os.path.join(folder, PREDICTIONS_FILE), rows)


def write_held_out(split, labels, task, model_dir, modality):
    """Writes a held-out test split as JSONL that kft-predict reads."""
    if not split.values or not isinstance(split.values[0], str):
        return  # encoded images from TFDS: the spec itself reproduces them
    key = "text" if modality == "text" else "image"
    names = data.targets.decode(split.label_ids, labels, task)
    rows = [{key: v, "label": name} for v, name in zip(split.values, names)]
    if split.pairs is not None:
        for row, pair in zip(rows, split.pairs):
            row["text_pair"] = pair
    write_jsonl(os.path.join(model_dir, TEST_SPLIT_FILE), rows)


def evaluation_split(config, labels, model_dir):
    """The split kft-evaluate runs: --config.data.test, else the run's own.

    The run's own test split is its test spec, or the test_split.jsonl it
    held out of the training data, or (for TFDS images, which have no such
    file) the same seeded split of the training data again.
    """
    spec = config.data.test
    held_out = os.path.join(model_dir, TEST_SPLIT_FILE)
    pairs = None
    if not spec and files.exists(held_out):
        values, names, pairs = [], [], []
        for line in files.read_text(held_out).splitlines():
            row = json.loads(line)
            values.append(row.get("text", row.get("image")))
            names.append(row["label"])
            pairs.append(row.get("text_pair"))
        spec = held_out
        if config.task == "multilabel":
            names = [tuple(row) for row in names]
    elif spec:
        notes = []
        records = data.read_checked(spec, config.data, notes, config.task)
        for note in notes:
            _log(note)
        values, names, pairs = records.values, records.labels, records.pairs
    else:
        seed = config.data.split_seed
        return data.load_splits(
            config.data, config.seed if seed < 0 else seed, config.task
        ).test
    if not config.data.text_pair_column:
        pairs = None
    encoded = data.targets.encode(names, labels, config.task, spec)
    return data.Split("test", spec, values, encoded, pairs)
