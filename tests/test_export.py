"""SavedModel export: signatures, parity, atomic versions, kft-predict."""

import json
import os

import numpy as np
import pytest
from conftest import (
    TINY_IMAGE_FLAGS,
    TINY_LABELS,
    TINY_SAMPLE,
    assert_user_error,
    predict_cli,
    run_cli,
    train_tiny,
)

from kft.core.errors import ExportError
from kft.serving import export, parity, publish

CHECK = publish.CHECK_FILE


@pytest.fixture(scope="module")
def text_run(tiny_bert, text_csv, tmp_path_factory):
    train, test = text_csv
    return train_tiny(
        tmp_path_factory.mktemp("text") / "run",
        f"--config.backbone={tiny_bert}",
        f"--config.data.train={train}",
        f"--config.data.test={test}",
        "--config.learning_rate=1e-3",
        experiment="text_classifier",
    )


@pytest.fixture(scope="module")
def image_run(image_folder, tmp_path_factory):
    return train_tiny(
        tmp_path_factory.mktemp("image") / "run",
        *TINY_IMAGE_FLAGS,
        f"--config.data.train={image_folder}",
        "--config.data.validation_fraction=0.25",
        "--config.data.test_fraction=0.25",
        experiment="image_classifier",
    )


def _check(folder):
    return json.loads((folder / CHECK).read_text())


def test_a_mixed_bfloat16_run_is_scored_and_served_in_float32(
    tiny_bert, text_csv, tmp_path
):
    """A GPU's auto precision (and an AMX CPU's): training computes in
    bfloat16, but the best weights (float32 in every policy) are scored
    and exported in float32, so metrics.json describes the model served,
    the export matches it at float32's tolerance, and kft-evaluate, which
    rebuilds the run in float32, gives the run's own figures."""
    train, test = text_csv
    folder = train_tiny(
        tmp_path / "run",
        f"--config.backbone={tiny_bert}",
        f"--config.data.train={train}",
        f"--config.data.test={test}",
        "--config.learning_rate=1e-3",
        "--config.precision=mixed_bfloat16",
        experiment="text_classifier",
    )
    check = _check(folder / "export" / "1")
    assert check["tolerance"] == parity.tolerance("float32") == 1e-5
    assert check["max_abs_difference"] <= 1e-5
    assert check["class_id_mismatches"] == check["label_mismatches"] == 0
    assert parity.tolerance("bfloat16") > parity.tolerance("float16") > 1e-5
    result = run_cli("kft-evaluate", f"--model_dir={folder}")
    assert result.returncode == 0, result.stderr[-3000:]
    again = json.loads((folder / "eval" / "test" / "metrics.json").read_text())
    metrics = json.loads((folder / "metrics.json").read_text())
    assert again["ece"] == pytest.approx(metrics["ece"], abs=1e-6)
    assert again["roc_auc"] == metrics["roc_auc"]
    assert again["confusion_matrix"] == metrics["confusion_matrix"]


@pytest.mark.parametrize(
    "run, inputs, preprocessed",
    [
        (
            "text_run",
            {"text": ["string", [None]]},
            {
                "token_ids": ["int32", [None, None]],
                "segment_ids": ["int32", [None, None]],
                "padding_mask": ["int32", [None, None]],
            },
        ),
        (
            "image_run",
            {"image_bytes": ["string", [None]]},
            {"image": ["float32", [None, 32, 32, 3]]},
        ),
    ],
)
def test_train_leaves_a_checked_export(run, inputs, preprocessed, request):
    folder = request.getfixturevalue(run)
    check = _check(folder / "export" / "1")
    signatures = check["signatures"]
    assert set(signatures) == {"serving_default", "serving_preprocessed"}
    assert signatures["serving_default"]["inputs"] == inputs
    assert signatures["serving_preprocessed"]["inputs"] == preprocessed
    classes = len((folder / "labels.txt").read_text().split())
    for signature in signatures.values():
        assert signature["outputs"] == {
            "probabilities": ["float32", [None, classes]],
            "class_id": ["int64", [None]],
            "label": ["string", [None]],
        }
    # Only TF Text's long-standing ops, which TF Serving links in (not the
    # newer TFText>RoundRobinTrim); image models need core TensorFlow only.
    extra = check["non_core_ops"]
    assert not [op for op in extra if op.startswith("TFText>")], extra
    assert extra if run == "text_run" else not extra
    # The check ran in a process that imported neither kft nor keras-hub.
    assert not {"kft", "keras_hub"} & set(check["imported"])
    assert check["max_abs_difference"] <= 1e-5
    assert check["class_id_mismatches"] == check["label_mismatches"] == 0
    assert check["examples"] > 0
    assert (folder / "export" / "1" / "assets" / "labels.txt").read_text() == (
        folder / "labels.txt"
    ).read_text()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["export"]["version"] == 1


