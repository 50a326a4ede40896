"""Run folders and data on a remote file system, through kft.files.

TensorFlow's in-memory `ram://` file system stands in for a `gs://`
bucket: nothing written there is visible to `open` or `os`, so a code
path that still reads or writes with them fails here.
"""

import json
import os
import uuid

import numpy as np
import pytest
from conftest import TINY_LABELS, TINY_SAMPLE, write_run_files

from kft import config as config_lib
from kft import data
from kft.core import files
from kft.core.errors import UserError
from kft.report import compare, run_files
from kft.report import page as report
from kft.serving import export, parity, publish
from kft.tasks.classification import metrics as evaluation
from kft.tasks.classification import threshold


@pytest.fixture
def ram():
    """A fresh `ram://` folder, removed afterwards."""
    root = f"ram://kft-test-{uuid.uuid4().hex}"
    yield root
    files.remove(root)


# === kft.files ===


def test_files_write_read_list_and_remove(ram):
    path = f"{ram}/a/b/notes.txt"
    assert not files.exists(path) and files.listdir(ram) == []
    files.makedirs(f"{ram}/a/b")
    files.write_text(path, "first")
    files.write_text(path, "caf\u00e9")  # replaces, atomically
    assert files.read_text(path) == "caf\u00e9"
    assert files.read_bytes(path) == "caf\u00e9".encode()
    assert files.size(path) == 5
    assert files.listdir(f"{ram}/a/b") == ["notes.txt"]  # no temporary left
    files.write_bytes(f"{ram}/a/raw", b"\xff")
    assert files.read_text(f"{ram}/a/raw", errors="replace") == "\ufffd"
    assert files.listdir(f"{ram}/a") == ["b", "raw"]
    assert files.isdir(f"{ram}/a/b") and not files.isdir(path)
    with files.open_file(path) as file:
        assert file.read() == "caf\u00e9"
    files.remove(f"{ram}/a/raw")
    files.remove(f"{ram}/a")
    files.remove(f"{ram}/never")
    assert not files.exists(path) and not files.exists(f"{ram}/a")
    assert files.is_local("/tmp/x") and files.is_local("file:///tmp/x")
    assert not files.is_local(ram) and not files.is_local("gs://b/x")


def test_copy_tree_copies_every_file_with_the_last_ones_last(
    ram, tmp_path, monkeypatch
):
    (tmp_path / "variables").mkdir()
    for name in ("saved_model.pb", "variables/data", "variables/index", "z"):
        (tmp_path / name).write_text(name)
    copied = []
    copy = files.gfile.copy

    def record(source, target, overwrite=False):
        copied.append(os.path.relpath(target, f"{ram}/out"))
        copy(source, target, overwrite)

    monkeypatch.setattr(files.gfile, "copy", record)
    files.copy_tree(str(tmp_path), f"{ram}/out", last=["saved_model.pb", "z"])
    assert sorted(copied[:2]) == ["variables/data", "variables/index"]
    assert copied[2:] == ["saved_model.pb", "z"]
    for name in copied:
        assert files.read_text(f"{ram}/out/{name}") == name


# === Reports, thresholds, metrics ===


def test_report_and_compare_of_remote_runs(ram, tmp_path):
    from PIL import Image

    picture = tmp_path / "cat.png"
    Image.new("RGB", (40, 30), (200, 30, 90)).save(picture)
    files.write_bytes(f"{ram}/images/cat.png", picture.read_bytes())
    wrong = {"label": "cat", "predicted": "<dog>", "probability": 0.8}
    write_run_files(
        tmp_path / "run",
        [{"image": f"{ram}/images/cat.png", **wrong}, {"text": "hi", **wrong}],
        timing={
            "phases": [
                {
                    "phase": "full",
                    "epochs": 2,
                    "seconds": 4.0,
                    "learning_rate": 1e-3,
                }
            ],
            "total_seconds": 9,
        },
    )
    (tmp_path / "run" / run_files.LR_FIND_JSON).write_text(
        json.dumps({"phase": "full", "steps_run": 9, "suggestion": 0.001})
    )
    (tmp_path / "run" / run_files.LR_FIND_PLOT).write_bytes(
        picture.read_bytes()
    )
    for name in ("run", "other"):
        files.copy_tree(str(tmp_path / "run"), f"{ram}/{name}")

    path = report.write(f"{ram}/run")
    assert path == f"{ram}/run/{run_files.REPORT_FILE}"
    text = files.read_text(path)
    assert "<h2>Learning-rate range test</h2>" in text
    assert "<h2>Training curves</h2>" in text and "No history.csv" not in text
    assert "<img class='thumbnail'" in text and "(unreadable)" not in text
    for name in (run_files.CURVES_FILE, run_files.CONFUSION_FILE):
        assert files.read_bytes(f"{ram}/run/{name}")[:4] == b"\x89PNG"
    # The same page as from the local copy of the folder.
    assert open(report.write(str(tmp_path / "run"))).read() == text

    output = f"{ram}/out/compare.html"
    rows = compare.compare([f"{ram}/run", f"{ram}/other"], output)
    assert [row.name for row in rows] == ["run", "other"]
    page = files.read_text(output)
    assert f"{ram}/other</li>" in page  # remote folders kept as given
    assert files.read_bytes(f"{ram}/out/compare.png")[:4] == b"\x89PNG"
    with pytest.raises(UserError, match="not a finished kft run folder"):
        run_files.load(f"{ram}/out")


