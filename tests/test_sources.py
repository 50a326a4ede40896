"""Data sources as users bring them: TFDS, image folders, text files, and
the bad records in them (skipped, counted, reported, or raised)."""

import io
import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from conftest import (
    TINY_IMAGE_FLAGS,
    assert_user_error,
    make_texts,
    train_cli,
    write_csv,
)
from PIL import Image

from kft import config as config_lib
from kft import data
from kft.core.errors import UserError

# === Tiny TFDS datasets, built and prepared for real ===


def _square(level, size=16):
    return np.full((size, size, 3), level, np.uint8)


class KftTinyImages(tfds.core.GeneratorBasedBuilder):
    """Bright and dark 16x16 squares; an extra image feature kft skips."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(16, 16, 3)),
                    "mask": tfds.features.Image(shape=(16, 16, 1)),
                    "label": tfds.features.ClassLabel(names=["dark", "bright"]),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        return {
            "train": self._generate_examples(20),
            "test": self._generate_examples(6),
        }

    def _generate_examples(self, count):
        for index in range(count):
            label = index % 2
            yield (
                index,
                {
                    "image": _square(40 + 160 * label),
                    "mask": np.zeros((16, 16, 1), np.uint8),
                    "label": label,
                },
            )


class KftTinyTexts(tfds.core.GeneratorBasedBuilder):
    """The conftest texts under GLUE's feature names (sentence, label)."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        names = ["negative", "neutral", "positive"]
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "sentence": tfds.features.Text(),
                    "idx": np.int32,
                    "label": tfds.features.ClassLabel(names=names),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        return {
            "train": self._generate_examples(45, seed=1),
            "test": self._generate_examples(12, seed=2),
        }

    def _generate_examples(self, count, seed):
        names = ["negative", "neutral", "positive"]
        for index, row in enumerate(make_texts(count, seed)):
            label = names.index(row["label"])
            example = {"sentence": row["text"], "idx": index, "label": label}
            yield index, example


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory):
    """A TFDS data_dir holding kft_tiny_images and kft_tiny_texts."""
    folder = tmp_path_factory.mktemp("tfds")
    for builder in (KftTinyImages, KftTinyTexts):
        builder(data_dir=str(folder)).download_and_prepare()
    return str(folder)


def _data_config(**values):
    config = config_lib.default_config().data
    for key, value in values.items():
        config[key] = value
    return config


def test_tfds_slices_keep_images_encoded(tfds_dir):
    config = _data_config(tfds_data_dir=tfds_dir)
    head = data.read_spec("tfds:kft_tiny_images:train[:80%]", config)
    tail = data.read_spec("tfds:kft_tiny_images:train[80%:]", config)
    assert (len(head.values), len(tail.values)) == (16, 4)
    assert head.modality == "image" and head.columns.image == "image"
    assert all(value.startswith(b"\x89PNG") for value in head.values)
    pixels = data.decode_image(head.values[1], 16).numpy()
    assert head.labels[1] == ("bright" if pixels.mean() > 100 else "dark")


def test_tfds_text_features_map_and_override(tfds_dir):
    spec = "tfds:kft_tiny_texts:train"
    records = data.read_spec(spec, _data_config(tfds_data_dir=tfds_dir))
    assert records.modality == "text" and records.columns.text == "sentence"
    assert len(records.values) == 45 and records.labels[0] == "positive"
    with pytest.raises(UserError, match="no column 'review'; columns: .*idx"):
        data.read_spec(
            spec, _data_config(tfds_data_dir=tfds_dir, text_column="review")
        )


def test_tfds_missing_dataset_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="cannot load tfds:kft_nothing:train"):
        data.read_spec(
            "tfds:kft_nothing:train", _data_config(tfds_data_dir=str(tmp_path))
        )


# === Image folders: formats and broken files ===


def _encoded(pixels, format, **options):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=format, **options)
    return buffer.getvalue()


def _gif_two_frames(first, second):
    frames = [Image.fromarray(_square(first)), Image.fromarray(_square(second))]
    buffer = io.BytesIO()
    frames[0].save(
        buffer, format="GIF", save_all=True, append_images=frames[1:]
    )
    return buffer.getvalue()


FORMATS = {
    "jpg": lambda level: _encoded(_square(level), "JPEG", quality=95),
    "png": lambda level: _encoded(_square(level), "PNG"),
    "bmp": lambda level: _encoded(_square(level), "BMP"),
    "gif": lambda level: _gif_two_frames(level, 255 - level),
}


