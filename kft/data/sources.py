"""Data specs to labelled splits in memory.

A spec (see CONTRACT.md) is a CSV, TSV or JSONL file (kft.data.tables), a
folder with one sub-folder per class (kft.data.images, each real file read
once), local or remote (`gs://...`, read through kft.files), or
`tfds:NAME[/CONFIG]:SPLIT` (kft.data.tfds_source). `load_splits` reads the
train, validation and test specs, skipping and reporting bad records
(kft.data.bad_records), derives missing splits by a stratified, seeded
split of the training data, and maps labels to ids with one vocabulary
taken from the training data.
"""

import dataclasses
import os
import pathlib

import numpy as np

from kft.core import assets, files
from kft.core.errors import UserError
from kft.data import images, tables, targets, tfds_source
from kft.data.bad_records import BadRecords
from kft.data.columns import Columns


@dataclasses.dataclass
class Split:
    """One labelled split in memory, before any preprocessing.

    Args:
        name: "train", "validation" or "test".
        source: where it came from, as the log and config.json say it.
        values: texts, image file paths, or encoded image bytes.
        label_ids: what the model trains on, aligned with `values`:
            integer class ids, or multi-hot rows or numbers
            (kft.data.targets).
        pairs: the second texts of text pairs, aligned with `values`, or
            None (single texts and images).
        modality: "text" or "image" where the reader knows it, else "".
    """

    name: str
    source: str
    values: list
    label_ids: np.ndarray
    pairs: list | None = None
    modality: str = ""

    def __len__(self):
        return len(self.values)


@dataclasses.dataclass
class Splits:
    """The three splits; `validation` is None when its fraction is 0.

    `columns` names the training data's text, pair, image and label
    columns (or TFDS features); None for image folders.
    """

    train: Split
    validation: Split | None
    test: Split
    labels: list
    modality: str
    notes: list
    columns: Columns | None = None

    def all(self):
        """The splits that exist (test may be the validation split)."""
        splits = (self.train, self.validation, self.test)
        return [split for split in splits if split is not None]


@dataclasses.dataclass
class Records:
    """What one spec holds once its bad records are skipped.

    Args:
        values: texts, image file paths, or encoded image bytes.
        labels: label names (strings), aligned with `values`; label-name
            tuples (multilabel) or numbers (regression).
        modality: "text" or "image".
        pairs: second texts of text pairs, or None.
        columns: the columns or features read (None for image folders).
        bad: the bad records skipped.
    """

    values: list
    labels: list
    modality: str
    pairs: list | None
    columns: Columns | None
    bad: BadRecords


# === Reading specs ===


def _drop_undecodable(values, labels, bad, names):
    """Drops images that do not decode; `names` says where each one is."""
    broken = set(images.undecodable(values))
    for index in sorted(broken):
        bad.add(names[index], "not a readable image")
    keep = [i for i in range(len(values)) if i not in broken]
    return [values[i] for i in keep], [labels[i] for i in keep]


def _read(spec, config, bad, task):
    """Returns (values, pairs, labels, columns, modality) of one spec."""
    if spec.startswith("tfds:"):
        read = tfds_source.read_tfds(spec, config, bad)
        return *read, read[3].modality
    path = spec
    if "://" not in spec:  # a plain local path, as pathlib spells it
        path = str(pathlib.Path(spec).expanduser())
    if files.isdir(path):
        # Texts where the class folders hold .txt files and no image (the
        # look at the images records nothing: read_folder reads them).
        unseen = BadRecords(spec, "skip")
        if tables.text_files(path) and not images.image_files(path, unseen):
            values, labels = tables.read_text_folder(path, bad)
            return values, None, labels, None, "text"
        values, labels = images.read_folder(path, bad)
        return values, None, labels, None, "image"
    if not files.exists(path):
        raise UserError(f"data not found: {spec}{assets.missing_hint(path)}")
    if os.path.splitext(path)[1].lower() not in (".csv", ".tsv", ".jsonl"):
        raise UserError(
            f"unsupported data file {spec}; use .csv, .tsv, .jsonl, "
            "a folder of class folders or tfds:NAME:SPLIT"
        )
    values, pairs, labels, columns = tables.read_table(path, config, bad, task)
    return (
        values,
        pairs,
        labels,
        columns,
        columns.modality if columns else "text",
    )


