"""The learning-rate range test and the TensorBoard scalars of a run."""

import csv
import glob
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_image_config, train_cli

from kft import config as config_lib
from kft import run
from kft.core import freeze, lr_find
from kft.core.errors import UserError
from kft.tasks import labelled
from kft.tasks.classification.task import TASK as CLASSIFICATION


def test_smooth_is_bias_corrected_moving_average():
    assert lr_find.smooth([2.0, 2.0, 2.0], 0.9) == pytest.approx([2, 2, 2])
    first, second = lr_find.smooth([1.0, 3.0], 0.5)
    assert first == pytest.approx(1.0)
    assert second == pytest.approx((0.25 * 1 + 0.5 * 3) / 0.75)


RATES = list(np.geomspace(1e-6, 1.0, 40))


def test_suggestion_is_halfway_along_the_longest_valley():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.05, 40)
    # Flat and noisy, a steady fall over steps 14-27, then a blow-up.
    smoothed = np.concatenate(
        [np.full(14, 2.0), np.linspace(1.9, 1.0, 14), np.geomspace(1.1, 50, 12)]
    )
    smoothed[:14] += noise[:14]
    suggestion, valley, note = lr_find.suggest(RATES, list(smoothed), 40)
    # Noise in the flat part can lengthen the valley to the left, so the
    # suggestion lies in the fall's first half.
    assert RATES[14] <= suggestion <= RATES[21]
    assert valley[0] <= RATES[14] and valley[1] == RATES[27]
    assert note == ""


def test_suggestion_notes_a_range_to_widen():
    rising = list(np.linspace(1.0, 2.0, 40))
    suggestion, _, note = lr_find.suggest(RATES, rising, 40)
    assert suggestion == pytest.approx(RATES[4], rel=0.05)
    assert "min_rate" in note
    falling = list(np.linspace(2.0, 1.0, 40))
    suggestion, valley, note = lr_find.suggest(RATES, falling, 40)
    assert valley == (RATES[4], RATES[34]) and "max_rate" in note
    diverged = falling[:20] + [float("nan")] * 20
    suggestion, valley, _ = lr_find.suggest(RATES, diverged, 40)
    assert valley[1] == RATES[19]


@pytest.mark.parametrize(
    "key, value",
    [("steps", 1), ("min_rate", 0.0), ("max_rate", 1e-8), ("smoothing", 1.0)],
)
def test_bad_options_are_user_errors(key, value):
    options = config_lib.default_config().lr_find_options
    options[key] = value
    with pytest.raises(UserError, match="lr_find_options"):
        lr_find.check_options(options)


def _text_config(tiny_bert, text_csv):
    config = config_lib.default_config()
    config.backbone = tiny_bert
    config.data.train, config.data.test = text_csv
    config.data.batch_size = 8
    return config


@pytest.fixture(params=["text", "image"])
def prepared(request, tiny_bert, text_csv, image_folder):
    if request.param == "text":
        config = _text_config(tiny_bert, text_csv)
    else:
        config = tiny_image_config(image_folder)
    run.set_seed(0)
    built, splits = labelled.prepare(config)
    return config, built, splits


def _numpy(variables):
    return [keras.ops.convert_to_numpy(v) for v in variables]


def _trainable_flags(model):
    return [layer.trainable for layer in model._flatten_layers()]


def test_sweep_leaves_model_and_optimizer_bit_identical(prepared):
    config, built, splits = prepared
    model = built.model
    classes = len(splits.labels)
    dataset = labelled.batches(built, splits.train, config, True).dataset(0)
    # A compiled model whose optimizer holds moments (one step of made-up
    # gradients: cheaper than tracing a fit).
    optimizer = keras.optimizers.Adam(1e-3)
    CLASSIFICATION.compile(model, optimizer, config, classes)
    trained = model.trainable_variables
    optimizer.apply([keras.ops.full(v.shape, 0.01) for v in trained], trained)
    weights, variables = _numpy(model.weights), _numpy(model.variables)
    moments, flags = _numpy(optimizer.variables), _trainable_flags(model)
    options = config.lr_find_options
    options.steps, options.max_rate, options.divergence = 6, 1e-1, 0.0
    phase = freeze.plan_from_config(config)[0]

    result = lr_find.sweep(
        built, phase, dataset, config, classes, task=CLASSIFICATION
    )

    assert all(map(np.array_equal, weights, _numpy(model.weights)))
    assert all(map(np.array_equal, variables, _numpy(model.variables)))
    assert model.optimizer is optimizer
    assert all(map(np.array_equal, moments, _numpy(optimizer.variables)))
    assert _trainable_flags(model) == flags
    assert len(result["rates"]) == len(result["losses"]) == 6
    assert len(result["smoothed"]) == result["steps_run"] == 6
    assert result["rates"][0] == pytest.approx(1e-7, rel=1e-5)
    assert result["rates"][-1] == pytest.approx(1e-1, rel=1e-5)
    assert np.all(np.diff(np.log(result["rates"])) > 0)
    # The sweep trained: a run that trains nothing would pass the checks
    # above however badly the weights were restored.
    assert len(set(result["losses"])) > 1
    assert 1e-7 <= result["suggestion"] <= 1e-1