@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_image_formats_decode(tmp_path, suffix):
    for label, level in (("bright", 220), ("dark", 30)):
        (tmp_path / label / "nested").mkdir(parents=True)
        file = tmp_path / label / "nested" / f"a.{suffix}"
        file.write_bytes(FORMATS[suffix](level))
    records = data.read_spec(str(tmp_path), _data_config())
    assert records.labels == ["bright", "dark"] and records.bad.count == 0
    bright, dark = (
        data.decode_image(tf.io.read_file(path), 8).numpy().mean()
        for path in records.values
    )
    assert abs(bright - 220) < 4 and abs(dark - 30) < 4  # GIF: first frame


def broken_images(folder):
    """Writes two good PNGs per class plus a truncated JPEG and a PNG with
    a wrong header; returns the broken files' names."""
    for label, level in (("bright", 220), ("dark", 30)):
        (folder / label).mkdir(parents=True)
        for index in range(2):
            png = _encoded(_square(level), "PNG")
            (folder / label / f"{index}.png").write_bytes(png)
    jpeg = _encoded(_square(220, 64), "JPEG")
    (folder / "bright" / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    png = _encoded(_square(30), "PNG")
    (folder / "dark" / "header.png").write_bytes(b"\x89PNX" + png[4:])
    return ["cut.jpg", "header.png"]


def test_broken_images_are_skipped_and_named(tmp_path):
    names = broken_images(tmp_path)
    records = data.read_spec(str(tmp_path), _data_config())
    assert len(records.values) == 4 and records.bad.count == 2
    for name in names:
        assert name in records.bad.listed()


def test_broken_image_raises_when_asked(tmp_path):
    broken_images(tmp_path)
    with pytest.raises(UserError, match="cut.jpg: not a readable image"):
        data.read_spec(str(tmp_path), _data_config(on_error="raise"))


# === Text files: bad records ===

GOOD_ROWS = [f"the movie is good {i},positive\n" for i in range(8)] + [
    f"the movie is bad {i},negative\n" for i in range(8)
]

# Each bad line and the reason the report gives for it.
BAD_LINES = {
    '"the movie is good,positive\n': "malformed row (a stray quote?)",
    "good,movie,is,positive\n": "4 fields, the header has 2",
    "caf\udce9 good,positive\n": "not UTF-8",
    "   ,negative\n": "empty text",
    "the movie is fine,\n": "missing label",
}


def _csv_with(path, bad_lines):
    """A CSV of GOOD_ROWS with `bad_lines` from line 5 on; returns path."""
    rows = GOOD_ROWS[:3] + list(bad_lines) + GOOD_ROWS[3:]
    text = "text,label\n" + "".join(rows)
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    return str(path)


def test_bad_csv_rows_are_skipped_counted_and_named(tmp_path):
    config = _data_config(train=_csv_with(tmp_path / "m.csv", BAD_LINES))
    config.max_bad_fraction = 0.3
    records = data.read_spec(config.train, config)
    assert len(records.values) == len(GOOD_ROWS)
    assert records.values[3] == "the movie is good 3"  # resynchronized
    assert records.bad.count == len(BAD_LINES)
    reasons = list(BAD_LINES.values())
    assert records.bad.examples == [
        f"{config.train}:{5 + i} ({reasons[i]})" for i in range(3)
    ]
    splits = data.load_splits(config, seed=0)
    assert splits.notes[0].startswith(
        f"skipped 5 bad records of 21 in {config.train} (23.8%): "
    )


def test_too_many_bad_records_fail_naming_the_first(tmp_path):
    config = _data_config(train=_csv_with(tmp_path / "m.csv", BAD_LINES))
    with pytest.raises(UserError, match=r"5 of 21 records .* \(23.8%, more"):
        data.load_splits(config, seed=0)


@pytest.mark.parametrize("line,reason", BAD_LINES.items())
def test_on_error_raise_names_file_and_line(tmp_path, line, reason):
    path = _csv_with(tmp_path / "m.csv", [line])
    with pytest.raises(UserError) as caught:
        data.read_spec(path, _data_config(on_error="raise"))
    assert str(caught.value).startswith(f"bad record at {path}:5: {reason}")


def test_jsonl_bad_lines(tmp_path):
    rows = [json.dumps(row) + "\n" for row in make_texts(10)]
    rows[2] = '{"text": "good", "label": \n'
    rows[5] = '["not", "an", "object"]\n'
    rows[7] = json.dumps({"text": "good", "label": None}) + "\n"
    path = tmp_path / "train.jsonl"
    path.write_text("".join(rows) + "\n")
    records = data.read_spec(str(path), _data_config())
    assert len(records.values) == 7 and records.bad.count == 3
    assert records.bad.listed().startswith(f"{path}:3 (invalid JSON:")
    assert f"{path}:6 (not a JSON object)" in records.bad.listed()


def test_jsonl_integer_labels_sort_as_numbers(tmp_path):
    rows = [{"text": f"t {i}", "label": i % 11} for i in range(44)]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    splits = data.load_splits(_data_config(train=str(path)), seed=0)
    assert splits.labels == [str(i) for i in range(11)]


def test_unknown_on_error_is_a_user_error(tmp_path):
    path = write_csv(tmp_path / "t.csv", make_texts(6))
    with pytest.raises(UserError, match="valid: skip, raise"):
        data.read_spec(path, _data_config(on_error="ignore"))


def test_quoted_field_may_span_lines(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('text,label\n"good\nmovie",positive\nbad,negative\n')
    records = data.read_spec(str(path), _data_config())
    assert records.values == ["good\nmovie", "bad"] and records.bad.count == 0


# === Columns, pairs, labels, held-out splits ===


def test_pairs_are_picked_and_kept(tmp_path):
    rows = [
        {"sentence1": f"a {i}", "sentence2": f"b {i}", "label": str(i % 2)}
        for i in range(20)
    ]
    path = write_csv(tmp_path / "pairs.csv", rows)
    splits = data.load_splits(_data_config(train=path), seed=0)
    assert splits.columns.pair == "sentence2"
    for split in splits.all():
        assert [f"b {v[2:]}" for v in split.values] == split.pairs
    single = data.read_spec(path, _data_config(text_column="sentence1"))
    assert single.pairs is None


@pytest.mark.parametrize("name", ["validation", "test"])
def test_unseen_label_names_label_and_file(tmp_path, name):
    config = _data_config(train=write_csv(tmp_path / "t.csv", make_texts(12)))
    config[name] = write_csv(tmp_path / "x.csv", [{"text": "a", "label": "x"}])
    with pytest.raises(UserError, match="label 'x' in .*x.csv never occurs"):
        data.load_splits(config, seed=0)


def test_held_out_split_depends_only_on_split_seed(tmp_path):
    config = _data_config(train=write_csv(tmp_path / "t.csv", make_texts(60)))
    first = data.load_splits(config, seed=7)
    again = data.load_splits(config, seed=7)
    other = data.load_splits(config, seed=8)
    assert first.test.values == again.test.values
    assert first.test.values != other.test.values
    assert "data.split_seed 7" in " ".join(first.notes)


def test_label_lists_are_bad_records_unless_multilabel(tmp_path):
    path = tmp_path / "tags.jsonl"
    rows = [{"text": "a", "label": ["x", "y"]}] + [
        {"text": f"t{i}", "label": "x" if i % 2 else "y"} for i in range(9)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    records = data.read_spec(str(path), _data_config())
    assert len(records.values) == 9
    assert "--config.task=multilabel" in records.bad.examples[0]
    assert records.bad.examples[0].startswith(f"{path}:1 ")
    tagged = data.read_spec(str(path), _data_config(), task="multilabel")
    assert tagged.labels[:2] == [("x", "y"), ("y",)]


# === Through kft-train, as a user runs it ===


def _train(model_dir, *overrides, experiment="text_classifier"):
    # The export has tests of its own; here only the data matter.
    return train_cli(
        model_dir,
        "--config.plan=full",
        "--config.epochs=1",
        "--config.export=false",
        *overrides,
        experiment=experiment,
    )


@pytest.fixture(scope="module")
def sources(tmp_path_factory, tfds_dir):
    """Per source kind: (--config.data overrides, a line the log shows)."""
    folder = tmp_path_factory.mktemp("sources")
    tsv = write_csv(folder / "train.tsv", make_texts(45), delimiter="\t")
    with open(tsv, "ab") as file:
        file.write(b"caf\xe9 good\tpositive\n")
    jsonl = folder / "train.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in make_texts(45)))
    images = folder / "images"
    broken_images(images)
    for suffix, encode in FORMATS.items():
        for label, level in (("bright", 220), ("dark", 30)):
            for index in range(3):
                file = images / label / suffix / f"{index}.{suffix}"
                file.parent.mkdir(exist_ok=True)
                file.write_bytes(encode(level + index))
    tfds_flag = f"--config.data.tfds_data_dir={tfds_dir}"
    return {
        "tsv": ([f"--config.data.train={tsv}"], "skipped 1 bad records"),
        "jsonl": (
            [f"--config.data.train={jsonl}"],
            "no test data given: holding out",
        ),
        "tfds_text": (
            [
                "--config.data.train=tfds:kft_tiny_texts:train[:80%]",
                "--config.data.validation=tfds:kft_tiny_texts:train[80%:]",
                "--config.data.test=tfds:kft_tiny_texts:test",
                tfds_flag,
            ],
            "reading text 'sentence', label 'label'",
        ),
        "folder": (
            [f"--config.data.train={images}"],
            "skipped 2 bad records of 30",
        ),
        "tfds_images": (
            [
                "--config.data.train=tfds:kft_tiny_images:train[:80%]",
                "--config.data.test=tfds:kft_tiny_images:test",
                tfds_flag,
            ],
            "reading image 'image', label 'label'",
        ),
    }


@pytest.mark.parametrize("kind", ["tsv", "jsonl", "tfds_text"])
def test_text_classifier_trains_from(kind, sources, tiny_bert, tmp_path):
    overrides, line = sources[kind]
    result = _train(
        tmp_path,
        f"--config.backbone={tiny_bert}",
        "--config.learning_rate=1e-3",
        *overrides,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"kft: {line}" in result.stdout
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["labels"] == ["negative", "neutral", "positive"]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["data"]["split_seed"] == 0


@pytest.mark.parametrize("kind", ["folder", "tfds_images"])
def test_image_classifier_trains_from(kind, sources, tmp_path):
    overrides, line = sources[kind]
    result = _train(
        tmp_path,
        *TINY_IMAGE_FLAGS,
        "--config.data.validation_fraction=0.25",
        *overrides,
        experiment="image_classifier",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"kft: {line}" in result.stdout
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["labels"]) == {"bright", "dark"}
    assert metrics["num_examples"] == (6 if kind == "tfds_images" else 4)


def test_bad_data_exits_2_with_one_line(tiny_bert, tmp_path):
    messy = _csv_with(tmp_path / "m.csv", BAD_LINES)
    pairs = write_csv(
        tmp_path / "pairs.csv",
        [{"question": "q", "context": "c", "label": i % 2} for i in range(9)],
    )
    single = write_csv(tmp_path / "single.csv", [{"question": "q", "label": 1}])
    cases = [
        ([f"--config.data.train={messy}"], "5 of 21 records", "m.csv:5"),
        (
            [f"--config.data.train={messy}", "--config.data.on_error=raise"],
            "bad record at",
            "m.csv:5: malformed row",
        ),
        (
            [f"--config.data.train={pairs}", f"--config.data.test={single}"],
            "single.csv has no column 'context'",
            "--config.data.text_pair_column",
        ),
        (
            ["--config.data.train=tfds:kft_nothing:train[:80%]"],
            "cannot load tfds:kft_nothing:train[:80%]",
        ),
    ]
    for index, (overrides, *words) in enumerate(cases):
        result = _train(
            tmp_path / str(index), f"--config.backbone={tiny_bert}", *overrides
        )
        assert_user_error(result, *words)


def test_split_seed_is_the_runs_seed_unless_set():
    config = config_lib.default_config()
    config.seed = 3
    assert data.split_seed(config) == 3
    assert data.split_seed(config, seed=5) == 5
    config.data.split_seed = 7
    assert data.split_seed(config) == 7
    assert data.split_seed(config, seed=5) == 7


def test_the_training_file_as_test_file_is_warned_about(tmp_path):
    train = _csv_with(tmp_path / "m.csv", {})
    config = _data_config(train=train, test=str(tmp_path / "." / "m.csv"))
    splits = data.load_splits(config, seed=0)
    assert any(
        note.startswith("warning: the test file is the training file")
        for note in splits.notes
    ), splits.notes


def test_a_class_too_rare_for_a_held_out_split_is_named(tmp_path):
    # 'rare' has one example: it stays in training, so the held-out splits
    # have none of it; 'few' has two: one goes to test, none to validation.
    rows = [f"t{i},common\n" for i in range(40)]
    rows += ["r0,rare\n", "f0,few\n", "f1,few\n"]
    path = tmp_path / "d.csv"
    path.write_text("text,label\n" + "".join(rows))
    splits = data.load_splits(_data_config(train=str(path)), seed=0)
    notes = " ".join(splits.notes)
    assert (
        "warning: the test split holds no example of 1 class (too few "
        "examples to hold one out): 'rare'"
    ) in notes, notes
    assert (
        "warning: the validation split holds no example of 2 classes (too "
        "few examples to hold one out): 'few', 'rare'"
    ) in notes, notes


@pytest.mark.parametrize(
    "names, overrides, images",
    [
        (["image", "label"], {}, True),
        (["image", "text", "label"], {}, False),
        (["image", "review", "label"], {}, False),
        (["image", "caption", "label"], {"text_column": "caption"}, False),
        (["photo", "text", "label"], {"image_column": "photo"}, True),
        (["text", "label"], {}, False),
    ],
)
def test_tables_and_tfds_tell_images_from_texts_alike(names, overrides, images):
    """One rule for files and TFDS features: images when data.image_column
    is set, or an `image` column is there and no text column is named or
    found (a dataset with both an image and a text is read as text)."""
    from kft.data import columns

    assert columns.holds_images(names, _data_config(**overrides)) is images


def test_a_repeated_header_line_is_a_bad_record_not_a_class(tmp_path):
    """Two CSV files joined with `cat` repeat the header inside: that line
    is skipped and counted, not read as a text of class 'label'."""
    rows = "".join(
        f"text {i} is here,{'pos' if i % 2 else 'neg'}\n" for i in range(20)
    )
    path = tmp_path / "joined.csv"
    path.write_text("text,label\n" + rows + "text,label\n" + rows)
    records = data.read_spec(str(path), _data_config())
    assert sorted(set(records.labels)) == ["neg", "pos"]
    assert len(records.values) == 40
    note = records.bad.check(len(records.values), 0.1)
    assert "the header again" in note, note


def test_test_texts_also_in_the_training_data_are_counted(tmp_path):
    """Rows repeated in a file land on both sides of a held-out split (and
    a copy of the training file as test file is no new data): the log
    says how many test texts training saw."""
    rows = "".join(
        f"text {i} is here,{'pos' if i % 2 else 'neg'}\n" for i in range(20)
    )
    path = tmp_path / "dups.csv"
    path.write_text("text,label\n" + rows * 5)
    splits = data.load_splits(_data_config(train=str(path)), 0)
    shared = [n for n in splits.notes if "also in the training data" in n]
    count = len(splits.test.values)
    assert any(f"{count} of {count} test examples" in n for n in shared), shared
    clean = tmp_path / "clean.csv"
    clean.write_text("text,label\n" + rows)
    splits = data.load_splits(_data_config(train=str(clean)), 0)
    assert not [n for n in splits.notes if "also in the training data" in n]


def test_a_folder_of_class_folders_of_text_files_reads_as_texts(tmp_path):
    """The layout keras.utils.text_dataset_from_directory reads (aclImdb,
    20 Newsgroups): one .txt file per text, one folder per class."""
    root = tmp_path / "reviews"
    for label in ("neg", "pos"):
        (root / label).mkdir(parents=True)
        for i in range(3):
            (root / label / f"{i}.txt").write_text(f"a {label} review {i}\n")
    (root / "pos" / "bad.txt").write_bytes(b"\xff\xfe\xfa not utf-8")
    (root / "README").write_text("beside the class folders: not an example")
    records = data.read_spec(str(root), _data_config())
    assert records.modality == "text"
    assert sorted(zip(records.labels, records.values))[0] == (
        "neg",
        "a neg review 0",
    )
    assert len(records.values) == 6
    assert "not UTF-8" in records.bad.check(7, 0.5)


def test_the_log_gives_the_share_of_the_data_each_split_holds(tmp_path):
    """The validation share is taken from what the test split left: the
    log gives both the setting and the share of the file it came to."""
    rows = "".join(
        f"text {i} here,{'pos' if i % 2 else 'neg'}\n" for i in range(200)
    )
    path = tmp_path / "t.csv"
    path.write_text("text,label\n" + rows)
    splits = data.load_splits(_data_config(train=str(path)), 0)
    test, validation = [n for n in splits.notes if "holding out" in n]
    assert "holding out 30 training examples (15.0% of them" in test, test
    assert "holding out 26 training examples (13.0% of them" in validation
    assert "validation_fraction 0.15 of what the test split left" in validation
