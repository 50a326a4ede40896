"""Malformed inputs, fed to every reader a user can reach: kft-train's
(`data.read_checked`) and kft-predict's (`table_inputs`, `image_inputs`).

Each input either reads, is counted as a bad record with a reason, or stops
with one line (a UserError), never a traceback; and reading changes no
file. A few cases then run through the console scripts, where users meet
them.
"""

import hashlib
import json
import os
import shutil

import numpy as np
import pytest
from conftest import (
    TINY_IMAGE_FLAGS,
    TINY_LABELS,
    assert_user_error,
    run_cli,
    train_cli,
    write_csv,
)
from PIL import Image

from kft import config as config_lib
from kft import data
from kft.cli import predict
from kft.core.errors import UserError


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


# === A corpus of malformed text files ===

# file name, content, outcomes: "bad/read" is kft-train's and kft-predict's,
# "bad" alone both.
TEXT_CASES = {
    "csv": ("t.csv", CSV.encode(), "read"),
    "tsv": ("t.tsv", CSV.replace(",", "\t").encode(), "read"),
    "jsonl": ("t.jsonl", JSONL.encode(), "read"),
    "utf8 bom": ("t.csv", b"\xef\xbb\xbf" + CSV.encode(), "read"),
    "crlf": ("t.csv", CSV.replace("\n", "\r\n").encode(), "read"),
    "utf16 csv": ("t.csv", CSV.encode("utf-16"), "error"),
    "utf16le csv no bom": ("t.csv", CSV.encode("utf-16-le"), "error"),
    "utf16be tsv": ("t.tsv", b"\xfe\xff" + CSV.encode("utf-16-be"), "error"),
    "utf16 jsonl": ("t.jsonl", JSONL.encode("utf-16"), "error"),
    "utf32 csv": ("t.csv", CSV.encode("utf-32"), "error"),
    "latin-1 row": ("t.csv", _csv_with("caf\udce9,good\n"), "bad"),
    "latin-1 header": ("t.csv", "t\xe9xt,label\n".encode("latin-1"), "error"),
    "png named csv": ("t.csv", b"\x89PNG\r\n\x1a\n\x00\x00", "error"),
    "unclosed quote": ("t.csv", _csv_with('"the end,good\n'), "bad"),
    "unclosed quote mid-file": (
        "t.csv",
        ('text,label\n"stray,good\n' + ROWS).encode(),
        "bad",
    ),
    "stray quote": ("t.csv", _csv_with('"a"b,good\n'), "bad"),
    "too many fields": ("t.csv", _csv_with("a,b,good\n"), "bad"),
    "too few fields": ("t.csv", _csv_with("good\n"), "bad"),
    "10,000 fields": ("t.csv", _csv_with("x," * 9999 + "good\n"), "bad"),
    "long field": ("t.csv", _csv_with(f"{LONG},good\n"), "read"),
    "long quoted field": ("t.csv", _csv_with(f'"{LONG}",good\n'), "read"),
    "long tsv field": (
        "t.tsv",
        (CSV + f"{LONG},bad\n").replace(",", "\t").encode(),
        "read",
    ),
    "long jsonl text": (
        "t.jsonl",
        _jsonl_with({"text": LONG, "label": "good"}),
        "read",
    ),
    "empty text": ("t.csv", _csv_with("  ,good\n"), "bad/read"),
    "missing label": ("t.csv", _csv_with("a movie,\n"), "bad/read"),
    "NUL in label": ("t.csv", _csv_with("a movie,good\x00\n"), "bad/read"),
    "bell in label": ("t.csv", _csv_with("a movie,go\x07od\n"), "bad/read"),
    "newline in label": ("t.csv", _csv_with('a movie,"go\nod"\n'), "bad/read"),
    "NUL in text": ("t.csv", _csv_with("a\x00movie,good\n"), "read"),
    "zero bytes csv": ("t.csv", b"", "error"),
    "zero bytes jsonl": ("t.jsonl", b"", "error"),
    "header only": ("t.csv", b"text,label\n", "error"),
    "blank lines only": ("t.jsonl", b"\n\n  \n", "error"),
    "no text column": ("t.csv", CSV.replace("text", "words").encode(), "error"),
    "invalid json": ("t.jsonl", _jsonl_with('{"text": "a", \n'), "bad"),
    "json array": ("t.jsonl", _jsonl_with("[1, 2]\n"), "bad"),
    "json without text": ("t.jsonl", _jsonl_with({"label": "good"}), "bad"),
    "json number text": (
        "t.jsonl",
        _jsonl_with({"text": 5, "label": "good"}),
        "read",
    ),
    "repeated column": (
        "t.csv",
        ("text,label,text\n" + ROWS.replace("\n", ",x\n")).encode(),
        "error",
    ),
    "spaces around column names": (
        "t.csv",
        CSV.replace("text,label", " text , label").encode(),
        "read",
    ),
    "json object text": (
        "t.jsonl",
        _jsonl_with({"text": {"body": "a"}, "label": "good"}),
        "bad",
    ),
    "json list text": (
        "t.jsonl",
        _jsonl_with({"text": ["a", "b"], "label": "good"}),
        "bad",
    ),
    "json boolean text": (
        "t.jsonl",
        _jsonl_with({"text": True, "label": "good"}),
        "bad",
    ),
    "json first line without label": (
        "t.jsonl",
        ('{"text": "a"}\n' + JSONL).encode(),
        "bad/read",
    ),
    "json first line with another text name": (
        "t.jsonl",
        ('{"review": "a", "label": "good"}\n' + JSONL).encode(),
        "bad",
    ),
    "json boolean labels": (
        "t.jsonl",
        _jsonl_with({"text": "a", "label": True}).replace(b'"good"', b"false"),
        "read",
    ),
}


