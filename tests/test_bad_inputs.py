"""Malformed inputs, fed to every reader a user can reach: kft-train's
(`data.read_checked`) and kft-predict's (`table_inputs`, `image_inputs`).

Each input either reads, is counted as a bad record with a reason, or stops
with one line (a UserError), never a traceback; and reading changes no
file. A few cases then run through the console scripts, where users meet
them.
"""

import json
import os
import shutil

import numpy as np
import pytest
from conftest import (
    TINY_IMAGE_FLAGS,
    TINY_LABELS,
    run_cli,
    train_cli,
    write_csv,
)
from PIL import Image

from kft import config as config_lib
from kft import data
from kft.cli import predict
from kft.errors import UserError


def _data_config(**values):
    config = config_lib.default_config().data
    for key, value in values.items():
        config[key] = value
    return config


ROWS = "".join(f"the movie {i},{('good', 'bad')[i % 2]}\n" for i in range(12))
CSV = "text,label\n" + ROWS
JSONL = "".join(
    json.dumps({"text": f"the movie {i}", "label": ("good", "bad")[i % 2]})
    + "\n"
    for i in range(12)
)
LONG = "word " * 40_000  # 200,000 characters, over csv's default limit


def _csv_with(line):
    return (CSV + line).encode("utf-8", "surrogateescape")


def _jsonl_with(row):
    return (JSONL + (row if isinstance(row, str) else json.dumps(row))).encode()


def _train_reader(path):
    records = data.read_checked(str(path), _data_config(), [])
    return records.values, records.bad


def _predict_reader(path):
    return predict.table_inputs(str(path), ["text"], "label")


def _png(path, level=40):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), level, np.uint8)).save(path)


def _corpus(root, photos, links, extra):
    """root/photos (two classes of eight PNGs if `photos`) with `extra`
    files and `links` ({path: target}, relative to it), and root/more, a
    folder of two PNGs outside it; returns root/photos."""
    folder = root / "photos"
    folder.mkdir(parents=True)
    for label, level in (("cats", 200), ("dogs", 40)):
        for index in range(8 if photos else 0):
            _png(folder / label / f"{index}.png", level)
    for index in range(2):
        _png(root / "more" / f"m{index}.png")
    for name, content in extra.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    for name, target in links.items():
        os.symlink(target, folder / name)
    return folder


# === What each defect was ===