def test_serving_handles_empty_and_long_texts_and_bad_images(
    text_run, image_run
):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    text = tf.saved_model.load(str(text_run / "export" / "1"))
    serve = text.signatures["serving_default"]
    out = serve(text=tf.constant(["", "good movie " * 500, "bad"]))
    assert out["probabilities"].shape == (3, 3)
    np.testing.assert_allclose(out["probabilities"].numpy().sum(1), 1, 1e-5)
    image = tf.saved_model.load(str(image_run / "export" / "1"))
    with pytest.raises(tf.errors.InvalidArgumentError):
        image.signatures["serving_default"](
            image_bytes=tf.constant([b"\x89PNG not really"])
        )


def test_kft_export_numbers_versions(text_run, tmp_path):
    base = tmp_path / "serving"
    for version in (1, 2):
        result = run_cli(
            "kft-export", f"--model_dir={text_run}", f"--export_dir={base}"
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.strip().endswith(f"serving/{version}")
    assert sorted(os.listdir(base)) == ["1", "2"]
    first, second = _check(base / "1"), _check(base / "2")
    assert first["version"] == 1 and second["version"] == 2
    assert second["max_abs_difference"] <= 1e-5


def test_kft_export_of_a_folder_that_is_no_run(tmp_path):
    result = run_cli(
        "kft-export", f"--model_dir={tmp_path}", f"--export_dir={tmp_path}/b"
    )
    assert result.returncode == 2
    assert "config.json" in result.stderr.strip().splitlines()[-1]


def test_kft_predict_reproduces_the_test_accuracy(text_run, text_csv):
    _, test = text_csv
    result, lines = predict_cli(text_run, test)
    assert len(lines) == 21
    assert {"input", "label", "class_id", "probabilities", "true_label"} <= set(
        lines[0]
    )
    metrics = json.loads((text_run / "metrics.json").read_text())
    right = sum(line["label"] == line["true_label"] for line in lines)
    assert right / len(lines) == pytest.approx(metrics["accuracy"], abs=1e-9)
    assert f"accuracy {metrics['accuracy']:.4f}" in result.stderr


def test_kft_predict_on_images_reports_unreadable_files(
    image_run, image_folder, tmp_path
):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    listing = tmp_path / "images.txt"
    good = sorted(os.listdir(os.path.join(image_folder, "dark")))[:2]
    names = [os.path.join(image_folder, "dark", n) for n in good]
    listing.write_text("\n".join([*names, str(broken)]) + "\n")
    result, lines = predict_cli(image_run, listing)
    assert [("error" in line) for line in lines] == [False, False, True]
    assert lines[0]["label"] in ("bright", "dark")
    assert "1 could not be read" in result.stderr
    result, lines = predict_cli(image_run, image_folder)
    assert len(lines) == 16 and all("true_label" in line for line in lines)
    # The held-out test split, written by kft-train, gives its accuracy back.
    result, lines = predict_cli(image_run, image_run / "test_split.jsonl")
    metrics = json.loads((image_run / "metrics.json").read_text())
    assert f"accuracy {metrics['accuracy']:.4f} (" in result.stderr
    assert len(result.stdout.splitlines()) == metrics["num_examples"]


# === In-process: the atomic write and the refusal ===


def test_a_failure_halfway_leaves_no_version(tiny_built, tmp_path, monkeypatch):
    def crash(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(parity, "check", crash)
    with pytest.raises(RuntimeError):
        export.export(
            tiny_built, TINY_LABELS, str(tmp_path), TINY_SAMPLE, log=print
        )
    assert os.listdir(tmp_path) == []


def test_a_mismatch_refuses_the_export(tiny_built, tmp_path, monkeypatch):
    real = parity.keras_probabilities
    monkeypatch.setattr(
        parity,
        "keras_probabilities",
        lambda built, values: real(built, values) + [0.1, -0.05, -0.05],
    )
    with pytest.raises(ExportError, match="export refused"):
        export.export(
            tiny_built, TINY_LABELS, str(tmp_path), TINY_SAMPLE, log=print
        )
    assert os.listdir(tmp_path) == []


def test_an_existing_version_is_never_overwritten(tiny_built, tmp_path):
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "keep").write_text("x")
    (tmp_path / "notes").mkdir()
    path, _ = export.export(
        tiny_built, TINY_LABELS, str(tmp_path), TINY_SAMPLE, log=print
    )
    assert path == str(tmp_path / "2")
    assert (tmp_path / "1" / "keep").read_text() == "x"
    assert publish.next_version(str(tmp_path)) == 3


# === kft-evaluate on the same runs ===


@pytest.mark.parametrize("run", ["text_run", "image_run"])
@pytest.mark.parametrize("from_export", [False, True])
def test_kft_evaluate_gives_the_run_metrics_back(run, from_export, request):
    folder = request.getfixturevalue(run)
    args = [f"--saved_model={folder / 'export' / '1'}"] if from_export else []
    result = run_cli("kft-evaluate", f"--model_dir={folder}", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    name = "test" if run == "text_run" else "test_split"
    again = json.loads((folder / "eval" / name / "metrics.json").read_text())
    metrics = json.loads((folder / "metrics.json").read_text())
    assert again["num_examples"] == metrics["num_examples"]
    assert again["confusion_matrix"] == metrics["confusion_matrix"]
    assert again["macro_f1"] == pytest.approx(metrics["macro_f1"], abs=1e-9)


def test_kft_evaluate_on_another_file(text_run, tmp_path):
    from conftest import make_texts, write_csv

    other = write_csv(tmp_path / "other.csv", make_texts(9, seed=5))
    result = run_cli(
        "kft-evaluate", f"--model_dir={text_run}", f"--config.data.test={other}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    again = json.loads(
        (text_run / "eval" / "other" / "metrics.json").read_text()
    )
    assert again["num_examples"] == 9 and again["source"] == other
    unknown = write_csv(
        tmp_path / "bad.csv", [{"text": "good", "label": "meh"}]
    )
    result = run_cli(
        "kft-evaluate",
        f"--model_dir={text_run}",
        f"--config.data.test={unknown}",
    )
    assert result.returncode == 2
    assert "'meh'" in result.stderr and "bad.csv" in result.stderr


def test_kft_evaluate_keeps_each_files_results(text_run, tmp_path):
    """Two test files of one name (other.csv, other.jsonl, a/other.csv)
    each keep their eval folder; the same file again replaces its own."""
    from conftest import make_texts, write_csv

    rows = make_texts(9, seed=6)
    (tmp_path / "a").mkdir()
    sources = [
        write_csv(tmp_path / "other.csv", rows),
        write_csv(tmp_path / "a" / "other.csv", rows[:7]),
    ]
    jsonl = tmp_path / "other.jsonl"
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in rows[:5]))
    sources.append(str(jsonl))
    for source in sources + sources[:1]:
        result = run_cli(
            "kft-evaluate",
            f"--model_dir={text_run}",
            f"--config.data.test={source}",
        )
        assert result.returncode == 0, result.stderr[-3000:]
    found = {}
    for path in (text_run / "eval").glob("*/metrics.json"):
        metrics = json.loads(path.read_text())
        if metrics["source"] in sources:
            assert metrics["source"] not in found, metrics["source"]
            found[metrics["source"]] = metrics["num_examples"]
    assert found == dict(zip(sources, (9, 7, 5)))


