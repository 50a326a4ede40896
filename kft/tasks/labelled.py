"""What classification, multilabel and regression share: `LabelledTask`,
over texts or images with one target each (a class, a set of labels, a
number): reading them (kft/data), batches, predictions in example order,
prediction files, the held-out test split kft-predict and kft-evaluate
read again, and the SavedModel with its parity check (kft/serving).

Each task gives its head, loss and Keras metrics, its decision, its
metrics.json figures and its served outputs."""

import dataclasses
import json
import os

import numpy as np

from kft import data
from kft.core import accelerator, distribute, files, run_folder
from kft.core.errors import UserError
from kft.core.run_folder import (
    SAMPLE_FILE,
    TEST_SPLIT_FILE,
    write_jsonl,
)
from kft.core.run_folder import log as _log
from kft.model import builder, heads
from kft.report import page as report_page
from kft.serving import export as export_lib
from kft.serving import parity
from kft.tasks import base


def prepare(config, head=heads.SOFTMAX):
    """Reads the data and builds the model; returns (built, splits)."""
    seed = data.split_seed(config)
    splits = data.load_splits(config.data, seed, config.task)
    for note in splits.notes:
        _log(note)
    built = builder.build(config, len(splits.labels), head)
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
    """Whether text batches pad to a few fixed lengths (XLA, TPU);
    `accelerator.resolve` turns "auto" into one of them for a run."""
    if config.data.text_shapes == "auto":
        return accelerator.jit(config) or config.strategy == "tpu"
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
    pairs, modality = None, ""
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
        if values and "image" in row:
            modality = "image"
            _check_images_exist(values, held_out, config.data.train)
    elif spec:
        notes = []
        records = data.read_checked(spec, config.data, notes, config.task)
        for note in notes:
            _log(note)
        values, names, pairs = records.values, records.labels, records.pairs
        modality = records.modality
    else:
        seed = data.split_seed(config)
        return data.load_splits(config.data, seed, config.task).test
    if not config.data.text_pair_column:
        pairs = None
    encoded = data.targets.encode(names, labels, config.task, spec)
    return data.Split("test", spec, values, encoded, pairs, modality)


def _check_images_exist(paths, listing, source):
    """A UserError naming the held-out test images that are gone."""
    missing = [path for path in paths if not files.exists(path)]
    if missing:
        raise UserError(
            f"{len(missing)} of the {len(paths)} test images {listing} lists "
            f"are missing (first: {missing[0]}); they came from {source}: "
            "restore them, or evaluate other data with --config.data.test"
        )


def input_rows(split):
    """predictions.jsonl's start of each row: the index and the text(s)."""
    rows = []
    for index, value in enumerate(split.values):
        row = {"index": index}
        if isinstance(value, str):
            row["text"] = value
        if split.pairs is not None:
            row["text_pair"] = split.pairs[index]
        rows.append(row)
    return rows


def compare_values(expected, served, key):
    """(figures, problems) of served `key` values against the Keras
    model's `expected`, relative to their size above 1 (scores may be
    large numbers)."""
    got = np.asarray(served[key], np.float32)
    scale = np.maximum(1.0, np.abs(expected))
    difference = (
        float(np.max(np.abs(got - expected) / scale)) if got.size else 0.0
    )
    allowed = parity.tolerance()
    figures = {"max_abs_difference": difference, "tolerance": allowed}
    problems = []
    if difference > allowed:
        problems.append(f"{key} differ by up to {difference:.2e} (> {allowed})")
    return figures, problems


def _names(labels):
    """The names joined by ', ', each quoted where one holds a comma or
    an edge space (a reader would split or trim it otherwise)."""
    if any("," in name or name != name.strip() for name in labels):
        return ", ".join(f"'{name}'" for name in labels)
    return ", ".join(labels)