def test_threshold_and_metrics_files_on_a_remote_run(ram):
    files.makedirs(ram)
    record = {"threshold": 0.3, "source": "validation"}
    threshold.save(record, ram)
    assert threshold.load("auto", ram, 2) == record
    assert threshold.load("argmax", ram, 2) is None
    threshold.save(None, ram)
    assert not files.exists(f"{ram}/{threshold.FILE}")
    assert threshold.load("auto", ram, 2) is None

    metrics = {"accuracy": 0.75, "labels": ["a", "b"]}
    evaluation.write_report(metrics, f"{ram}/metrics.json")
    assert json.loads(files.read_text(f"{ram}/metrics.json")) == metrics
    assert files.listdir(ram) == ["metrics.json"]


# === Data ===


def test_csv_and_image_folder_read_from_remote_as_locally(
    ram, text_csv, image_folder
):
    config = config_lib.default_config().data
    train, _ = text_csv
    files.write_bytes(f"{ram}/train.csv", open(train, "rb").read())
    files.copy_tree(image_folder, f"{ram}/images")
    for local, remote in (
        (train, f"{ram}/train.csv"),
        (image_folder, f"{ram}/images"),
    ):
        here, there = (
            data.read_spec(local, config),
            data.read_spec(remote, config),
        )
        assert there.labels == here.labels and there.modality == here.modality
        assert there.values == [
            value.replace(local, remote) if there.modality == "image" else value
            for value in here.values
        ]
        assert there.bad.count == 0
    assert len(there.values) == 16  # every image decoded from ram:// too
    with pytest.raises(UserError, match="data not found"):
        data.read_spec(f"{ram}/missing.csv", config)


def test_predict_reads_remote_tables_folders_and_lists(
    ram, text_csv, image_folder
):
    from kft.cli import predict

    train, _ = text_csv
    files.write_bytes(f"{ram}/train.csv", open(train, "rb").read())
    rows, bad = predict.table_inputs(f"{ram}/train.csv", ["text"], "label")
    assert len(rows) == 60 and bad.count == 0
    assert {label for _, label in rows} == {"negative", "neutral", "positive"}
    files.copy_tree(image_folder, f"{ram}/images")
    found, bad = predict.image_inputs(f"{ram}/images", "image", "label")
    assert bad.count == 0
    assert len(found) == 16
    assert {label for _, label in found} == {"bright", "dark"}
    assert all(
        path.startswith(f"{ram}/images/{label}/") for path, label in found
    )
    files.write_text(f"{ram}/images/list.txt", "dark/0.png\n\nbright/1.png\n")
    listed, _ = predict.image_inputs(f"{ram}/images/list.txt", "", "")
    assert listed == [
        (f"{ram}/images/dark/0.png", None),
        (f"{ram}/images/bright/1.png", None),
    ]


# === Export ===


def test_export_to_a_remote_base(tiny_built, ram, monkeypatch, capsys):
    import tensorflow as tf
    from absl import flags

    from kft.cli import predict

    base = f"{ram}/serving"
    files.write_bytes(f"{ram}/best.weights.h5", b"x" * 1000)
    path, figures = export.export(
        tiny_built,
        TINY_LABELS,
        base,
        TINY_SAMPLE,
        weights_file=f"{ram}/best.weights.h5",
        log=print,
    )
    assert path == f"{base}/1" and files.listdir(base) == ["1"]
    check = json.loads(files.read_text(f"{path}/{publish.CHECK_FILE}"))
    assert check["version"] == 1 and check["max_abs_difference"] <= 1e-5
    assert check["weights_file_bytes"] == 1000 == figures["weights_file_bytes"]
    assert files.read_text(f"{path}/assets/labels.txt").split() == TINY_LABELS
    # The remote copy serves what the checked local folder served.
    serve = tf.saved_model.load(path).signatures["serving_default"]
    got = serve(text=tf.constant(TINY_SAMPLE))["probabilities"].numpy()
    expected = parity.keras_probabilities(tiny_built, TINY_SAMPLE)
    np.testing.assert_allclose(got, expected, atol=1e-5)

    # kft-predict answers from the remote export and a remote input file.
    files.write_text(f"{ram}/in.csv", "text,label\ngood movie,positive\n")
    argv = ["kft-predict", f"--saved_model={path}", f"--input={ram}/in.csv"]
    flags.FLAGS(argv)
    capsys.readouterr()
    try:
        predict.main(argv[:1])
    finally:
        flags.FLAGS.unparse_flags()
    line = json.loads(capsys.readouterr().out.strip())
    assert line["true_label"] == "positive" and line["label"] in TINY_LABELS
    np.testing.assert_allclose(line["probabilities"], expected[0], atol=1e-5)

    # A failure while publishing leaves neither the version nor the staging
    # folder; the next export numbers on from what is there.
    def fail(*args):
        raise OSError("connection reset")

    with monkeypatch.context() as patch:
        patch.setattr(publish.files, "write_text", fail)
        with pytest.raises(OSError, match="connection reset"):
            export.export(tiny_built, TINY_LABELS, base, TINY_SAMPLE, log=print)
    assert files.listdir(base) == ["1"]
    path, _ = export.export(
        tiny_built, TINY_LABELS, base, TINY_SAMPLE, log=print
    )
    assert path == f"{base}/2" and files.listdir(base) == ["1", "2"]
