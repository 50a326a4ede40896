"""Checkpoints in-process: fallback past corrupt ones, refusal of ones that
do not fit, pruning, NaN retries, and a run on the ram:// file system."""

import json
import os
import signal

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_image_config

from kft import data, fit, run
from kft.core import checkpoint, files, freeze, training
from kft.core.errors import Diverged, Interrupted, UserError
from kft.tasks import labelled
from kft.tasks.classification.task import TASK as CLASSIFICATION


def _model(classes=3):
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, name="hidden")(inputs)
    outputs = keras.layers.Dense(classes, activation="softmax")(hidden)
    model = keras.Model(inputs, outputs)
    model.compile(
        keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy"
    )
    model.fit(np.ones((4, 4)), np.zeros(4), verbose=0)
    return model


def _values(model):
    return [keras.ops.convert_to_numpy(v).copy() for v in model.variables]


def _save(folder, model, step, keep=5):
    state = checkpoint.State(global_step=step, epoch=step)
    checkpoint.save(folder, state, model, model.optimizer, keep)


def test_falls_back_past_truncated_and_corrupt_checkpoints(tmp_path):
    model = _model()
    _save(str(tmp_path), model, 1)
    good = _values(model)
    for step in (2, 3):
        model.fit(np.ones((4, 4)), np.ones(4), verbose=0)
        _save(str(tmp_path), model, step)
    folder = tmp_path / "checkpoints"
    truncated = folder / "ckpt-000000003.data-00000-of-00001"
    truncated.write_bytes(truncated.read_bytes()[:-7])
    flipped = folder / "ckpt-000000002.data-00000-of-00001"
    content = bytearray(flipped.read_bytes())
    content[len(content) // 3] ^= 0x55
    flipped.write_bytes(bytes(content))
    # A save killed before its .json: not a checkpoint at all.
    (folder / "ckpt-000000004.index").write_bytes(b"half")
    warnings = []
    state = checkpoint.restore(
        str(tmp_path), model, lambda s: model.optimizer, warn=warnings.append
    )
    assert state.global_step == 1
    assert "step 3 unreadable" in warnings[0]
    assert "step 2 is corrupt" in warnings[1]
    for expected, got in zip(good, _values(model), strict=True):
        np.testing.assert_array_equal(expected, got)


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    _save(str(tmp_path), _model(classes=3), 1)
    other = _model(classes=4)
    with pytest.raises(UserError, match=r"\(8, 3\) there and \(8, 4\)"):
        checkpoint.restore(str(tmp_path), other, lambda s: other.optimizer)


def test_keeps_the_last_k_and_the_best(tmp_path):
    model = _model()
    folder = str(tmp_path)
    state = checkpoint.State(global_step=1)
    state.best_file = checkpoint.save_best(folder, model, state)
    for step in range(1, 6):
        state.global_step = step
        checkpoint.save(folder, state, model, model.optimizer, keep=2)
    names = files.listdir(os.path.join(folder, "checkpoints"))
    assert [n for n in names if n.endswith(".json")] == [
        "ckpt-000000004.json",
        "ckpt-000000005.json",
    ]
    assert "best-000000001.index" in names


def test_config_differences_name_the_key():
    saved = {"backbone": "a", "head": {"dropout": 0.1}, "verbose": 0}
    asked = {"backbone": "a", "head": {"dropout": 0.2}, "verbose": 2}
    assert checkpoint.config_differences(saved, asked) == [
        "head.dropout: 0.1 there, 0.2 here"
    ]


def _poisoned(epochs, bad_step, active):
    """`epochs` with batch `bad_step` of epoch 0 all NaN while active[0]."""

    def make(epoch):
        batches = epochs._make_epoch(epoch)
        if epoch:
            return batches

        def poison(index, batch):
            images, labels = batch
            on = tf.py_function(lambda: active[0], [], tf.bool)
            on = tf.ensure_shape(on, [])
            bad = tf.logical_and(tf.equal(index, bad_step), on)
            return tf.where(bad, images * np.nan, images), labels

        return batches.enumerate().map(poison)

    return data.Epochs(make)


def _nan_run(image_folder, tmp_path, active, log):
    keras.utils.set_random_seed(0)
    config = tiny_image_config(image_folder)
    config.checkpoint.nan_retries = 2
    built, splits = labelled.prepare(config)
    epochs = labelled.batches(built, splits.train, config, True)
    trainer = training.Trainer(
        built,
        freeze.plan_from_config(config),
        _poisoned(epochs, 1, active),
        None,
        config,
        str(tmp_path),
        len(splits.labels),
        log=log,
        task=CLASSIFICATION,
    )
    return trainer.run(resume=False), built


def test_a_bad_batch_every_time_stops_naming_step_and_rate(
    image_folder, tmp_path
):
    lines = []
    with pytest.raises(Diverged, match=r"epoch 1, step 2 .*learning rate"):
        _nan_run(image_folder, tmp_path, [True], lines.append)
    assert sum("retrying phase full" in line for line in lines) == 2


def test_a_bad_batch_once_is_retried_at_a_lower_rate(image_folder, tmp_path):
    active = [True]
    lines = []

    def log(line):
        lines.append(line)
        if "retrying" in line:
            active[0] = False

    result, built = _nan_run(image_folder, tmp_path, active, log)
    assert result["nan_retries"] == 1
    assert any("0.3 times its rate" in line for line in lines)
    for variable in built.model.trainable_variables:
        assert np.isfinite(keras.ops.convert_to_numpy(variable)).all()


def test_ram_model_dir_interrupted_and_resumed(image_folder, monkeypatch):
    """A remote-style folder (TF's in-memory ram://) end to end: SIGTERM
    during training, then the same call resumes and fills the folder."""
    model_dir = "ram://kft_resume_test/run"
    config = tiny_image_config(image_folder)
    config.epochs = 2
    logged, signalled = [], []

    def log(message):
        logged.append(message)
        if message.startswith("phase full") and not signalled:
            signalled.append(message)  # once: the first run alone stops
            os.kill(os.getpid(), signal.SIGTERM)  # the handler sets a flag

    monkeypatch.setattr(run, "_log", log)
    monkeypatch.setattr(fit, "_log", log)  # the trainer's (kft/fit.py)
    with pytest.raises(Interrupted):
        run.train(config.copy_and_resolve_references(), model_dir)
    report = run.train(config.copy_and_resolve_references(), model_dir)
    assert any("resuming from the checkpoint" in m for m in logged)
    names = files.listdir(model_dir)
    for name in ("config.json", "history.csv", "metrics.json", "report.html"):
        assert name in names
    assert (
        report["num_examples"]
        == json.loads(files.read_text(os.path.join(model_dir, "metrics.json")))[
            "num_examples"
        ]
    )
    history = files.read_text(os.path.join(model_dir, "history.csv"))
    assert len(history.strip().splitlines()) == 1 + config.epochs
    again = run.train(config.copy_and_resolve_references(), model_dir)
    assert again["accuracy"] == report["accuracy"]
    assert any("nothing to do" in m for m in logged)
    # A decision setting changed on a finished run is not applied: said.
    changed = config.copy_and_resolve_references()
    changed.eval.threshold = "argmax"
    run.train(changed, model_dir)
    assert any(
        "eval.threshold: 'auto' there, 'argmax' here" in m
        and f"kft-evaluate --model_dir={model_dir} "
        "--config.eval.threshold=argmax"
        in m
        for m in logged
    ), logged[-3:]
    # No step repeated or skipped: as many optimizer steps as a run never
    # stopped.
    plain = "ram://kft_resume_test/plain"
    run.train(config.copy_and_resolve_references(), plain)
    assert _final_step(model_dir) == _final_step(plain) > 0


def _final_step(model_dir):
    metrics = json.loads(files.read_text(f"{model_dir}/metrics.json"))
    return metrics["timing"]["optimizer_steps"]


def test_a_run_resumes_with_another_litert_export_or_device():
    """A LiteRT check that fails at the end of a run can be redone with
    another quantization without training again; the device a run trained
    on is a result, not a request. A run started before the litert keys
    existed resumes too."""
    saved = {"seed": 0, "trained_on": "CPU", "litert": {"quantization": ""}}
    asked = {"seed": 0, "trained_on": "", "litert": {"quantization": "float16"}}
    assert checkpoint.config_differences(saved, asked) == []
    assert checkpoint.config_differences({"seed": 0}, asked) == []
    assert checkpoint.config_differences({"seed": 1}, asked) == [
        "seed: 1 there, 0 here"
    ]