def _case_variants(labels):
    """A note naming the classes that differ only in case (a typo in the
    data makes 'pos' and 'Pos' two classes), or ""."""
    groups = {}
    for name in labels:
        groups.setdefault(name.casefold(), []).append(name)
    alike = [group for group in groups.values() if len(group) > 1]
    if not alike:
        return ""
    shown = "; ".join(_names(group) for group in alike[:5])
    return f" (differing only in case: {shown})"


class LabelledTask(base.Task):
    """A target per text, text pair or image. Subclasses give `head`,
    `loss_and_metrics`, `score` and `serving`; and `decide` where the
    outputs need a decision."""

    head = heads.SOFTMAX
    output_name = "classes"  # the log's word for `labels`
    multi_worker = True

    def prepare(self, config):
        return prepare(config, self.head)

    def build(self, config, num_outputs, member=0):
        return builder.build(config, num_outputs, self.head, member)

    def load(self, model_dir, config):
        labels = run_folder.read_labels(model_dir)
        weights = run_folder.weights_path(model_dir)
        return labels, builder.rebuild(config, len(labels), weights, self.head)

    def describe(self, splits):
        return (
            f"{base.Task.describe(self, splits)}; {self.output_name} "
            f"({len(splits.labels)}): {_names(splits.labels)}"
            f"{_case_variants(splits.labels)}"
        )

    def batches(self, built, split, labels, config, training):
        return batches(built, split, config, training)

    def loss_and_metrics(self, model, config, num_outputs):
        """(loss per example, Keras metrics) of `model.compile`."""
        raise NotImplementedError

    def compile(self, model, optimizer, config, num_outputs):
        loss, metrics = self.loss_and_metrics(model, config, num_outputs)
        model.compile(
            optimizer=optimizer,
            loss=distribute.global_mean(loss),
            metrics=metrics,
            jit_compile=accelerator.jit(config),
            # 0 ("auto") is resolved by run.train; callers that skip it get 1.
            steps_per_execution=config.steps_per_execution or 1,
        )

    def score(self, split, outputs, labels, decision, modality, folder):
        """The metrics.json dict of `split` from the model's `outputs`;
        with `folder`, writes its predictions.jsonl there."""
        raise NotImplementedError

    def evaluate(self, built, split, labels, config, decision, folder=""):
        outputs = predict_in_order(built, split, config)
        report = self.score(
            split, outputs, labels, decision, built.modality, folder
        )
        # Predictions made, each example once (predict_in_order checks it).
        report["evaluated_examples"] = len(outputs)
        return report

    def serve(
        self, built, saved_model, split, labels, config, decision, folder
    ):
        outputs = parity.serve_probabilities(saved_model, split, built.modality)
        return self.score(
            split, outputs, labels, decision, built.modality, folder
        )

    def summarize(self, built, splits, config, decision, folder):
        report = self.evaluate(
            built, splits.test, splits.labels, config, decision, folder
        )
        report["source"] = splits.test.source
        if not config.data.test:
            write_held_out(
                splits.test, splits.labels, self.name, folder, built.modality
            )
        return report

    def evaluation_split(self, config, labels, folder):
        return evaluation_split(config, labels, folder)

    def export_sample(self, built, splits, config):
        return parity.sample_inputs(splits.test, built.modality)

    def write_sample(self, sample, folder):
        parity.save_sample(sample, os.path.join(folder, SAMPLE_FILE))

    def read_sample(self, folder):
        return parity.load_sample(os.path.join(folder, SAMPLE_FILE))

    def serving(self, labels, decision, config):
        """(outputs, compare) of kft/serving/export.py's `export`."""
        raise NotImplementedError

    def export(
        self, built, labels, base_dir, sample, decision, config, weights
    ):
        outputs, compare = self.serving(labels, decision, config)
        return export_lib.export(
            built,
            labels,
            base_dir,
            sample,
            weights,
            log=_log,
            outputs=outputs,
            compare=compare,
        )

    def write_report(self, folder, run_config=None):
        return report_page.write(folder, run_config)
