"""Weight averaging (optimizer.ema_momentum): a run validates, keeps and
exports the moving average of its weights while training goes on from the
raw ones, and a run stopped and resumed ends where one never stopped ends."""

import csv
import os
import signal

import keras
import numpy as np
import pytest
from conftest import tiny_image_config, train_in_process

from kft.core import compat
from kft.core.errors import Interrupted


def _config(image_folder, ema, validation=0.25):
    config = tiny_image_config(image_folder)
    config.epochs = 3
    config.learning_rate = 1e-2  # enough to move a tiny model
    config.optimizer.ema_momentum = ema
    config.data.validation_fraction = validation
    config.checkpoint.every_steps = 1
    config.deterministic = True
    config.verbose = 0
    return config.copy_and_resolve_references()


def _history(folder):
    with open(folder / "history.csv") as file:
        return list(csv.DictReader(file))


def _column(rows, key):
    return np.array([float(row[key]) for row in rows])


def _weights(trainer):
    return [keras.ops.convert_to_numpy(v) for v in trainer.model.weights]


def test_the_average_is_validated_while_the_raw_weights_train(
    image_folder, tmp_path
):
    averaged, _ = train_in_process(_config(image_folder, 0.9), tmp_path / "a")
    plain, _ = train_in_process(_config(image_folder, 0.0), tmp_path / "p")
    with_average, without = _history(tmp_path / "a"), _history(tmp_path / "p")
    # The same training steps, bit for bit (a deterministic run): the
    # average never feeds back into them.
    np.testing.assert_array_equal(
        _column(with_average, "loss"), _column(without, "loss")
    )
    # Validated on something else: the average.
    assert not np.array_equal(
        _column(with_average, "val_loss"), _column(without, "val_loss")
    )
    assert any(
        not np.allclose(a, b)
        for a, b in zip(_weights(averaged), _weights(plain))
    )


def test_without_validation_the_run_ends_on_the_average(image_folder, tmp_path):
    trainer, lines = train_in_process(
        _config(image_folder, 0.9, validation=0.0), tmp_path
    )
    pairs = compat.ema_pairs(trainer.optimizer)
    assert pairs
    for variable, average in pairs:
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(variable),
            keras.ops.convert_to_numpy(average),
        )
    assert any("moving average" in line for line in lines)


def test_a_resumed_averaging_run_ends_like_one_never_stopped(
    image_folder, tmp_path
):
    plain, _ = train_in_process(_config(image_folder, 0.9), tmp_path / "plain")
    lines = []

    def stop_after_the_first_epoch(line):
        lines.append(line)
        if line.startswith("epoch 1/"):
            os.kill(os.getpid(), signal.SIGTERM)  # the handler sets a flag

    with pytest.raises(Interrupted):
        train_in_process(
            _config(image_folder, 0.9),
            tmp_path / "run",
            stop_after_the_first_epoch,
        )
    resumed, _ = train_in_process(
        _config(image_folder, 0.9), tmp_path / "run", lines.append, True
    )
    assert any("resuming from the checkpoint" in line for line in lines)
    assert _history(tmp_path / "run") == _history(tmp_path / "plain")
    for a, b in zip(_weights(resumed), _weights(plain)):
        np.testing.assert_allclose(a, b, atol=1e-6)
