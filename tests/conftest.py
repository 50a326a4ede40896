"""Shared fixtures: tiny backbones saved as local presets, tiny data sets.

Everything here is built by the tests themselves, so the suite runs on an
offline machine; the real-weights tests skip when the assets are absent.
"""

import csv
import json
import os
import pathlib
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

WORDS = ["good", "bad", "great", "awful", "fine", "movie", "the", "is"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS


def make_texts(count, seed=0):
    """Three classes of short texts a tiny model can separate."""
    rng = np.random.default_rng(seed)
    cues = {
        "positive": ["good", "great"],
        "negative": ["bad", "awful"],
        "neutral": ["fine"],
    }
    rows = []
    for index in range(count):
        label = list(cues)[index % 3]
        words = list(rng.choice(["the", "movie", "is"], size=3))
        words.insert(int(rng.integers(0, 3)), str(rng.choice(cues[label])))
        rows.append({"text": " ".join(words), "label": label})
    return rows


def write_csv(path, rows, delimiter=","):
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(
            file, fieldnames=list(rows[0]), delimiter=delimiter
        )
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    """A 2-layer BERT with a 13-token vocabulary, saved as a local preset."""
    import keras_hub

    folder = tmp_path_factory.mktemp("tiny_bert")
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(VOCAB),
        num_layers=2,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=32,
    )
    backbone.save_to_preset(str(folder))
    keras_hub.models.BertTokenizer(vocabulary=VOCAB).save_to_preset(str(folder))
    return str(folder)


LETTERS = list("abcdefghijklmnopqrstuvwxyz")


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory):
    """A 2-layer GPT-2 with a letter-level byte-pair vocabulary, saved as
    a local keras-hub preset."""
    import keras_hub

    vocabulary = {"<|endoftext|>": 0}
    for token in (
        LETTERS + ["Ġ" + c for c in LETTERS] + ["Ġ", ".", ":", "?", "he"]
    ):
        vocabulary.setdefault(token, len(vocabulary))
    tokenizer = keras_hub.models.GPT2Tokenizer(
        vocabulary=vocabulary, merges=["Ġ t", "h e"]
    )
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=len(vocabulary) + 2,
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=64,
    )
    preprocessor = keras_hub.models.GPT2CausalLMPreprocessor(
        tokenizer=tokenizer, sequence_length=32
    )
    model = keras_hub.models.GPT2CausalLM(
        backbone=backbone, preprocessor=preprocessor
    )
    folder = tmp_path_factory.mktemp("tiny_gpt2")
    model.save_to_preset(str(folder))
    return str(folder)


# Classes and raw inputs for `tiny_built`'s in-process exports.
TINY_LABELS = ["negative", "neutral", "positive"]
TINY_SAMPLE = ["good movie", "bad", ""]


@pytest.fixture(scope="module")
def tiny_built(tiny_bert):
    """`tiny_bert` with a 3-class head (`TINY_LABELS`), untrained."""
    from kft import config as config_lib
    from kft.model import builder

    config = config_lib.default_config()
    config.backbone = tiny_bert
    built = builder.build(config, len(TINY_LABELS))
    built.preprocessor.sequence_length = 16
    return built


@pytest.fixture(scope="session")
def text_csv(tmp_path_factory):
    folder = tmp_path_factory.mktemp("texts")
    train = write_csv(folder / "train.csv", make_texts(60, seed=1))
    test = write_csv(folder / "test.csv", make_texts(21, seed=2))
    return train, test


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    """Two classes of 16x16 PNGs: bright and dark squares."""
    import tensorflow as tf

    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for label, level in (("bright", 200), ("dark", 40)):
        (folder / label).mkdir()
        for index in range(8):
            noise = rng.integers(-30, 30, size=(16, 16, 3))
            pixels = np.clip(level + noise, 0, 255).astype(np.uint8)
            data = tf.io.encode_png(pixels).numpy()
            (folder / label / f"{index}.png").write_bytes(data)
    return str(folder)


