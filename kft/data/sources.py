"""Data specs to labelled splits in memory.

A spec (see CONTRACT.md) is a CSV, TSV or JSONL file, a folder with one
sub-folder per class, or `tfds:NAME[/CONFIG]:SPLIT`. `load_splits` reads the
train, validation and test specs, derives missing ones by a stratified,
seeded split of the training data, and maps labels to ids with one
vocabulary taken from the training data.
"""

import csv
import dataclasses
import json
import pathlib
import re

import numpy as np
import tensorflow as tf

from kft.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
TEXT_KEYS = ("text", "sentence", "content", "review", "document")


@dataclasses.dataclass
class Split:
    """One labelled split in memory, before any preprocessing.

    Args:
        name: "train", "validation" or "test".
        source: where it came from, as the log and config.json say it.
        values: texts, image file paths, or encoded image bytes.
        label_ids: integer class ids, aligned with `values`.
    """

    name: str
    source: str
    values: list
    label_ids: np.ndarray

    def __len__(self):
        return len(self.values)


@dataclasses.dataclass
class Splits:
    """The three splits; `validation` is None when its fraction is 0."""

    train: Split
    validation: Split | None
    test: Split
    labels: list
    modality: str
    notes: list

    def all(self):
        """The splits that exist (test may be the validation split)."""
        splits = (self.train, self.validation, self.test)
        return [split for split in splits if split is not None]


# === Reading specs ===


def _read_table(path, config):
    """Returns (texts, labels) from a CSV, TSV or JSONL file."""
    suffix = path.suffix.lower()
    text_column = config.text_column
    label_column = config.label_column
    try:
        with open(path, newline="", encoding="utf-8") as file:
            if suffix == ".jsonl":
                rows = [json.loads(line) for line in file if line.strip()]
            else:
                delimiter = "\t" if suffix == ".tsv" else ","
                rows = list(csv.DictReader(file, delimiter=delimiter))
    except (UnicodeDecodeError, json.JSONDecodeError, csv.Error) as error:
        raise UserError(f"cannot read {path}: {error}") from None
    if not rows:
        raise UserError(f"{path} holds no rows")
    columns = list(rows[0].keys())
    for column in (text_column, label_column):
        if column not in columns:
            raise UserError(
                f"{path} has no column '{column}'; columns: "
                f"{', '.join(map(str, columns))} (set --config.data."
                f"{'text' if column == text_column else 'label'}_column)"
            )
    texts, labels = [], []
    for row in rows:
        text, label = row.get(text_column), row.get(label_column)
        if text is None or label is None or str(label).strip() == "":
            continue
        texts.append(str(text))
        labels.append(str(label).strip())
    return texts, labels


def _read_folder(path):
    """Returns (file paths, class names) from a folder of class folders."""
    classes = sorted(p.name for p in path.iterdir() if p.is_dir())
    if not classes:
        raise UserError(
            f"image folder {path} has no class sub-folders "
            "(expected one sub-folder per class)"
        )
    files, labels = [], []
    for name in classes:
        for file in sorted((path / name).rglob("*")):
            if file.suffix.lower() in IMAGE_EXTENSIONS and file.is_file():
                files.append(str(file))
                labels.append(name)
    return files, labels


def _read_tfds(spec, data_dir):
    """Returns (values, labels, modality) from `tfds:NAME[/CONFIG]:SPLIT`."""
    import tensorflow_datasets as tfds

    # The split may hold colons itself: tfds:mnist:train[:80%].
    parts = spec.split(":", 2)
    if len(parts) != 3 or not parts[1] or not parts[2]:
        raise UserError(f"bad TFDS spec '{spec}'; use tfds:NAME:SPLIT")
    _, name, split = parts
    try:
        dataset, info = tfds.load(
            name, split=split, data_dir=data_dir or None, with_info=True
        )
    except Exception as error:  # tfds raises many kinds; all are the user's
        first = str(error).splitlines()[0][:300] if str(error) else ""
        raise UserError(
            f"cannot load {spec}: {type(error).__name__}: {first}"
        ) from None
    features = info.features
    label_key = "label" if "label" in features else None
    if label_key is None:
        raise UserError(f"{spec} has no 'label' feature")
    names = features[label_key].names
    input_key = "image" if "image" in features else None
    for key in TEXT_KEYS:
        if input_key is None and key in features:
            input_key = key
    if input_key is None:
        raise UserError(f"{spec}: no image or text feature found")
    values, labels = [], []
    for example in tfds.as_numpy(dataset):
        if int(example[label_key]) < 0:
            raise UserError(
                f"{spec} has unlabelled examples (label -1, as GLUE test "
                "splits do); use a labelled split"
            )
        value = example[input_key]
        if input_key == "image":
            value = tf.io.encode_png(value).numpy()
        else:
            value = value.decode("utf-8")
        values.append(value)
        labels.append(names[int(example[label_key])])
    modality = "image" if input_key == "image" else "text"
    return values, labels, modality