def test_sweep_stops_when_the_loss_diverges(tiny_bert, text_csv):
    config = _text_config(tiny_bert, text_csv)
    config.plan = "full"
    config.optimizer.name = "sgd"
    config.optimizer.clipnorm = 0.0
    run.set_seed(0)
    built, splits = labelled.prepare(config)
    options = config.lr_find_options
    options.min_rate, options.max_rate, options.steps = 1e-3, 1e5, 40
    dataset = labelled.batches(built, splits.train, config, True).dataset(0)
    phase = freeze.plan_from_config(config)[0]
    result = lr_find.sweep(
        built, phase, dataset, config, len(splits.labels), task=CLASSIFICATION
    )
    assert result["steps_run"] < 40
    smoothed = [s for s in result["smoothed"] if s is not None]
    assert len(smoothed) < result["steps_run"] or (
        smoothed[-1] > 4 * min(smoothed)
    )


def test_apply_sets_the_first_phase_rate():
    config = config_lib.default_config()
    assert lr_find.apply(config, 2e-3) == "head_learning_rate"
    assert freeze.plan_from_config(config)[0].learning_rate == 2e-3
    config.plan, config.head_epochs = "two_phase", 0
    assert lr_find.apply(config, 3e-4) == "learning_rate"
    config.plan = "custom"
    config.phases = json.dumps(
        [
            {"epochs": 0, "trainable": ["head"], "learning_rate": 1.0},
            {"epochs": 1, "trainable": ["all"], "learning_rate": 1.0},
        ]
    )
    assert lr_find.apply(config, 4e-5) == "phases"
    assert freeze.plan_from_config(config)[0].learning_rate == 4e-5


def _cli_text_run(tiny_bert, text_csv, model_dir, *overrides):
    train, test = text_csv
    result = train_cli(
        model_dir,
        f"--config.backbone={tiny_bert}",
        f"--config.data.train={train}",
        f"--config.data.test={test}",
        "--config.data.batch_size=8",
        "--config.lr_find=true",
        "--config.lr_find_options.steps=12",
        *overrides,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_cli_lr_find_sweeps_and_stops(tiny_bert, text_csv, tmp_path):
    result = _cli_text_run(tiny_bert, text_csv, tmp_path)
    found = json.loads((tmp_path / "lr_find.json").read_text())
    assert found["phase"] == "head"
    assert 0 < found["steps_run"] == len(found["rates"]) <= 12
    assert found["rates"][0] <= found["suggestion"] <= found["rates"][-1]
    png = (tmp_path / "lr_find.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    assert f"suggested peak rate {found['suggestion']:.2g}" in result.stdout
    assert "--config.head_learning_rate" in result.stdout
    assert not (tmp_path / "history.csv").exists()
    assert not (tmp_path / "metrics.json").exists()


def test_cli_bad_option_is_a_user_error(tiny_bert, text_csv, tmp_path):
    train, _ = text_csv
    result = train_cli(
        tmp_path,
        f"--config.backbone={tiny_bert}",
        f"--config.data.train={train}",
        "--config.lr_find=true",
        "--config.lr_find_options.max_rate=1e-9",
    )
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "min_rate < max_rate" in lines[0], lines
    assert not (tmp_path / "config.json").exists()  # stopped before work


def _events(folder):
    """{tag: {step: value}} of every scalar and text event under `folder`."""
    tags = {}
    for path in glob.glob(os.path.join(folder, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                array = tf.make_ndarray(value.tensor)
                tags.setdefault(value.tag, {})[event.step] = array.item()
    return tags


def test_applied_rate_trains_and_tensorboard_matches_history(
    tiny_bert, text_csv, tmp_path
):
    _cli_text_run(
        tiny_bert,
        text_csv,
        tmp_path,
        "--config.lr_find_options.apply=true",
        "--config.plan=two_phase",
        "--config.epochs=1",
        "--config.export=false",
    )
    found = json.loads((tmp_path / "lr_find.json").read_text())
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["head_learning_rate"] == found["suggestion"]
    with open(tmp_path / "history.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["phase"] for row in rows] == ["head", "full"]
    train = _events(tmp_path / "tensorboard" / "train")
    validation = _events(tmp_path / "tensorboard" / "validation")
    expected_train, expected_validation = {}, {}
    for row in rows:
        epoch = int(row["epoch"])
        for key, value in row.items():
            if key in ("phase", "epoch"):
                continue
            name = "epoch_" + key.removeprefix("val_")
            target = (
                expected_validation
                if key.startswith("val_")
                else (expected_train)
            )
            target.setdefault(name, {})[epoch] = np.float32(value)
    assert set(train) == set(expected_train) | {"phase", "batch_learning_rate"}
    assert {tag: train[tag] for tag in expected_train} == expected_train
    assert validation == expected_validation
    assert train["phase"] == {1: b"head", 2: b"full"}
    rates = train["batch_learning_rate"]
    steps = sorted(rates)
    assert steps == list(range(1, len(steps) + 1))  # phases end to end
    # The head phase warms up to the suggestion; the full phase to its rate.
    peaks = {round(rate, 12) for rate in rates.values()}
    assert round(np.float32(found["suggestion"]).item(), 12) in peaks
    full_rate = config["learning_rate"]
    assert round(np.float32(full_rate).item(), 12) in peaks
    # The run's report shows the sweep it trained with.
    page = (tmp_path / "report.html").read_text()
    assert "<h2>Learning-rate range test</h2>" in page
    assert f"Suggested peak rate {found['suggestion']:.2g}" in page
