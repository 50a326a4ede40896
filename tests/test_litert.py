"""LiteRT (.tflite) export of image and text classifiers: conversion in
every quantization mode, the fresh-process check, kft-predict on a
.tflite, and the one-line refusals."""

import json

import pytest
from conftest import (
    TINY_IMAGE_FLAGS,
    assert_user_error,
    run_cli,
    train_tiny,
)

from kft import commands
from kft import config as config_lib
from kft.core.errors import UserError
from kft.serving import litert


@pytest.fixture(scope="module")
def text_run(tiny_bert, text_csv, tmp_path_factory):
    train, test = text_csv
    return train_tiny(
        tmp_path_factory.mktemp("text") / "run",
        f"--config.backbone={tiny_bert}",
        f"--config.data.train={train}",
        f"--config.data.test={test}",
        "--config.learning_rate=1e-3",
        "--config.export=false",
        experiment="text_classifier",
    )


@pytest.fixture(scope="module")
def image_run(image_folder, tmp_path_factory):
    """kft-train writes the float32 .tflite at the end of the run."""
    return train_tiny(
        tmp_path_factory.mktemp("image") / "run",
        *TINY_IMAGE_FLAGS,
        f"--config.data.train={image_folder}",
        "--config.data.validation_fraction=0.25",
        "--config.data.test_fraction=0.25",
        "--config.export=false",
        "--config.litert.quantization=none",
        experiment="image_classifier",
    )


def _check(model_dir, name):
    path = model_dir / "litert" / f"model_{name}.json"
    return json.loads(path.read_text())


def _assert_checked(check, quantization):
    assert check["quantization"] == quantization
    assert check["passed"] is True
    assert check["examples"] > 0
    for key in ("accuracy", "macro_f1", "keras_accuracy", "agreement"):
        assert 0 <= check[key] <= 1, key
    assert check["tflite_bytes"] > 0
    assert check["median_latency_ms"] > 0
    # The check ran where neither kft nor keras-hub was imported (Keras
    # comes with `import tensorflow`, unless ai_edge_litert is installed).
    assert not {"kft", "keras_hub"} & set(check["imported"])
    assert check["interpreter"] in ("tf.lite", "ai_edge_litert")
    if quantization != "int8":
        assert abs(check["accuracy"] - check["keras_accuracy"]) <= 0.01
        assert check["agreement"] >= 0.99


def test_train_writes_a_checked_tflite(image_run):
    folder = image_run / "litert"
    assert (folder / "model_float32.tflite").stat().st_size > 0
    assert (folder / "labels.txt").read_text() == (
        image_run / "labels.txt"
    ).read_text()
    check = _check(image_run, "float32")
    _assert_checked(check, "none")
    assert check["inputs"] == {"image": ["uint8", [-1, 32, 32, 3]]}
    assert check["outputs"]["probabilities"] == ["float32", [-1, 2]]
    metrics = json.loads((image_run / "metrics.json").read_text())
    assert metrics["litert"]["path"].endswith("model_float32.tflite")


@pytest.mark.parametrize("quantization", ["none", "float16", "dynamic", "int8"])
def test_text_classifier_in_every_mode(text_run, quantization):
    path = commands.export_litert_run(str(text_run), quantization)
    name = litert.FILE_NAMES[quantization]
    assert path == str(text_run / "litert" / f"model_{name}.tflite")
    check = _check(text_run, name)
    _assert_checked(check, quantization)
    length = json.loads((text_run / "config.json").read_text())["data"][
        "sequence_length"
    ]
    assert check["inputs"] == {
        name: ["int32", [-1, length]]
        for name in ("padding_mask", "segment_ids", "token_ids")
    }
    vocabulary = (text_run / "litert" / "vocabulary.txt").read_text()
    assert "[CLS]" in vocabulary.split()


def test_image_int8_with_integer_outputs(image_run):
    commands.export_litert_run(str(image_run), "int8", integer_io=True)
    check = _check(image_run, "int8")
    _assert_checked(check, "int8")
    dtype, _ = check["outputs"]["probabilities"]
    assert dtype == "int8"
    assert check["integer_io"] is True