def read_spec(spec, config, task="classification"):
    """Reads one data spec into `Records`, skipping bad records.

    Images are decode-checked here, so the pipeline can trust them.

    Args:
        spec: a file, a folder or `tfds:NAME[/CONFIG]:SPLIT`.
        config: the `data` config block (columns, `tfds_data_dir`,
            `on_error`).
        task: what a label is (kft.data.targets).
    """
    bad = BadRecords(spec, config.on_error)
    values, pairs, labels, columns, modality = _read(spec, config, bad, task)
    if modality == "image":
        names = values
        if spec.startswith("tfds:"):
            names = [f"{spec} example {i}" for i in range(len(values))]
        values, labels = _drop_undecodable(values, labels, bad, names)
    return Records(values, labels, modality, pairs, columns, bad)


# === Splitting and labels ===


def stratified_split(labels, fraction, seed):
    """Returns (kept, held_out) index arrays; each class split by fraction."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    kept, held = [], []
    for label in sorted(set(labels.tolist())):
        indices = np.flatnonzero(labels == label)
        rng.shuffle(indices)
        count = int(round(len(indices) * fraction))
        if len(indices) > 1:
            count = min(max(count, 1), len(indices) - 1)
        else:
            count = 0
        held.extend(indices[:count])
        kept.extend(indices[count:])
    return np.sort(np.array(kept, int)), np.sort(np.array(held, int))


def label_ids(labels, vocabulary, source):
    """Class ids of `labels`; a label outside `vocabulary` is a UserError."""
    return targets.encode(labels, vocabulary, "classification", source)


def read_checked(spec, data_config, notes, task="classification"):
    """`read_spec`, then the bad-record report (or error) into `notes`."""
    records = read_spec(spec, data_config, task)
    note = records.bad.check(len(records.values), data_config.max_bad_fraction)
    if note:
        notes.append(note)
    if not records.values:
        raise UserError(f"{spec} holds no labelled examples")
    return records


def _take(records, indices):
    """(values, pairs, labels) of `records` at `indices`."""
    pairs = records.pairs
    return (
        [records.values[i] for i in indices],
        None if pairs is None else [pairs[i] for i in indices],
        [records.labels[i] for i in indices],
    )


def _held_out(records, pool, data_config, seed, notes, task):
    """Splits `pool` (indices into the training records) for each missing
    validation or test spec; returns ({name: (values, pairs, labels,
    source) or None}, the indices left for training)."""
    held = {}
    total = len(pool)
    for name in ("test", "validation"):
        if data_config[name]:
            continue
        fraction = data_config[f"{name}_fraction"]
        if fraction <= 0:
            held[name] = None
            continue
        labels = targets.strata([records.labels[i] for i in pool], task)
        kept, out = stratified_split(labels, fraction, seed)
        how = "stratified" if task == "classification" else "random"
        source = f"{data_config.train} ({fraction:.0%} {how}, seed {seed})"
        held[name] = (*_take(records, pool[out]), source)
        left = " of what the test split left" if len(pool) < total else ""
        notes.append(
            f"no {name} data given: holding out {len(out)} training "
            f"examples ({len(out) / total:.1%} of them: {name}_fraction "
            f"{fraction:g}{left}, {how}, data.split_seed {seed}) as {name}"
        )
        if task == "classification":
            _note_absent(name, set(labels), {labels[i] for i in out}, notes)
        pool = pool[kept]
    return held, pool


def _note_absent(name, classes, held, notes):
    """Names the classes a held-out split got no example of."""
    absent = sorted(classes - held, key=str)
    if absent:
        count = f"{len(absent)} class{'es' if len(absent) > 1 else ''}"
        notes.append(
            f"warning: the {name} split holds no example of {count} (too "
            f"few examples to hold one out): "
            + ", ".join(f"'{label}'" for label in absent[:10])
            + (", ..." if len(absent) > 10 else "")
        )


def split_seed(config, seed=None):
    """The seed of the held-out splits: `data.split_seed`, or the run's
    seed (`seed`, by default `config.seed`) where it is -1. A run writes
    the one it used to config.json."""
    if config.data.split_seed >= 0:
        return config.data.split_seed
    return config.seed if seed is None else seed


def load_splits(data_config, seed, task="classification"):
    """Reads the train, validation and test specs into `Splits`.

    Args:
        data_config: the `data` config block.
        seed: the seed of the held-out splits.
        task: what a label is (kft.data.targets); held-out splits are
            stratified by class for classification, random otherwise.
    """
    if not data_config.train:
        raise UserError("no training data; set --config.data.train")
    notes = []
    records = read_checked(data_config.train, data_config, notes, task)
    vocabulary = targets.vocabulary(
        records.labels, task, data_config.train, data_config.label_column
    )
    if records.columns is not None:
        notes.append(f"reading {records.columns.describe()}")
    _pin_pair_columns(records, data_config)
    parts, pool = _held_out(
        records, np.arange(len(records.values)), data_config, seed, notes, task
    )
    for name in ("test", "validation"):
        spec = data_config[name]
        if spec and _same_file(spec, data_config.train):
            notes.append(
                f"warning: the {name} file is the training file ({spec}): "
                f"its figures measure memory, not generalization"
            )
        if spec:
            given = read_checked(spec, data_config, notes, task)
            if records.pairs is None:
                _check_pairs(given, spec, data_config.train)
            parts[name] = (*_take(given, range(len(given.values))), spec)
    splits = {"train": (*_take(records, pool), data_config.train)}
    splits |= parts
    made = {}
    for name, part in splits.items():
        made[name] = (
            None if part is None else _split(name, part, vocabulary, task)
        )
    _note_seen_in_training(made, notes)
    return _with_fallbacks(made, vocabulary, records, notes)


def _note_seen_in_training(made, notes):
    """Counts the validation and test examples whose input (text, pair or
    image path) is also a training example's: repeated rows in a file
    land on both sides of a held-out split."""
    train = made["train"]
    pairs = train.pairs if train.pairs is not None else [None] * len(train)
    seen = set(zip(train.values, pairs))
    for name in ("validation", "test"):
        split = made[name]
        if split is None:
            continue
        others = split.pairs if split.pairs is not None else [None] * len(split)
        shared = sum(key in seen for key in zip(split.values, others))
        if shared:
            notes.append(
                f"warning: {shared} of {len(split)} {name} examples are also "
                "in the training data (the same input): their figures "
                "partly measure memory; remove repeated rows from the data"
            )


def _same_file(spec, other):
    if "://" in spec or ":" in spec.split("/")[0]:  # remote or tfds:
        return spec == other
    paths = [os.path.realpath(os.path.expanduser(p)) for p in (spec, other)]
    return paths[0] == paths[1]


def _pin_pair_columns(records, data_config):
    """Makes every split read the training data's pair columns.

    A validation or test file without them is then a one-line error
    naming the missing column; config.json records the columns used.
    """
    if records.pairs is not None:
        data_config.text_column = records.columns.text
        data_config.text_pair_column = records.columns.pair


def _check_pairs(given, spec, train_spec):
    if given.pairs is not None:
        raise UserError(
            f"{spec} holds text pairs ({given.columns.describe()}) but "
            f"{train_spec} does not; set --config.data.text_column (and "
            "--config.data.text_pair_column) to columns both have"
        )


def _split(name, part, vocabulary, task):
    values, pairs, labels, source = part
    if not values:
        raise UserError(
            f"the {name} split is empty ({source}); give more data or "
            f"--config.data.{name}"
        )
    ids = targets.encode(labels, vocabulary, task, source)
    return Split(name, source, values, ids, pairs)


def _with_fallbacks(made, vocabulary, records, notes):
    """`Splits`, evaluating on validation when there is no test split."""
    if made["validation"] is None:
        notes.append(
            "no validation data (validation_fraction 0): training on all "
            "of it and keeping the last epoch's weights"
        )
    if made["test"] is None:
        if made["validation"] is None:
            raise UserError(
                "no test and no validation data; give --config.data.test or "
                "a test_fraction above 0"
            )
        made["test"] = made["validation"]
        notes.append(
            "no test data (test_fraction 0): evaluating on the validation split"
        )
    return Splits(
        made["train"],
        made["validation"],
        made["test"],
        vocabulary,
        records.modality,
        notes,
        records.columns,
    )


def class_weights(label_ids, num_classes, kind="balanced"):
    """Per-class loss weights from the training labels' frequencies.

    "balanced" is n / (k * count), as scikit-learn's; "sqrt" is its square
    root, a softer push towards rare classes that costs less accuracy.
    """
    counts = np.bincount(label_ids, minlength=num_classes).astype(float)
    weights = len(label_ids) / (num_classes * np.maximum(counts, 1.0))
    if kind == "sqrt":
        weights = np.sqrt(weights)
    return {i: float(w) for i, w in enumerate(weights)}
