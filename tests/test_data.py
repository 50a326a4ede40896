import json

import numpy as np
import pytest
from conftest import make_texts, write_csv

from kft import config as config_lib
from kft import data
from kft.core.errors import UserError


def test_stratified_split_keeps_class_shares():
    labels = ["a"] * 80 + ["b"] * 20
    kept, held = data.stratified_split(labels, 0.25, seed=3)
    assert len(held) == 25 and len(kept) == 75
    assert sorted(np.array(labels)[held]).count("b") == 5
    again = data.stratified_split(labels, 0.25, seed=3)
    assert np.array_equal(again[1], held)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_text_files_read_alike(tmp_path, suffix):
    rows = make_texts(9)
    path = tmp_path / f"train{suffix}"
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        write_csv(path, rows, delimiter="\t" if suffix == ".tsv" else ",")
    records = data.read_spec(str(path), config_lib.default_config().data)
    assert records.modality == "text" and records.pairs is None
    assert records.values == [r["text"] for r in rows]
    assert records.labels == [r["label"] for r in rows]
    assert records.bad.count == 0


def test_missing_splits_are_held_out_and_announced(tmp_path):
    config = config_lib.default_config().data
    config.train = write_csv(tmp_path / "t.csv", make_texts(60))
    splits = data.load_splits(config, seed=0)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (
        42,
        9,
        9,
    )
    assert splits.notes[0] == "reading text 'text', label 'label'"
    held = [note for note in splits.notes if "also in the training" not in note]
    assert len(held) == 3 and "stratified" in held[1]
    assert splits.labels == ["negative", "neutral", "positive"]


def test_numeric_labels_sort_as_numbers(tmp_path):
    rows = [{"text": f"t{i}", "label": str(i % 11)} for i in range(44)]
    config = config_lib.default_config().data
    config.train = write_csv(tmp_path / "t.csv", rows)
    splits = data.load_splits(config, seed=0)
    assert splits.labels == [str(i) for i in range(11)]


def test_unseen_test_label_names_label_and_file(tmp_path):
    config = config_lib.default_config().data
    config.train = write_csv(tmp_path / "t.csv", make_texts(12))
    config.test = write_csv(
        tmp_path / "x.csv", [{"text": "a", "label": "other"}]
    )
    with pytest.raises(UserError, match="label 'other' in .*x.csv"):
        data.load_splits(config, seed=0)


def test_sequence_length_from_percentile():
    lengths = np.arange(1, 101)
    assert data.pick_sequence_length(lengths, 99.0, 512) == 104
    assert data.pick_sequence_length(lengths, 99.0, 64) == 64


def test_class_weights():
    labels = np.array([0, 0, 0, 1])
    weights = data.class_weights(labels, 2)
    assert weights == {0: pytest.approx(4 / 6), 1: pytest.approx(2.0)}
    weights = data.class_weights(labels, 2, "sqrt")
    assert weights == {
        0: pytest.approx((4 / 6) ** 0.5),
        1: pytest.approx(2.0**0.5),
    }


def test_text_batches_trim_padding_and_keep_every_example(tiny_bert):
    from kft.model import builder

    config = config_lib.default_config()
    config.backbone = tiny_bert
    built = builder.build(config, 3)
    built.preprocessor.sequence_length = 32
    texts = ["good"] * 5 + ["the movie is good the movie is bad the"] * 5
    split = data.Split("validation", "x", texts, np.arange(10) % 3)
    batches = list(
        data.text_batches(
            split, built.preprocessor, 4, training=False, seed=0, granularity=4
        )
    )
    widths = sorted(b[0]["token_ids"].shape[1] for b in batches)
    assert widths[0] == 4 and widths[-1] == 12  # not the padded 32
    seen = np.concatenate([b[1].numpy() for b in batches])
    assert sorted(seen.tolist()) == sorted(split.label_ids.tolist())


def test_image_folder_reads_classes(image_folder):
    records = data.read_spec(image_folder, config_lib.default_config().data)
    assert records.modality == "image"
    assert sorted(set(records.labels)) == ["bright", "dark"]
    split = data.Split(
        "train", image_folder, records.values, np.array([0] * 8 + [1] * 8)
    )
    (images, ids), *_ = list(data.image_batches(split, 24, 16, False, 0))
    assert images.shape == (16, 24, 24, 3)
    assert float(images[0].numpy().mean()) > float(images[-1].numpy().mean())


def test_zero_fractions_train_on_everything(tmp_path):
    config = config_lib.default_config().data
    config.train = write_csv(tmp_path / "t.csv", make_texts(30))
    config.validation_fraction = 0.0
    config.test = config.train
    splits = data.load_splits(config, seed=0)
    assert splits.validation is None and len(splits.train) == 30
    assert "last epoch" in splits.notes[-1]
    config.test = ""
    config.test_fraction = 0.0
    with pytest.raises(UserError, match="no test and no validation"):
        data.load_splits(config, seed=0)