def _checksums(folder):
    """{relative path: sha256 or link target} of everything under folder."""
    sums = {}
    for root, folders, names in os.walk(folder):
        for name in folders + names:
            path = os.path.join(root, name)
            key = os.path.relpath(path, folder)
            if os.path.islink(path):
                sums[key] = "-> " + os.readlink(path)
            elif os.path.isfile(path):
                with open(path, "rb") as file:
                    sums[key] = hashlib.sha256(file.read()).hexdigest()
    return sums


def _expected(outcomes):
    """("bad", "read") of "bad/read"; "bad" alone is both readers'."""
    train, _, predict = outcomes.partition("/")
    return train, predict or train


def _outcome(read):
    """ "read", "bad" or "error" of `read()`: (values, BadRecords)."""
    try:
        values, bad = read()
    except UserError as error:
        message = str(error)
        assert message and "\n" not in message, message
        return "error"
    assert values, "no error, yet nothing read"
    if not bad.count:
        return "read"
    assert all(example.endswith(")") for example in bad.examples)
    assert all(" (" in example for example in bad.examples), bad.examples
    return "bad"


@pytest.mark.parametrize("case", sorted(TEXT_CASES))
def test_text_readers_read_skip_or_stop_with_one_line(case, tmp_path):
    name, content, outcomes = TEXT_CASES[case]
    train_expected, predict_expected = _expected(outcomes)
    path = tmp_path / name
    path.write_bytes(content)
    before = _checksums(tmp_path)
    assert _outcome(lambda: _train_reader(path)) == train_expected
    assert _outcome(lambda: _predict_reader(path)) == predict_expected
    assert _checksums(tmp_path) == before


# === A corpus of malformed image folders ===