def test_kft_export_cli_writes_float16(image_run):
    result = run_cli(
        "kft-export",
        f"--model_dir={image_run}",
        "--format=litert",
        "--quantization=float16",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("model_float16.tflite")
    _assert_checked(_check(image_run, "float16"), "float16")


def test_a_disagreeing_tflite_is_refused_and_removed(image_run, monkeypatch):
    real = litert.run_fresh

    def flipped(path, inputs):
        report, outputs = real(path, inputs)
        outputs["class_id"] = 1 - outputs["class_id"]
        return report, outputs

    monkeypatch.setattr(litert, "run_fresh", flipped)
    with pytest.raises(UserError, match="dynamic.*agree") as caught:
        commands.export_litert_run(str(image_run), "dynamic")
    assert "\n" not in str(caught.value)
    assert not (image_run / "litert" / "model_dynamic.tflite").exists()
    assert _check(image_run, "dynamic")["passed"] is False


@pytest.mark.parametrize("run", ["text_run", "image_run"])
def test_kft_predict_on_a_tflite(run, text_csv, image_folder, request):
    model_dir = request.getfixturevalue(run)
    name = "float32"
    if run == "text_run":
        commands.export_litert_run(str(model_dir), "none")
        source = text_csv[1]
    else:
        source = image_folder
    result = run_cli(
        "kft-predict",
        f"--saved_model={model_dir / 'litert' / f'model_{name}.tflite'}",
        f"--input={source}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    labels = (model_dir / "labels.txt").read_text().split()
    assert lines and all(line["label"] in labels for line in lines)
    assert all(len(line["probabilities"]) == len(labels) for line in lines)
    assert "accuracy" in result.stderr
    if run == "text_run":  # the whole test file is the run's test split
        check = _check(model_dir, name)
        right = sum(line["label"] == line["true_label"] for line in lines)
        assert right / len(lines) == pytest.approx(check["accuracy"])


@pytest.mark.parametrize("task", ["tokens"])
def test_other_tasks_refuse_litert_in_one_line(task, tmp_path):
    config = config_lib.default_config()
    config.task = task
    (tmp_path / "config.json").write_text(config_lib.to_json(config))
    result = run_cli("kft-export", f"--model_dir={tmp_path}", "--format=litert")
    assert_user_error(result, "LiteRT", f"task {task}")


def test_a_bad_quantization_names_the_choices(tmp_path):
    result = run_cli(
        "kft-export",
        f"--model_dir={tmp_path}",
        "--format=litert",
        "--quantization=int4",
    )
    assert_user_error(result, "quantization", "float16", "int8")


def test_the_config_key_is_checked():
    config = config_lib.default_config()
    config.litert.quantization = "int4"
    with pytest.raises(UserError, match="litert.quantization"):
        config_lib.check_values(config)


def test_the_pass_rule_per_mode():
    """float files must decide as Keras does (rounding flips a few
    borderline examples at most); int8 weights (dynamic) may flip up to 3%
    of them, as on the demo (5 of 379 reviews, 0.3 points of accuracy);
    every float mode stays within 1 point of accuracy; int8 is reported."""
    from kft.tasks.classification import litert as classification_litert

    judge = classification_litert.judge
    assert judge("dynamic", 0.0027, 0.987)
    assert not judge("dynamic", 0.0, 0.96)
    assert not judge("dynamic", 0.011, 1.0)
    assert not judge("float16", 0.0, 0.987)
    assert judge("float16", 0.0, 0.995)
    assert not judge("none", 0.0, 0.985)
    assert judge("int8", 0.3, 0.5)


def test_a_mixed_precision_run_converts_its_float32_twin(
    image_folder, tmp_path
):
    """LiteRT has no bfloat16 kernels: a run trained in mixed_bfloat16 (a
    GPU's auto precision) converts its best weights in float32 and checks
    that file against the float32 model."""
    model_dir = train_tiny(
        tmp_path / "run",
        *TINY_IMAGE_FLAGS,
        f"--config.data.train={image_folder}",
        "--config.data.validation_fraction=0.25",
        "--config.data.test_fraction=0.25",
        "--config.export=false",
        "--config.precision=mixed_bfloat16",
        "--config.litert.quantization=none",
        experiment="image_classifier",
    )
    check = _check(model_dir, "float32")
    assert check["passed"] and check["agreement"] == 1.0
    assert (model_dir / "litert" / "model_float32.tflite").is_file()


def test_a_mixed_precision_text_run_converts_its_float32_twin(
    tiny_bert, text_csv, tmp_path
):
    """The same for a text model (a backbone loaded from its preset, the
    masked-mean pooling): its twin is float32 throughout."""
    train, test = text_csv
    model_dir = train_tiny(
        tmp_path / "run",
        f"--config.backbone={tiny_bert}",
        f"--config.data.train={train}",
        f"--config.data.test={test}",
        "--config.export=false",
        "--config.precision=mixed_bfloat16",
        "--config.litert.quantization=none",
        experiment="text_classifier",
    )
    assert _check(model_dir, "float32")["passed"]


def test_a_tflite_in_a_remote_run_folder_loads(image_run, image_folder):
    """kft-predict reads a .tflite where the run is (gs://; TensorFlow's
    ram:// file system stands in for it)."""
    import uuid

    from kft.core import files
    from kft.serving import litert_predict

    remote = f"ram://kft-test-{uuid.uuid4().hex}/run"
    files.copy_tree(str(image_run), remote)
    model = f"{remote}/litert/model_float32.tflite"
    predictor = litert_predict.Predictor(model)
    assert predictor.labels == ["bright", "dark"]
    assert predictor.names == ["image_bytes"]