def write_run_files(folder, predictions, **extra):
    """A finished run's files, by hand: metrics.json of two classes ("cat",
    "<dog>", 4 test examples) with `extra` fields, config.json, a two-epoch
    history.csv and `predictions` as predictions.jsonl. `folder` is a new
    `pathlib.Path`."""
    folder.mkdir()
    labels = ["cat", "<dog>"]
    metrics = {
        "split": "test",
        "num_examples": 4,
        "accuracy": 0.5,
        "macro_f1": 0.5,
        "per_class": {
            label: {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
            for label in labels
        },
        "confusion_matrix": [[1, 1], [1, 1]],
        "labels": labels,
        **extra,
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "config.json").write_text(json.dumps({"plan": "full"}))
    (folder / "history.csv").write_text(
        "phase,epoch,learning_rate,loss,val_loss\n"
        "full,1,0.001,0.9,1.0\nfull,2,0.0005,0.5,0.8\n"
    )
    with open(folder / "predictions.jsonl", "w") as file:
        for index, row in enumerate(predictions):
            file.write(json.dumps({"index": index, **row}) + "\n")


def run_cli(*args, env=None, timeout=600, cwd=None, prefix=()):
    """Runs a kft console script as a user would; returns CompletedProcess.

    `prefix` is a command that runs the script (such as `unshare ...`)."""
    script = pathlib.Path(sys.executable).parent / args[0]
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run(
        [*prefix, str(script), *args[1:]],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd,
    )


def assert_user_error(result, *words):
    """Exit 2, one line on stderr holding each of `words`, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def train_cli(model_dir, *overrides, experiment="text_classifier"):
    """kft-train on `model_dir`, quietly; `overrides` are --config flags."""
    return run_cli(
        "kft-train",
        f"--experiment={experiment}",
        f"--model_dir={model_dir}",
        "--config.verbose=0",
        *overrides,
    )


def train_tiny(model_dir, *overrides, experiment):
    """A one-epoch `full` kft-train that must succeed; returns model_dir."""
    result = train_cli(
        model_dir,
        "--config.plan=full",
        "--config.epochs=1",
        *overrides,
        experiment=experiment,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return model_dir


# A small CNN with random weights at 32 px: an image run in seconds.
TINY_IMAGE_FLAGS = (
    "--config.backbone=MobileNetV3Small",
    "--config.weights=none",
    "--config.data.image_size=32",
)


def tiny_image_config(image_folder):
    """What TINY_IMAGE_FLAGS configure, on `image_folder`, in-process."""
    from kft import config as config_lib

    config = config_lib.default_config()
    config.backbone = "MobileNetV3Small"
    config.weights = "none"
    config.data.train = image_folder
    config.data.image_size = 32
    config.data.batch_size = 4
    config.plan = "full"
    return config


def train_in_process(config, model_dir, log=None, resume=False):
    """Builds (seeded) and trains a classifier on `config` in this process;
    returns (the Trainer, the log lines)."""
    from kft import run
    from kft.core import freeze, training
    from kft.tasks import labelled
    from kft.tasks.classification.task import TASK

    lines = []
    run.set_seed(config.seed)
    built, splits = labelled.prepare(config)
    validation = None
    if splits.validation is not None:
        validation = labelled.batches(built, splits.validation, config, False)
    trainer = training.Trainer(
        built,
        freeze.plan_from_config(config),
        labelled.batches(built, splits.train, config, True),
        validation,
        config,
        str(model_dir),
        len(splits.labels),
        log=log or lines.append,
        task=TASK,
    )
    trainer.run(resume)
    return trainer, lines


def predict_cli(run_dir, input_path):
    """kft-predict on `run_dir`'s first export; (result, JSON lines)."""
    result = run_cli(
        "kft-predict",
        f"--saved_model={run_dir / 'export' / '1'}",
        f"--input={input_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result, [json.loads(line) for line in result.stdout.splitlines()]


def assert_decisions_match_sklearn(figures, y_true, y_pred, classes):
    """Accuracy, F1s, confusion matrix and per-class figures as sklearn."""
    from sklearn import metrics as sk

    ids = list(range(classes))
    precision, recall, f1, support = sk.precision_recall_fscore_support(
        y_true, y_pred, labels=ids, zero_division=0
    )
    assert figures["accuracy"] == pytest.approx(
        sk.accuracy_score(y_true, y_pred)
    )
    # Macro-F1 over the classes present (in truth or predictions), as
    # scikit-learn's default labels.
    assert figures["macro_f1"] == pytest.approx(
        sk.f1_score(y_true, y_pred, average="macro", zero_division=0)
    )
    assert figures["weighted_f1"] == pytest.approx(
        sk.f1_score(
            y_true, y_pred, labels=ids, average="weighted", zero_division=0
        )
    )
    assert (
        figures["confusion_matrix"]
        == sk.confusion_matrix(y_true, y_pred, labels=ids).tolist()
    )
    for i, row in enumerate(figures["per_class"].values()):
        assert row["precision"] == pytest.approx(precision[i])
        assert row["recall"] == pytest.approx(recall[i])
        assert row["f1"] == pytest.approx(f1[i])
        assert row["support"] == support[i]


def weight_arrays(run_dir):
    """{name: array} of a run's checkpoints/best.weights.h5."""
    import h5py

    found = {}

    def keep(name, item):
        if isinstance(item, h5py.Dataset):
            found[name] = item[()]

    path = pathlib.Path(run_dir) / "checkpoints" / "best.weights.h5"
    with h5py.File(path, "r") as file:
        file.visititems(keep)
    return found


def assert_bitwise_equal_runs(first, second):
    """Two run folders hold the same best weights, byte for byte, and the
    same history.csv."""
    one, other = weight_arrays(first), weight_arrays(second)
    assert one and sorted(one) == sorted(other)
    differ = [
        name
        for name in one
        if one[name].dtype != other[name].dtype
        or one[name].tobytes() != other[name].tobytes()
    ]
    assert not differ, f"{len(differ)} weights differ, first {differ[0]}"
    history = [pathlib.Path(f) / "history.csv" for f in (first, second)]
    assert history[0].read_text() == history[1].read_text()


def assert_run_contract(model_dir):
    """What every finished run folder holds, whatever its task (the task
    is config.json's): kft-evaluate, kft-export and kft-predict read these.
    Each task's end-to-end test calls it (tests/test_run_contract.py checks
    that every task has one)."""
    from kft.core import run_folder
    from kft.tasks import registry

    folder = pathlib.Path(model_dir)
    config = json.loads((folder / "config.json").read_text())
    task = registry.get(config["task"])
    record = json.loads((folder / "checkpoints" / "run.json").read_text())
    assert record.get("finished") is True, record
    metrics = json.loads((folder / run_folder.METRICS).read_text())
    assert metrics.get("task", "classification") == task.name
    assert metrics["timing"]["total_seconds"] >= 0
    for key in ("prepare_seconds", "evaluate_seconds"):
        assert key in metrics["timing"], key
    rows = (folder / "history.csv").read_text().splitlines()
    epochs = sum(1 for row in rows[1:] if row)
    assert epochs >= 1 and rows[0].startswith("phase,epoch,learning_rate")
    for name in (
        run_folder.WEIGHTS_FILE,
        run_folder.PREDICTIONS_FILE,
        "report.html",
    ):
        assert (folder / name).is_file(), name
    # The fine-tuned backbone a next run starts from: a keras-hub preset
    # folder, or a keras.applications weights file.
    preset = folder / run_folder.BACKBONE_DIR
    assert (preset / "config.json").is_file() or (
        folder / run_folder.BACKBONE_FILE
    ).is_file()
    assert task.read_sample(str(folder)) is not None
    # --overwrite removes these names alone (a user's file stays).
    assert set(os.listdir(folder)) <= run_folder.OWN_NAMES, sorted(
        set(os.listdir(folder)) - run_folder.OWN_NAMES
    )
    # The resume state is gone once the run is finished (best.weights.h5
    # is what every command reads).
    resume = [
        name
        for name in os.listdir(folder / "checkpoints")
        if name.startswith(("ckpt-", "best-"))
    ]
    assert not resume, resume
    assert metrics["timing"]["optimizer_steps"] > 0
    if config["export"]:
        check = folder / run_folder.EXPORT_DIR / "1" / "kft_export_check.json"
        assert check.is_file(), check
        assert metrics["export"]["path"].endswith("1")
    return metrics