# (links, extra files, outcomes as above, how many images kft-train reads);
# "../../more" is root/more, outside the data folder.
IMAGE_CASES = {
    "plain": ({}, {}, "read", 16),
    "loop to the data folder": ({"cats/loop": ".."}, {}, "bad", 16),
    "self link": ({"dogs/self": "."}, {}, "bad", 16),
    "link above the data folder": ({"dogs/up": "../.."}, {}, "bad", 16),
    "link to another class": ({"cats/dogs": "../dogs"}, {}, "bad", 16),
    "class that links to a class": ({"kittens": "cats"}, {}, "bad", 16),
    "file link to another class": (
        {"cats/d.png": "../dogs/0.png"},
        {},
        "bad",
        16,
    ),
    "link to a folder outside": ({"cats/more": "../../more"}, {}, "read", 18),
    "two links to one folder outside": (
        {"cats/more": "../../more", "dogs/more": "../../more"},
        {},
        "bad",
        18,
    ),
    "broken link": ({"cats/gone.png": "none.png"}, {}, "bad", 16),
    "zero-byte image": ({}, {"cats/empty.png": b""}, "bad/read", 16),
    "empty folder": (None, {}, "error", 0),
    "class folders without images": (
        None,
        {"cats/notes.csv": b"x", "dogs/a.md": b"y"},  # .txt: texts
        "error",
        0,
    ),
}


def _train_images(folder):
    records = data.read_checked(str(folder), _data_config(), [])
    real = {os.path.realpath(value) for value in records.values}
    assert len(real) == len(records.values), "a file read twice"
    return records.values, records.bad


@pytest.mark.parametrize("case", sorted(IMAGE_CASES))
def test_image_folder_readers_read_each_file_once(case, tmp_path):
    links, extra, outcomes, count = IMAGE_CASES[case]
    train_expected, predict_expected = _expected(outcomes)
    folder = _corpus(tmp_path, links is not None, links or {}, extra)
    before = _checksums(tmp_path)
    assert _outcome(lambda: _train_images(folder)) == train_expected
    if count:
        assert len(_train_images(folder)[0]) == count
    read = predict.image_inputs
    outcome = _outcome(lambda: read(str(folder), "image", "label"))
    assert outcome == predict_expected
    assert _checksums(tmp_path) == before


# === Through the console scripts ===


@pytest.fixture(scope="module")
def tiny_export(tiny_built, tmp_path_factory):
    """`tiny_built`'s SavedModel, written in-process: BASE/1."""
    from kft.serving import export

    base = tmp_path_factory.mktemp("export")
    export.write_saved_model(tiny_built, TINY_LABELS, str(base / "1"))
    return base / "1"


