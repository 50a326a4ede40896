"""Freeze plans as data: which layers train in each phase, and how fast.

A plan is a list of `Phase`s. A phase's `trainable` is a list of selectors:

    "head"      every layer of the model outside the backbone
    "all"       the whole backbone
    "last:N"    the backbone's last N blocks
    "skip:N"    all of the backbone's blocks but the first N
    any other   a regex searched in backbone layer names ("re:" optional)

Named plans (from the config's epochs and rates):

    linear_probe  head only, `epochs` at `head_learning_rate`
    full          everything, `epochs` at `learning_rate`
    two_phase     head for `head_epochs`, then everything for `epochs`
    gradual       head, then one more block group each epoch (ULMFiT)

BatchNorm layers stay frozen unless `train_batchnorm` is set: their moving
statistics are the pretrained ones, which small fine-tuning batches would
spoil (the Keras guide's advice). Layer-wise learning-rate decay gives block
i of n the multiplier decay ** (n - i); the head gets 1.
"""

import dataclasses
import json
import re

import keras

from kft.core import compat
from kft.core.errors import UserError

PLANS = ("linear_probe", "full", "two_phase", "gradual", "custom")


@dataclasses.dataclass(frozen=True)
class Phase:
    name: str
    epochs: int
    trainable: tuple
    learning_rate: float
    layer_decay: float = 1.0


def plan_from_config(config):
    """Returns the list of phases that `config.plan` names."""
    plan = config.plan
    if plan not in PLANS:
        raise UserError(
            f"unknown plan '{plan}'; valid plans: {', '.join(PLANS)}"
        )
    head = Phase(
        "head", config.head_epochs, ("head",), config.head_learning_rate
    )
    full = Phase(
        "full",
        config.epochs,
        ("head", "all"),
        config.learning_rate,
        config.layer_decay,
    )
    if plan == "linear_probe":
        phases = [dataclasses.replace(head, epochs=config.epochs)]
    elif plan == "full":
        phases = [full]
    elif plan == "two_phase":
        phases = [head, full]
    elif plan == "gradual":
        phases = _gradual(config, head)
    else:
        phases = _custom(config.phases)
    phases = [phase for phase in phases if phase.epochs > 0]
    if not phases:
        raise UserError(f"plan '{plan}' has no epochs to train")
    return phases


def _gradual(config, head):
    """Head first, then one more block group each epoch; `epochs` in all."""
    phases = [head]
    for epoch in range(1, config.epochs + 1):
        selector = "all" if epoch == config.epochs else f"last:{epoch}"
        phases.append(
            Phase(
                f"unfreeze_{epoch}",
                1,
                ("head", selector),
                config.learning_rate,
                config.layer_decay,
            )
        )
    return phases


def _custom(text):
    try:
        items = json.loads(text) if text else []
        phases = [
            Phase(
                name=item.get("name", f"phase_{index}"),
                epochs=int(item["epochs"]),
                trainable=tuple(item["trainable"]),
                learning_rate=float(item["learning_rate"]),
                layer_decay=float(item.get("layer_decay", 1.0)),
            )
            for index, item in enumerate(items)
        ]
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise UserError(
            "--config.phases must be a JSON list of phases with epochs, "
            f"trainable and learning_rate ({error})"
        ) from None
    if not phases:
        raise UserError("plan 'custom' needs --config.phases")
    return phases


# === Blocks ===


def block_groups(backbone, pattern):
    """Splits the backbone's layers into ordered groups: stem, then blocks.

    A layer whose name matches `pattern` starts or joins the block its first
    group names; a layer that matches nothing joins the group before it, so
    the stem is group 0 and top layers join the last block.
    """
    groups = [[]]
    keys = [None]
    for layer in backbone.layers:
        match = re.search(pattern, layer.name) if pattern else None
        if match and match.group(1) != keys[-1]:
            groups.append([])
            keys.append(match.group(1))
        groups[-1].append(layer)
    if len(groups) == 1:
        return []
    return groups


