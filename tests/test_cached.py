"""Cached frozen features (kft/core/cached.py): the head phase trained on
features computed once ends where the recomputing path ends."""

import os
import signal
import types

import keras
import numpy as np
import pytest
from conftest import tiny_image_config, train_in_process

from kft import config as config_lib
from kft.core import cached, freeze
from kft.core.errors import Interrupted, UserError
from kft.model import heads
from kft.tasks import labelled


def _head_weights(model):
    return [
        keras.ops.convert_to_numpy(v)
        for layer in heads.head_layers(model)
        for v in layer.weights
    ]


def _image_config(image_folder):
    config = tiny_image_config(image_folder)
    config.plan = "linear_probe"
    config.epochs = 2
    config.head.dropout = 0.0  # the two paths draw different masks
    config.data.validation_fraction = 0.25
    config.verbose = 0
    return config


def _text_config(tiny_bert, text_csv):
    config = config_lib.default_config()
    config.backbone = tiny_bert
    config.data.train = text_csv[0]
    config.plan = "linear_probe"
    config.epochs = 2
    config.head.dropout = 0.0
    config.backbone_dropout = False
    # One batch per epoch: text batches differ in grouping between the
    # paths (see kft/core/cached.py), a whole-set batch does not.
    config.data.batch_size = 64
    config.verbose = 0
    return config


@pytest.mark.parametrize("modality", ["image", "text"])
def test_cached_head_phase_matches_recomputing(
    modality, image_folder, tiny_bert, text_csv, tmp_path
):
    if modality == "image":
        config = _image_config(image_folder)
    else:
        config = _text_config(tiny_bert, text_csv)
    results = {}
    for mode in ("true", "false"):
        config.cache_features = mode
        trainer, lines = train_in_process(
            config.copy_and_resolve_references(), tmp_path / mode
        )
        built = trainer.built
        history = (tmp_path / mode / "history.csv").read_text().splitlines()
        results[mode] = (_head_weights(built.model), history, lines)
    (
        (cached_weights, cached_history, lines),
        (plain_weights, plain_history, _),
    ) = (
        results["true"],
        results["false"],
    )
    assert any("on cached backbone features" in line for line in lines)
    assert any("computed the backbone features" in line for line in lines)
    for a, b in zip(cached_weights, plain_weights):
        np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-4)
    assert len(cached_history) == len(plain_history) == 1 + config.epochs
    header = cached_history[0].split(",")
    assert header == plain_history[0].split(",")
    for row, other in zip(cached_history[1:], plain_history[1:]):
        values = dict(zip(header, row.split(",")))
        others = dict(zip(header, other.split(",")))
        for key in ("val_loss", "val_accuracy", "loss"):
            assert float(values[key]) == pytest.approx(
                float(others[key]), abs=1e-4
            )


def _decision(mode="auto", modality="image", **changes):
    config = config_lib.default_config()
    config.cache_features = mode
    config.backbone_dropout = False
    for key, value in changes.items():
        config_lib.override(config, key, str(value))
    built = types.SimpleNamespace(
        modality=modality, head_layers=("head_output",)
    )
    epochs = types.SimpleNamespace(ordered=object())
    head = freeze.Phase("head", 1, ("head",), 1e-3)
    return cached.decide(config, built, head, epochs)


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"data.augment": "flip"}, "data.augment augment"),
        ({"data.mixup": 0.2}, "data.mixup augment"),
        ({"train_batchnorm": True}, "train_batchnorm"),
    ],
)
def test_auto_falls_back_with_augmentation_and_true_refuses(changes, reason):
    use, line = _decision("auto", **changes)
    assert not use
    assert reason in line and "computing the backbone every" in line
    with pytest.raises(UserError, match="cannot use cached features"):
        _decision("true", **changes)


def test_which_phases_are_cached():
    assert _decision("auto")[0]
    assert not _decision("false")[0]
    assert _decision("auto", "text")[0]
    # backbone_dropout regularizes the phases where the backbone trains; a
    # frozen backbone's features are computed once, in inference mode.
    assert _decision("auto", "text", backbone_dropout=True)[0]
    with pytest.raises(UserError, match="cache_features"):
        _decision("maybe")


def test_resumed_inside_the_cached_phase_ends_like_a_run_never_stopped(
    image_folder, tmp_path
):
    config = _image_config(image_folder)
    config.plan = "two_phase"
    config.head_epochs = 2
    config.epochs = 1
    config.checkpoint.every_steps = 1
    config.deterministic = True
    plain, _ = train_in_process(
        config.copy_and_resolve_references(), tmp_path / "plain"
    )
    lines = []

    def stop_once(line):
        lines.append(line)
        if "computed the backbone features" in line and len(lines) < 5:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler sets a flag

    with pytest.raises(Interrupted):
        train_in_process(
            config.copy_and_resolve_references(), tmp_path / "run", stop_once
        )
    resumed, _ = train_in_process(
        config.copy_and_resolve_references(), tmp_path / "run", stop_once, True
    )
    assert any("resuming from the checkpoint" in line for line in lines)
    assert sum("computed the backbone features" in line for line in lines) == 2
    assert any(
        "path of phase full: computing the backbone" in line for line in lines
    )
    history = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in history[1:]] == [
        "head",
        "head",
        "full",
    ]
    assert (
        history == (tmp_path / "plain" / "history.csv").read_text().splitlines()
    )
    for a, b in zip(resumed.model.weights, plain.model.weights):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(a),
            keras.ops.convert_to_numpy(b),
            atol=1e-6,
        )


def test_cached_features_are_float32_under_a_mixed_policy(image_folder):
    """A mixed-precision backbone computes its features in bfloat16, but
    they are cached, and gathered from several workers, in float32 (a
    multi-worker gather has no bfloat16 kernel: such a run failed before
    its first step)."""
    config = _image_config(image_folder)
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        built, _ = labelled.prepare(config)
        extractor, head = cached.split(built)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    assert extractor.outputs[0].dtype == "float32"
    assert head.inputs[0].dtype == "float32"
    assert head.outputs[0].dtype == built.model.outputs[0].dtype


def test_cached_validation_features_run_without_tf_datas_autotuning(
    image_folder,
):
    """As every dataset kft hands to Keras (test_pipeline): the head
    phase evaluates them once per epoch."""
    config = _image_config(image_folder)
    built, splits = labelled.prepare(config)
    extractor, _ = cached.split(built)
    _, validation = cached.features(
        extractor,
        labelled.batches(built, splits.train, config, True),
        labelled.batches(built, splits.validation, config, False),
        4,
        lambda line: None,
    )
    assert validation.options().autotune.enabled is False
