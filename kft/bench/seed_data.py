"""The examples each seed of `kft-benchmark accuracy` learns from and is
scored on, as rows ({"text", "label"[, "text_pair"]}; "text" is the file
path for images), and the --config overrides that point kft's run at the
same examples.

`on="test"`: the experiment's own splits for the seed; the peers learn
from kft's training and validation examples (not validation when kft
scores it, for want of a test split). `on="validation"`: a stratified
`holdout` share of those examples, seeded by the seed, written as
train.jsonl and validation.jsonl (images: copied into class folders)
under the seed's folder; the test file is never read.
"""

import copy
import json
import pathlib
import shutil

from kft.core.errors import UserError


def _rows(split, labels, pairs=True):
    rows = []
    for i, value in enumerate(split.values):
        row = {"text": value, "label": labels[int(split.label_ids[i])]}
        if pairs and split.pairs is not None:
            row["text_pair"] = split.pairs[i]
        rows.append(row)
    return rows


def _write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as file:
        for row in rows:
            file.write(json.dumps(row, ensure_ascii=False) + "\n")


def _pool_config(config, seed, on):
    """The data config and split seed that give the examples to learn
    from. --on=validation never reads the test file, and carves a test
    split (when there is no test file) with the experiment's own seed, the
    same for every benchmark seed: no seed's pool holds test examples."""
    from kft import data

    if on == "test":
        return config.data, data.split_seed(config, seed)
    data_config = copy.deepcopy(config.data)
    if data_config.test:
        data_config.test, data_config.test_fraction = "", 0.0
    if not (data_config.validation or data_config.validation_fraction):
        # Loading needs a split to evaluate on; the pool is training and
        # validation together, so any carving gives the whole file.
        data_config.validation_fraction = 0.5
    return data_config, data.split_seed(config)


def examples(config, seed, on, holdout, folder, peers=("kft",)):
    """(examples to learn from, examples to score, label names, the
    --config overrides that point kft's run at the same examples)."""
    from kft import data

    splits = data.load_splits(*_pool_config(config, seed, on))
    if splits.modality == "image":
        _check_images(splits, peers)
    labels = list(splits.labels)
    pool = _rows(splits.train, labels)
    # Without a test split kft scores validation: the peers must not learn
    # it. (--on=validation scores neither: both are in the pool.)
    scores_validation = on == "test" and splits.test is splits.validation
    if splits.validation is not None and not scores_validation:
        pool += _rows(splits.validation, labels)
    if on == "test":
        return pool, _rows(splits.test, labels), labels, ()
    ids = {str(name): i for i, name in enumerate(labels)}
    kept, held = data.stratified_split(
        [ids[str(row["label"])] for row in pool], holdout, seed
    )
    train = [pool[i] for i in kept]
    scored = [pool[i] for i in held]
    if splits.modality == "image":
        return train, scored, labels, _image_folders(folder, train, scored)
    _write_jsonl(folder / "train.jsonl", train)
    _write_jsonl(folder / "validation.jsonl", scored)
    overrides = (
        f"--config.data.train={folder / 'train.jsonl'}",
        f"--config.data.test={folder / 'validation.jsonl'}",
        "--config.data.validation=",
        "--config.data.text_column=text",
        "--config.data.label_column=label",
        "--config.data.text_pair_column="
        + ("text_pair" if "text_pair" in pool[0] else ""),
    )
    return train, scored, labels, overrides


def _check_images(splits, peers):
    if set(peers) - {"kft"}:
        raise UserError("image experiments have no peers here; --peers=kft")
    if not all(isinstance(value, str) for value in splits.train.values):
        raise UserError(
            "kft-benchmark accuracy reads images from folders; this "
            "experiment's are TFDS records"
        )


def _image_folders(folder, train, scored):
    """Copies the images into class folders (train/, validation/) under
    `folder`; each row's "text" becomes its copy's path."""
    for name, rows in (("train", train), ("validation", scored)):
        for index, row in enumerate(rows):
            target = folder / name / str(row["label"])
            target.mkdir(parents=True, exist_ok=True)
            copy = target / f"{index:06d}_{pathlib.Path(row['text']).name}"
            shutil.copyfile(row["text"], copy)
            row["text"] = str(copy)
    return (
        f"--config.data.train={folder / 'train'}",
        f"--config.data.test={folder / 'validation'}",
        "--config.data.validation=",
    )