@pytest.mark.parametrize("quote", ["", '"'])
@pytest.mark.parametrize("suffix", ["csv", "tsv"])
def test_long_texts_are_read_whole(suffix, quote, tmp_path):
    path = tmp_path / f"t.{suffix}"
    text = CSV + f"{quote}{LONG}{quote},good\n"
    path.write_text(text.replace(",", "\t" if suffix == "tsv" else ","))
    assert _train_reader(path)[0][-1] == LONG
    assert _predict_reader(path)[0][-1][0] == LONG


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_utf16_and_utf32_files_say_they_are_not_utf8(encoding, tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(CSV.encode(encoding))
    expected = rf"{path} is not UTF-8 \(it looks like UTF-(16|32)\); re-save"
    for read in (_train_reader, _predict_reader):
        with pytest.raises(UserError, match=expected):
            read(path)


def test_json_booleans_and_numbers_are_one_class_with_their_text(tmp_path):
    labels = [True, "true", False, " false", 1, "1", 2.5, "2.5"]
    path = tmp_path / "t.jsonl"
    path.write_text(
        "".join(
            json.dumps({"text": f"t{i}", "label": labels[i % 8]}) + "\n"
            for i in range(40)
        )
    )
    splits = data.load_splits(_data_config(train=str(path)), seed=0)
    assert splits.labels == ["1", "2.5", "false", "true"]
    items, _ = _predict_reader(path)
    truths = ["true", "true", "false", "false", "1", "1", "2.5", "2.5"]
    assert [truth for _, truth in items[:8]] == truths
    path.write_text(json.dumps({"text": "t", "label": [True, "x", 1]}))
    tagged = data.read_spec(str(path), _data_config(), task="multilabel")
    assert tagged.labels == [("1", "true", "x")]


@pytest.mark.parametrize("label", ["good\x00", "go\x07od", "go\nod", "\x1b[1m"])
@pytest.mark.parametrize("task", ["classification", "multilabel"])
def test_labels_with_control_characters_are_bad_records(label, task, tmp_path):
    rows = [
        {"text": f"t{i}", "label": ("good", "bad")[i % 2]} for i in range(12)
    ]
    path = write_csv(tmp_path / "t.csv", rows + [{"text": "x", "label": label}])
    records = data.read_spec(path, _data_config(), task=task)
    assert len(records.values) == 12 and records.bad.count == 1
    assert "control character" in records.bad.examples[0]


def test_image_folder_loops_are_not_followed(tmp_path):
    links = {"cats/loop": "..", "dogs/self": "."}
    folder = _corpus(tmp_path, True, links, {})
    records = data.read_spec(str(folder), _data_config())
    assert len(records.values) == 16 and records.bad.count == 2
    assert records.bad.examples == [
        f"{folder}/cats/loop (a link to {folder}, which holds the data "
        "folder: a loop)",
        f"{folder}/dogs/self (a link to {folder}/dogs, inside the data "
        "folder, read there)",
    ]


def test_predict_skips_the_rows_training_skips(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(_csv_with('"the end,good\n'))
    items, bad = _predict_reader(path)
    assert bad.examples == [f"{path}:14 (malformed row (a stray quote?))"]
    assert [value for value, _ in items] == _train_reader(path)[0]


# === Through the console scripts ===


@pytest.fixture(scope="module")
def tiny_export(tiny_built, tmp_path_factory):
    """`tiny_built`'s SavedModel, written in-process: BASE/1."""
    from kft import export

    base = tmp_path_factory.mktemp("export")
    export.write_saved_model(tiny_built, TINY_LABELS, str(base / "1"))
    return base / "1"


def _one_line_error(result, *words):
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, lines
    for word in words:
        assert word in lines[0], lines[0]


def test_kft_predict_on_bad_files(tiny_export, tmp_path):
    cases = {
        "utf16.csv": (CSV.encode("utf-16"), "is not UTF-8 (it looks like"),
        "empty.csv": (b"", "empty.csv holds no rows"),
        "header.csv": (b"text,label\n", "header.csv holds no rows"),
    }
    for name, (content, words) in cases.items():
        (tmp_path / name).write_bytes(content)
        result = run_cli(
            "kft-predict",
            f"--saved_model={tiny_export}",
            f"--input={tmp_path / name}",
        )
        _one_line_error(result, words)
    (tmp_path / "bad_row.csv").write_bytes(_csv_with('"the end,good\n'))
    result = run_cli(
        "kft-predict",
        f"--saved_model={tiny_export}",
        f"--input={tmp_path / 'bad_row.csv'}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(result.stdout.splitlines()) == 12
    assert "skipped 1 bad records of 13" in result.stderr
    assert "bad_row.csv:14 (malformed row" in result.stderr


def test_kft_train_reads_a_looped_image_folder_once(image_folder, tmp_path):
    folder = tmp_path / "images"
    shutil.copytree(image_folder, folder)
    os.symlink("..", folder / "bright" / "loop")
    result = train_cli(
        tmp_path / "run",
        *TINY_IMAGE_FLAGS,
        f"--config.data.train={folder}",
        "--config.plan=full",
        "--config.epochs=1",
        "--config.data.validation_fraction=0.25",
        "--config.data.test_fraction=0.25",
        "--config.export=false",
        experiment="image_classifier",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "skipped 1 bad records of 17" in result.stdout
    assert "bright/loop (a link to" in result.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["num_examples"] == 4