def _select_backbone_layers(backbone, selector, groups):
    """Returns the backbone layers a selector names, or raises UserError."""
    if selector == "all":
        return list(backbone.layers)
    if selector.startswith(("last:", "skip:")):
        if not groups:
            raise UserError(
                f"'{selector}': this backbone's blocks are not known; "
                "name its layers with a regex instead"
            )
        kind, count = selector.split(":")
        count = int(count)
        chosen = groups[-count:] if kind == "last" else groups[count:]
        if count <= 0:
            chosen = [] if kind == "last" else groups
        return [layer for group in chosen for layer in group]
    pattern = selector.removeprefix("re:")
    try:
        layers = [
            layer for layer in backbone.layers if re.search(pattern, layer.name)
        ]
    except re.error as error:
        raise UserError(f"bad layer regex '{pattern}': {error}") from None
    if not layers:
        raise UserError(
            f"layer regex '{pattern}' matches no backbone layer; "
            f"layers are named like: {', '.join(_sample_names(backbone))}"
        )
    return layers


def _sample_names(backbone, count=6):
    names = [layer.name for layer in backbone.layers]
    step = max(1, len(names) // count)
    return names[::step][:count]


def _is_batchnorm(layer):
    return isinstance(layer, keras.layers.BatchNormalization)


def _head_layers(model, backbone):
    return [layer for layer in model.layers if layer is not backbone]


def apply_phase(built, phase, pattern, train_batchnorm=False):
    """Sets `trainable` for `phase`; returns {variable path: lr multiplier}.

    Args:
        built: a `builder.Built` (its model and backbone).
        phase: the `Phase` to apply.
        pattern: the backbone family's block regex.
        train_batchnorm: let BatchNorm layers train when unfrozen.
    """
    model, backbone = built.model, built.backbone
    groups = block_groups(backbone, pattern)
    chosen = set()
    train_head = False
    for selector in phase.trainable:
        if selector == "head":
            train_head = True
            continue
        for layer in _select_backbone_layers(backbone, selector, groups):
            chosen.add(id(layer))
    backbone.trainable = bool(chosen)
    for layer in backbone.layers:
        frozen_norm = _is_batchnorm(layer) and not train_batchnorm
        unused = layer.name in built.unused
        layer.trainable = id(layer) in chosen and not (frozen_norm or unused)
        if not train_batchnorm:
            _freeze_nested_batchnorm(layer)
    for layer in _head_layers(model, backbone):
        layer.trainable = train_head
    _keep_lora(backbone)
    return _multipliers(backbone, groups, phase.layer_decay)


def _keep_lora(backbone):
    """With LoRA on (keras-hub's `enable_lora`), a phase trains only the
    adapters of the layers it unfreezes (and the adapted layers' biases,
    as keras-hub leaves them): setting `trainable` on a layer would also
    unfreeze the kernels and every other weight LoRA keeps frozen."""
    layers = compat.flatten_layers(backbone)
    if not any(getattr(layer, "lora_enabled", False) for layer in layers):
        return
    for top in backbone.layers:
        for layer in compat.flatten_layers(top, include_self=True):
            lora = getattr(layer, "lora_enabled", False)
            if not top.trainable:
                # A frozen parent does not reach adapted layers that
                # enable_lora set trainable: freeze them by name.
                if lora:
                    layer.trainable = False
            elif lora:
                layer.trainable = True
                compat.lora_base_kernel(layer).trainable = False
            elif not compat.direct_sublayers(layer):
                layer.trainable = False


def _freeze_nested_batchnorm(layer):
    for sublayer in getattr(layer, "_flatten_layers", lambda: [])():
        if _is_batchnorm(sublayer):
            sublayer.trainable = False


def _multipliers(backbone, groups, decay):
    if decay == 1.0 or not groups:
        return {}
    multipliers = {}
    count = len(groups)
    for index, group in enumerate(groups):
        scale = decay ** (count - index)
        for layer in group:
            for variable in layer.trainable_variables:
                multipliers[variable.path] = scale
    return multipliers