def read_spec(spec, config):
    """Returns (values, labels, modality) for one data spec."""
    if spec.startswith("tfds:"):
        return _read_tfds(spec, config.tfds_data_dir)
    path = pathlib.Path(spec).expanduser()
    if path.is_dir():
        values, labels = _read_folder(path)
        modality = "image"
    elif path.is_file():
        if path.suffix.lower() not in (".csv", ".tsv", ".jsonl"):
            raise UserError(
                f"unsupported data file {spec}; use .csv, .tsv, .jsonl, "
                "a folder of class folders or tfds:NAME:SPLIT"
            )
        values, labels = _read_table(path, config)
        modality = "text"
    else:
        raise UserError(f"data not found: {spec}")
    if not values:
        raise UserError(f"{spec} holds no labelled examples")
    return values, labels, modality


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


def _vocabulary(labels):
    unique = sorted(set(labels))
    if all(re.fullmatch(r"-?\d+", label) for label in unique):
        unique = sorted(unique, key=int)
    return unique


def label_ids(labels, vocabulary, source):
    """Class ids of `labels`; a label outside `vocabulary` is a UserError."""
    index = {label: i for i, label in enumerate(vocabulary)}
    unseen = sorted(set(labels) - set(index))
    if unseen:
        raise UserError(
            f"label '{unseen[0]}' in {source} never occurs in the training "
            f"data (training labels: {', '.join(vocabulary)})"
        )
    return np.array([index[label] for label in labels], dtype=np.int64)


def load_splits(data_config, seed):
    """Reads the train, validation and test specs into `Splits`."""
    if not data_config.train:
        raise UserError("no training data; set --config.data.train")
    values, labels, modality = read_spec(data_config.train, data_config)
    vocabulary = _vocabulary(labels)
    if len(vocabulary) < 2:
        raise UserError(
            f"{data_config.train} has a single class ('{vocabulary[0]}'); "
            "classification needs at least two"
        )
    pool = (np.array(values, dtype=object), np.array(labels, dtype=object))
    notes = []
    read = {}
    for name in ("test", "validation"):
        spec = data_config[name]
        if spec:
            split_values, split_labels, _ = read_spec(spec, data_config)
            read[name] = (split_values, split_labels, spec)
            continue
        fraction = data_config[f"{name}_fraction"]
        if fraction <= 0:
            read[name] = None
            continue
        kept, held = stratified_split(pool[1], fraction, seed)
        source = f"{data_config.train} ({fraction:.0%} stratified, seed {seed})"
        read[name] = (list(pool[0][held]), list(pool[1][held]), source)
        pool = (pool[0][kept], pool[1][kept])
        notes.append(
            f"no {name} data given: holding out {len(held)} training "
            f"examples ({fraction:.0%}, stratified, seed {seed}) as {name}"
        )
    train = Split(
        "train",
        data_config.train,
        list(pool[0]),
        label_ids(list(pool[1]), vocabulary, data_config.train),
    )
    splits = {"train": train}
    for name, item in read.items():
        if item is None:
            splits[name] = None
            continue
        split_values, split_labels, source = item
        if not split_values:
            raise UserError(
                f"the {name} split is empty ({source}); give more data or "
                f"--config.data.{name}"
            )
        ids = label_ids(split_labels, vocabulary, source)
        splits[name] = Split(name, source, list(split_values), ids)
    if splits["validation"] is None:
        notes.append(
            "no validation data (validation_fraction 0): training on all "
            "of it and keeping the last epoch's weights"
        )
    if splits["test"] is None:
        if splits["validation"] is None:
            raise UserError(
                "no test and no validation data; give --config.data.test or "
                "a test_fraction above 0"
            )
        splits["test"] = splits["validation"]
        notes.append(
            "no test data (test_fraction 0): evaluating on the validation split"
        )
    return Splits(
        splits["train"],
        splits["validation"],
        splits["test"],
        vocabulary,
        modality,
        notes,
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