def test_kft_predict_on_bad_files(tiny_export, tmp_path):
    """One console run per outcome (a user error, bad rows skipped); the
    other unreadable files through the same reader, in this process."""
    (tmp_path / "utf16.csv").write_bytes(CSV.encode("utf-16"))
    result = run_cli(
        "kft-predict",
        f"--saved_model={tiny_export}",
        f"--input={tmp_path / 'utf16.csv'}",
    )
    assert_user_error(result, "is not UTF-8 (it looks like")
    for name, content in (("empty.csv", b""), ("header.csv", b"text,label\n")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(UserError, match=f"{name} holds no rows"):
            _predict_reader(tmp_path / name)
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


@pytest.mark.parametrize(
    "name, header, words",
    [
        ("t.tsv", "text,label", ["looks comma-separated", "rename it"]),
        ("t.csv", "text\tlabel", ["looks tab-separated", ".tsv"]),
        ("t.csv", "text;label", ["looks semicolon-separated"]),
        ("t.csv", "text,Label", ["did you mean 'Label'"]),
    ],
)
def test_a_missing_column_message_says_what_is_wrong(
    tmp_path, name, header, words
):
    path = tmp_path / name
    separator = header[4]
    path.write_text(header + "\n" + f"a movie{separator}good\n" * 4)
    with pytest.raises(UserError) as caught:
        data.read_checked(str(path), _data_config(), [])
    message = str(caught.value)
    assert "\n" not in message and "\t" not in message, message
    for word in words:
        assert word in message, message


def test_predict_reads_a_text_per_line_and_refuses_other_files(tmp_path):
    lines = tmp_path / "texts.txt"
    lines.write_text("a fine film\n\n  dull, long\n")
    items, bad = predict.table_inputs(str(lines), ["text"], "label")
    assert items == [("a fine film", None), ("  dull, long", None)]
    assert not bad.count
    with pytest.raises(UserError, match="pair"):
        predict.table_inputs(str(lines), ["text", "text_pair"], "label")
    sheet = tmp_path / "texts.xlsx"
    sheet.write_bytes(b"PK\x03\x04")
    with pytest.raises(UserError, match="use .csv, .tsv, .jsonl or .txt"):
        predict.table_inputs(str(sheet), ["text"], "label")


@pytest.mark.parametrize(
    "key, words", [("text_pair_column", "pair"), ("label_column", "label")]
)
def test_a_column_cannot_be_two_things(tmp_path, key, words):
    """The text column picked by name (text) named again as the pair or
    the label: one line, not a model of a text against itself."""
    path = tmp_path / "t.csv"
    path.write_bytes(CSV.encode())
    with pytest.raises(
        UserError, match=f"'text' is both the text and the {words}"
    ):
        data.read_checked(str(path), _data_config(**{key: "text"}), [])


def test_a_file_not_in_utf8_is_told_to_be_resaved(tmp_path):
    """A Latin-1 (Excel) file: every accented line is 'not UTF-8'. Raising
    max_bad_fraction cannot help, so the advice is to re-save it; where a
    few lines are skipped, the log line says how to keep them."""
    path = tmp_path / "t.csv"
    rows = "".join(f"caf\xe9 {i},{('good', 'bad')[i % 2]}\n" for i in range(12))
    path.write_bytes(("text,label\n" + rows).encode("latin-1"))
    with pytest.raises(UserError) as caught:
        data.read_checked(str(path), _data_config(), [])
    assert "re-save it as UTF-8" in str(caught.value)
    assert "raise --config.data.max_bad_fraction" not in str(caught.value)
    path.write_bytes(CSV.encode() + "caf\xe9,good\n".encode("latin-1"))
    notes = []
    data.read_checked(str(path), _data_config(), notes)
    assert any("re-save it as UTF-8" in note for note in notes), notes


def test_predict_lists_bad_records_in_line_order(tmp_path):
    # Line 2 is bad for kft-predict's columns, line 4 for the JSON reader:
    # found in two passes, listed as the file has them.
    path = tmp_path / "in.jsonl"
    path.write_text(
        '{"text": "fine"}\n{"other": "x"}\n{"text": "ok"}\n{"text": \n'
        '{"text": "good"}\n'
    )
    items, bad = predict.table_inputs(str(path), ["text"], "label")
    assert len(items) == 3 and bad.count == 2
    assert bad.listed().index(":2 (") < bad.listed().index(":4 ("), bad.listed()


def test_a_run_on_relative_paths_works_from_another_folder(
    image_folder, tmp_path
):
    """Data and run given relative to where kft-train started: the run
    records absolute paths, so kft-evaluate (and its held-out test file)
    work from anywhere."""
    where = tmp_path / "project"
    shutil.copytree(image_folder, where / "images")
    result = run_cli(
        "kft-train",
        "--experiment=image_classifier",
        "--model_dir=run",
        "--config.verbose=0",
        *TINY_IMAGE_FLAGS,
        "--config.data.train=images",
        "--config.plan=full",
        "--config.epochs=1",
        "--config.data.validation_fraction=0.25",
        "--config.data.test_fraction=0.25",
        "--config.export=false",
        cwd=where,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = where / "run"
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["train"] == str(where / "images")
    held_out = (run / "test_split.jsonl").read_text().splitlines()
    assert all(json.loads(line)["image"].startswith("/") for line in held_out)
    result = run_cli("kft-evaluate", f"--model_dir={run}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    # The held-out images moved away: one line, not a traceback.
    os.remove(json.loads(held_out[0])["image"])
    result = run_cli("kft-evaluate", f"--model_dir={run}")
    assert_user_error(result, "1 of the", "test images", "are missing")


def _red_png(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (200, 10, 10)).save(path)
    return str(path)


def test_predict_gives_loose_images_no_true_label(tmp_path):
    # A folder with one sub-folder is read as class folders; a file beside
    # them has no class (as kft-train reads it), not its own name as one.
    _red_png(tmp_path / "in" / "loose.png")
    _red_png(tmp_path / "in" / "cat" / "a.png")
    items, _ = predict.image_inputs(str(tmp_path / "in"), "image", "label")
    assert sorted(items, key=str) == [
        (str(tmp_path / "in" / "cat" / "a.png"), "cat"),
        (str(tmp_path / "in" / "loose.png"), None),
    ]


@pytest.mark.parametrize("kind", ["txt", "csv", "jsonl"])
def test_predict_reads_relative_image_paths_from_the_list_or_here(
    tmp_path, monkeypatch, kind
):
    """A relative path in a list or table is found beside the list, or,
    when it is not there, from the current folder: one rule for both."""
    here = tmp_path / "here"
    beside = _red_png(tmp_path / "lists" / "imgs" / "b.png")
    from_here = _red_png(here / "imgs2" / "h.png")
    monkeypatch.chdir(here)
    names = ["imgs/b.png", "imgs2/h.png"]
    listing = tmp_path / "lists" / f"l.{kind}"
    if kind == "txt":
        listing.write_text("\n".join(names) + "\n")
    elif kind == "csv":
        listing.write_text("image\n" + "\n".join(names) + "\n")
    else:
        listing.write_text(
            "".join(json.dumps({"image": n}) + "\n" for n in names)
        )
    items, bad = predict.image_inputs(str(listing), "image", "label")
    assert [os.path.realpath(i) for i, _ in items] == [
        os.path.realpath(beside),
        os.path.realpath(from_here),
    ]


def test_predict_scores_true_labels_as_the_task_reads_them():
    # Regression: a true label that is not a number is named, not a crash;
    # numbers print as numbers.
    scores = predict.Agreement("score", ",")
    line = {"score": 2.0}
    scores.add(line, "3.5")
    scores.add({"score": 1.0}, "bad")
    assert line["true_label"] == 3.5
    summary = scores.summary(2)
    assert "mean absolute error 1.5000" in summary
    assert "1 true label is not a number" in summary, summary
    # Multilabel: the true labels as a list, and the subset accuracy.
    scores = predict.Agreement("tags", ",")
    line = {"labels": ["neg", "always"]}
    scores.add(line, "always , neg")
    assert line["true_label"] == ["always", "neg"]
    assert "subset accuracy 1.0000 (1/1)" in scores.summary(1)
    line = {"labels": []}
    scores.add(line, "[]")  # none of the labels, as training reads it
    assert line["true_label"] == []
    assert "subset accuracy 1.0000 (2/2)" in scores.summary(2)
    # Nothing could be read: the summary says so, and main exits 1.
    scores = predict.Agreement("label", ",")
    scores.add({"error": "x"}, "a")
    assert scores.failed_all(1)


def test_predict_does_not_score_true_labels_the_model_lacks():
    """A true label that is no class of the model is named and not
    scored: an accuracy of 0 against another naming would be no figure."""
    scores = predict.Agreement("label", ",", ["neg", "pos"])
    for truth, said in (
        ("negative", "neg"),
        ("pos", "pos"),
        ("positive", "neg"),
    ):
        scores.add({"label": said}, truth)
    summary = scores.summary(3)
    assert "accuracy 1.0000 (1/1)" in summary, summary
    assert (
        "2 true labels are not classes of the model ('negative', "
        "'positive'; not scored)" in summary
    ), summary
    # Multilabel read with another delimiter than the run's: 'pos|long'.
    scores = predict.Agreement("tags", ",", ["long", "pos"])
    scores.add({"labels": ["long", "pos"]}, "pos|long")
    summary = scores.summary(1)
    assert "1 true label is not a class of the model ('pos|long'" in summary
    assert "--label_delimiter" in summary and "accuracy" not in summary


def test_kft_predict_answers_more_inputs_than_a_batch(tiny_export, tmp_path):
    path = tmp_path / "five.csv"
    path.write_text("text,label\n" + "good movie,pos\n" * 5)
    args = ("kft-predict", f"--saved_model={tiny_export}", f"--input={path}")
    result = run_cli(*args, "--batch_size=2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(result.stdout.splitlines()) == 5
    assert_user_error(run_cli(*args, "--batch_size=0"), "--batch_size")


def test_predict_says_why_an_image_could_not_be_answered(tmp_path):
    import tensorflow as tf

    from kft.serving import predict as predict_lib

    def serve(image_bytes):  # decodes as an image export does
        def mean(data):
            pixels = tf.io.decode_image(
                data, channels=3, expand_animations=False
            )
            return tf.reduce_mean(tf.cast(pixels, tf.float32))

        return {
            "p": tf.map_fn(mean, image_bytes, fn_output_signature=tf.float32)
        }

    good = _red_png(tmp_path / "good.png")
    (tmp_path / "empty.png").write_bytes(b"")
    values = [good, str(tmp_path / "empty.png"), str(tmp_path / "gone.png")]
    answers = predict_lib.answers(serve, ["image_bytes"], values, True)
    assert "p" in answers[0]
    assert answers[1]["error"].startswith("not a readable image")
    assert answers[2] == {"error": "file not found"}


def test_webp_images_train_and_predict_and_a_folder_without_images_says_so(
    tmp_path,
):
    for name in ("a", "b"):
        folder = tmp_path / "webp" / name
        folder.mkdir(parents=True)
        Image.new("RGB", (8, 8), (9, 9, 9)).save(folder / "1.webp")
    from kft.data import images
    from kft.data.bad_records import BadRecords

    paths, labels = images.read_folder(str(tmp_path / "webp"), BadRecords("x"))
    assert labels == ["a", "b"] and paths[0].endswith(".webp")
    items, _ = predict.image_inputs(
        str(tmp_path / "webp" / "a" / "1.webp"), "image", "label"
    )
    assert len(items) == 1
    for name in ("a", "b"):
        (tmp_path / "notes" / name).mkdir(parents=True)
        (tmp_path / "notes" / name / "readme.txt").write_text("x")
    with pytest.raises(
        UserError, match=r"no images \(.*\.webp\).*2 other files"
    ):
        images.read_folder(str(tmp_path / "notes"), BadRecords("x"))


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_a_table_of_image_paths_is_image_data(image_folder, tmp_path, kind):
    """An `image` column (and no text column) holds image paths, relative
    to the table's folder; they are decode-checked as a folder's are."""
    shutil.copytree(image_folder, tmp_path / "imgs")
    rows = [
        (
            os.path.relpath(os.path.join(root, name), tmp_path),
            os.path.basename(root),
        )
        for root, _, names in os.walk(tmp_path / "imgs")
        for name in names
    ]
    (tmp_path / "imgs" / "broken.png").write_bytes(b"not a png")
    rows.append(("imgs/broken.png", "bright"))
    table = tmp_path / f"t.{kind}"
    if kind == "csv":
        table.write_text(
            "image,label\n" + "".join(f"{p},{c}\n" for p, c in rows)
        )
    else:
        table.write_text(
            "".join(
                json.dumps({"image": p, "label": c}) + "\n" for p, c in rows
            )
        )
    records = data.read_spec(str(table), _data_config())
    assert records.modality == "image"
    assert len(records.values) == len(rows) - 1
    assert all(os.path.isabs(v) and os.path.exists(v) for v in records.values)
    assert records.bad.count == 1 and "broken.png" in records.bad.listed()
