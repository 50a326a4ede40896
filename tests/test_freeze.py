"""Freeze plans as data: trainable variables per phase, decay, BatchNorm."""

import keras
import numpy as np
import pytest

from kft import config as config_lib
from kft.core import freeze, optim
from kft.core.errors import UserError
from kft.model import builder


def _image_config(**changes):
    config = config_lib.default_config()
    config.backbone = "ResNet50"
    config.weights = "none"
    config.data.image_size = 32
    for key, value in changes.items():
        config[key] = value
    return config


@pytest.fixture(scope="module")
def resnet():
    return builder.build(_image_config(), 3)


def _trainable_backbone_layers(built):
    return {
        layer.name
        for layer in built.backbone.layers
        if layer.trainable_variables and layer.trainable
    }


def _head_trainable(built):
    return bool(built.model.get_layer("head_output").trainable_variables) and (
        built.model.get_layer("head_output").trainable
    )


# plan -> [(phase name, head trains?, number of trainable blocks or "all")]
EXPECTED = {
    "linear_probe": [("head", True, 0)],
    "full": [("full", True, "all")],
    "two_phase": [("head", True, 0), ("full", True, "all")],
    "gradual": [
        ("head", True, 0),
        ("unfreeze_1", True, 1),
        ("unfreeze_2", True, 2),
        ("unfreeze_3", True, "all"),
    ],
}


@pytest.mark.parametrize("plan", sorted(EXPECTED))
def test_named_plan_trains_expected_layers(resnet, plan):
    config = _image_config(plan=plan, epochs=3)
    phases = freeze.plan_from_config(config)
    assert [p.name for p in phases] == [e[0] for e in EXPECTED[plan]]
    groups = freeze.block_groups(resnet.backbone, resnet.family.block_pattern)
    assert len(groups) == 17  # stem + 16 bottleneck blocks of ResNet50
    for phase, (_, head, blocks) in zip(phases, EXPECTED[plan]):
        freeze.apply_phase(resnet, phase, resnet.family.block_pattern)
        trainable = _trainable_backbone_layers(resnet)
        if blocks == "all":
            expected = {
                layer.name
                for layer in resnet.backbone.layers
                if layer.trainable_variables
                and not isinstance(layer, keras.layers.BatchNormalization)
            }
        else:
            expected = {
                layer.name
                for group in (groups[-blocks:] if blocks else [])
                for layer in group
                if layer.trainable_variables
                and not isinstance(layer, keras.layers.BatchNormalization)
            }
        assert trainable == expected
        assert _head_trainable(resnet) == head
        batchnorm = [
            l
            for l in resnet.backbone.layers
            if isinstance(l, keras.layers.BatchNormalization)
        ]
        assert not any(l.trainable_variables for l in batchnorm)


def test_regex_and_skip_selectors(resnet):
    phase = freeze.Phase("x", 1, ("conv5_block3_3_conv",), 1e-3)
    freeze.apply_phase(resnet, phase, resnet.family.block_pattern)
    assert _trainable_backbone_layers(resnet) == {"conv5_block3_3_conv"}
    assert not _head_trainable(resnet)
    phase = freeze.Phase("x", 1, ("skip:16",), 1e-3)
    freeze.apply_phase(resnet, phase, resnet.family.block_pattern)
    assert all(
        n.startswith("conv5_block3") or n in ("post_bn",)
        for n in _trainable_backbone_layers(resnet)
    )


def test_regex_matching_nothing_is_an_error(resnet):
    phase = freeze.Phase("x", 1, ("no_such_layer",), 1e-3)
    with pytest.raises(UserError, match="matches no backbone layer"):
        freeze.apply_phase(resnet, phase, resnet.family.block_pattern)


def test_unknown_plan_is_an_error():
    with pytest.raises(UserError, match="valid plans"):
        freeze.plan_from_config(_image_config(plan="frozen"))


def test_custom_plan_from_json():
    config = _image_config(
        plan="custom",
        phases=(
            '[{"epochs": 2, "trainable": ["head", "last:2"],'
            ' "learning_rate": 0.01, "layer_decay": 0.5}]'
        ),
    )
    (phase,) = freeze.plan_from_config(config)
    assert phase.trainable == ("head", "last:2") and phase.layer_decay == 0.5


def test_batchnorm_statistics_stay_put_after_an_epoch(resnet):
    freeze.apply_phase(
        resnet,
        freeze.Phase("full", 1, ("head", "all"), 1e-2),
        resnet.family.block_pattern,
    )
    batchnorm = [
        l
        for l in resnet.backbone.layers
        if isinstance(l, keras.layers.BatchNormalization)
    ]
    before = [
        keras.ops.convert_to_numpy(v)
        for l in batchnorm
        for v in l.non_trainable_weights
    ]
    resnet.model.compile(
        optimizer="sgd", loss="sparse_categorical_crossentropy"
    )
    images = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3))
    resnet.model.fit(
        images, np.arange(8) % 3, batch_size=4, epochs=1, verbose=0
    )
    after = [
        keras.ops.convert_to_numpy(v)
        for l in batchnorm
        for v in l.non_trainable_weights
    ]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    moved = resnet.backbone.get_layer("conv1_conv").kernel
    assert moved.trainable


def test_layer_decay_scales_updates():
    """With SGD, each block's update is lr * decay ** (blocks - index)."""
    config = _image_config(backbone="MobileNetV2")
    built = builder.build(config, 2)
    phase = freeze.Phase("full", 1, ("head", "all"), 0.1, layer_decay=0.5)
    multipliers = freeze.apply_phase(built, phase, built.family.block_pattern)
    groups = freeze.block_groups(built.backbone, built.family.block_pattern)
    first = groups[1][0].trainable_variables[0]
    last = (
        groups[-1][-1].trainable_variables[0]
        if groups[-1][-1].trainable_variables
        else groups[-1][0].trainable_variables[0]
    )
    assert multipliers[first.path] == pytest.approx(0.5 ** (len(groups) - 1))
    assert multipliers[last.path] == pytest.approx(0.5)
    optimizer_config = config_lib.default_config().optimizer
    optimizer_config.name = "sgd"
    optimizer_config.momentum = 0.0
    optimizer_config.weight_decay = 0.0
    optimizer_config.clipnorm = 0.0
    optimizer = optim.make_optimizer(optimizer_config, 0.1, multipliers)
    variables = [first, last]
    for variable in variables:  # zeros keep float32 rounding out of it
        variable.assign(np.zeros(variable.shape, "float32"))
    optimizer.build(variables)
    before = [keras.ops.convert_to_numpy(v) for v in variables]
    grads = [np.ones(v.shape, "float32") for v in variables]
    optimizer.apply(grads, variables)
    for variable, old in zip(variables, before):
        step = np.abs(keras.ops.convert_to_numpy(variable) - old).max()
        assert step == pytest.approx(0.1 * multipliers[variable.path], rel=1e-4)