def test_kft_evaluate_refuses_images_for_a_text_run(text_run, tmp_path):
    from PIL import Image

    for label in TINY_LABELS:
        (tmp_path / "images" / label).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "images" / label / "0.png")
    result = run_cli(
        "kft-evaluate",
        f"--model_dir={text_run}",
        f"--config.data.test={tmp_path / 'images'}",
    )
    assert_user_error(result, "takes text", "holds image")


def test_served_images_are_resized_as_in_training(tmp_path):
    """A wide image, served raw, meets the model padded, as training did."""
    import tensorflow as tf

    from kft import config as config_lib
    from kft import data
    from kft.model import builder

    config = config_lib.default_config()
    # Random MobileNets answer alike to every image; a random ResNet does not.
    config.backbone = "ResNet50"
    config.weights = "none"
    config.data.image_size = 32
    config.data.resize = "pad"
    built = builder.build(config, 2)
    head = built.model.layers[-1]  # zero-initialized: make it see the image
    rng = np.random.default_rng(0)
    head.set_weights([rng.normal(0, 1e-3, w.shape) for w in head.get_weights()])
    pixels = np.zeros((16, 64, 3), np.uint8)
    pixels[:, :32] = 255
    wide = tf.io.encode_png(pixels).numpy()
    path, _ = export.export(
        built, ["a", "b"], str(tmp_path), [wide], log=lambda line: None
    )

    def model_on(mode):
        image = data.decode_image(wide, 32, mode)[None]
        return built.model.predict_on_batch(tf.cast(image, tf.float32))

    split = data.Split("test", "wide.png", [wide], np.array([0]))
    served = parity.serve_probabilities(path, split, "image")
    np.testing.assert_allclose(served, model_on("pad"), atol=1e-5)
    assert np.abs(served - model_on("squash")).max() > 1e-4


def test_kft_predict_on_a_run_folder_names_its_export(text_run, text_csv):
    result = run_cli(
        "kft-predict", f"--saved_model={text_run}", f"--input={text_csv[1]}"
    )
    assert_user_error(result, "no SavedModel at", f"{text_run}/export/1")
