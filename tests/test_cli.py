"""The console scripts as a user runs them: happy paths and user errors."""

import json
import os
import pathlib
import subprocess
import sys

import pytest
from conftest import (
    TINY_IMAGE_FLAGS,
    assert_run_contract,
    assert_user_error,
    make_texts,
    run_cli,
    train_cli,
    write_csv,
)


def test_text_classifier_end_to_end(tiny_bert, text_csv, tmp_path):
    train, test = text_csv
    result = train_cli(
        tmp_path / "run",
        f"--config.backbone={tiny_bert}",
        f"--config.data.train={train}",
        f"--config.data.test={test}",
        "--config.plan=two_phase",
        "--config.epochs=2",
        "--config.learning_rate=1e-3",
        "--config.export=false",  # test_export trains and exports
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    for name in ("config.json", "history.csv", "metrics.json", "labels.txt"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["split"] == "test"
    assert metrics["num_examples"] == 21
    assert set(metrics["per_class"]) == {"negative", "neutral", "positive"}
    assert (run / "labels.txt").read_text().split() == [
        "negative",
        "neutral",
        "positive",
    ]
    rows = (run / "history.csv").read_text().splitlines()
    assert rows[0].startswith("phase,epoch,learning_rate")
    assert [r.split(",")[0] for r in rows[1:]] == ["head", "full", "full"]
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["sequence_length"] > 0
    assert "holding out" in result.stdout
    assert "macro-F1" in result.stdout
    # Progress: each epoch's time and the training time left.
    assert "epoch 1/3: " in result.stdout
    assert "of training left" in result.stdout
    assert_run_contract(run)


def test_image_classifier_end_to_end(image_folder, tmp_path):
    result = train_cli(
        tmp_path / "run",
        *TINY_IMAGE_FLAGS,
        f"--config.data.train={image_folder}",
        "--config.plan=full",
        "--config.epochs=1",
        "--config.data.validation_fraction=0.25",
        "--config.data.test_fraction=0.25",
        "--config.export=false",  # test_export trains and exports
        experiment="image_classifier",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["labels"] == ["bright", "dark"]
    assert metrics["num_examples"] == 4


def test_unknown_experiment(tmp_path):
    result = run_cli(
        "kft-train", "--experiment=text_clasifier", f"--model_dir={tmp_path}"
    )
    assert_user_error(result, "unknown experiment", "text_classifier")


def test_missing_required_flag():
    assert_user_error(
        run_cli("kft-train", "--experiment=text_classifier"), "model_dir"
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory, text_csv):
    folder = tmp_path_factory.mktemp("bad")
    rows = make_texts(12)
    one_class = [dict(r, label="positive") for r in rows]
    unseen = make_texts(6) + [{"text": "good", "label": "mixed"}]
    empty = folder / "empty.csv"
    empty.write_text("text,label\n")
    binary = folder / "binary.csv"
    binary.write_bytes(b"text,label\n\xff\xfe bad bytes,positive\n")
    return {
        "train": text_csv[0],
        "one_class": write_csv(folder / "one.csv", one_class),
        "unseen": write_csv(folder / "unseen.csv", unseen),
        "empty": str(empty),
        "binary": str(binary),
        "no_label": write_csv(
            folder / "nolabel.csv",
            [{"text": r["text"], "y": r["label"]} for r in rows],
        ),
    }


BAD_INPUTS = [
    (["--config.backbone=ResNet5O"], "unknown backbone"),
    (["--config.epoch=2"], "unknown config key 'epoch'"),
    (["--config.epochs=two"], "expects int"),
    (["--config.data.train=/no/such.csv"], "data not found"),
    (["--config.data.train={empty}"], "holds no rows"),
    (["--config.data.train={binary}"], "binary.csv:2 (not UTF-8)"),
    (["--config.data.train={no_label}"], "no column 'label'"),
    (["--config.data.train={one_class}"], "single class"),
    (
        ["--config.data.train={train}", "--config.data.test={unseen}"],
        "label 'mixed'",
    ),
    (["--config.data.train={train}", "--config.plan=frozen"], "valid plans"),
    (
        ["--config.data.train={train}", "--config.data.mixup=0.2"],
        "data.mixup is for images",
    ),
    (
        ["--config.data.train={train}", "--config.learning_rate=0"],
        "learning_rate; it must be > 0",
    ),
    (
        ["--config.data.train={train}", "--config.class_weight=even"],
        "valid: '', balanced, sqrt",
    ),
]


@pytest.mark.parametrize("args,message", BAD_INPUTS)
def test_user_errors_exit_2_with_one_line(
    args, message, files, tiny_bert, tmp_path
):
    args = [a.format(**files) for a in args]
    result = train_cli(
        tmp_path / "run", f"--config.backbone={tiny_bert}", *args
    )
    assert_user_error(result, message)


def test_a_missing_backbone_folder_is_named(tmp_path):
    result = train_cli(tmp_path / "run", "--config.backbone=./no/such/model")
    assert_user_error(result, "backbone folder ./no/such/model does not exist")


def test_the_demo_without_its_assets_says_to_fetch(tmp_path):
    result = run_cli(
        "kft-train",
        "--experiment=drug_reviews_minilm",
        f"--model_dir={tmp_path / 'run'}",
        env={"KFT_CACHE": str(tmp_path / "cache")},
    )
    assert_user_error(result, "run kft-fetch minilm")


def test_flagfile(tiny_bert, text_csv, tmp_path):
    flagfile = tmp_path / "flags.txt"
    flagfile.write_text("--experiment=text_classifier\n--config.epoch=1\n")
    result = run_cli(
        "kft-train", f"--flagfile={flagfile}", f"--model_dir={tmp_path / 'run'}"
    )
    assert_user_error(result, "did you mean: epochs")


def test_fetch_unknown_asset():
    assert_user_error(run_cli("kft-fetch", "nope"), "unknown asset", "minilm")


def test_fetch_prints_no_tensorflow_start_up_lines(tmp_path):
    """kft-fetch digits (written with TensorFlow, offline) says what it
    did and nothing else, with TF_CPP_MIN_LOG_LEVEL unset as a user has it."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["KFT_CACHE"] = str(tmp_path / "cache")
    script = pathlib.Path(sys.executable).parent / "kft-fetch"
    result = subprocess.run(
        [str(script), "digits"], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr == ""
    assert result.stdout.startswith("digits: written into")
    assert (tmp_path / "cache" / "digits" / ".verified").is_file()


def test_helpfull_lists_flags():
    result = run_cli("kft-train", "--helpfull")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--experiment" in result.stdout and "--flagfile" in result.stdout
    assert os.path.basename("kft-train") in result.stdout
