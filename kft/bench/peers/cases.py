"""The cases `kft-benchmark compare` runs: one JSON-able spec per peer.

Each spec names its suite, case and peer, the shared settings (batch size,
warm-up, steps, repeats, threads), the data it trains on (written here into
the work folder: the experiment's texts, long texts of fixed length,
random-noise images) and the experiment's config as JSON. kft/bench/peers/
__init__.py runs a spec.
"""

import copy
import json
import os
import pathlib

import numpy as np

from kft import run
from kft.bench.peers import kft_peer, measure
from kft.core import assets, freeze
from kft.core.errors import UserError
from kft.data import token_lengths
from kft.model import builder
from kft.tasks import labelled


def _check_assets(*paths):
    """A UserError naming kft-fetch for a path inside a missing asset."""
    for name in assets.ASSETS:
        folder = str(assets.cache_dir() / name)
        if any(str(path).startswith(folder) for path in paths):
            assets.path(name)
    for path in paths:
        if path and os.path.isabs(path) and not os.path.exists(path):
            raise UserError(f"{path} does not exist")


def _write_examples(path, values, label_ids, num_classes):
    with open(path, "w") as file:
        json.dump(
            {
                "values": list(values),
                "label_ids": [int(i) for i in label_ids],
                "num_classes": int(num_classes),
            },
            file,
        )
    return str(path)


def long_texts(texts, words, count):
    """`count` texts of at least `words` words, each consecutive texts
    joined (so every row fills any length up to `words` tokens)."""
    out = []
    start = 0
    while len(out) < count:
        joined = []
        while len(" ".join(joined).split()) < words:
            joined.append(texts[start % len(texts)])
            start += 1
        out.append(" ".join(joined))
    return out


def _encoder_dims(backbone):
    config = backbone.get_config()
    try:
        return (
            config["num_layers"],
            config["hidden_dim"],
            config["intermediate_dim"],
        )
    except KeyError:
        return None


def spec(settings, suite, case, peer, **fields):
    return {
        "suite": suite,
        "case": case,
        "peer": peer,
        "batch_size": settings.batch_size,
        "warmup": settings.warmup,
        "steps": settings.steps,
        "repeats": settings.repeats,
        "threads": settings.threads,
        **fields,
    }


def text_cases(config, settings, work, log):
    """The text_fixed and text_epoch cases of `settings`' peers."""
    config = copy.deepcopy(config)
    config.data.batch_size = settings.batch_size
    config.plan = "full"  # every peer trains the whole model
    torch_model = settings.torch_model or config.backbone
    _check_assets(config.backbone, config.data.train, torch_model)
    run.check_choices(config)
    built, splits = labelled.prepare(config)  # picks the sequence length
    dims = _encoder_dims(built.backbone)
    classes = len(splits.labels)
    maximum = getattr(built.backbone, "max_sequence_length", None) or 512
    shared = dict(seed=config.seed, num_classes=classes)
    model_of = {"torch": torch_model}
    cases = []
    if "text_fixed" in settings.suites:
        texts = long_texts(
            splits.train.values,
            max(settings.lengths),
            settings.batch_size * settings.distinct_batches,
        )
        labels = [
            splits.train.label_ids[i % len(splits.train)]
            for i in range(len(texts))
        ]
        path = _write_examples(
            pathlib.Path(work) / "fixed.json", texts, labels, classes
        )
        for length in settings.lengths:
            if length > maximum:
                raise UserError(
                    f"--lengths: {length} is longer than the backbone's "
                    f"maximum sequence length {maximum}"
                )
            case_config = copy.deepcopy(config)
            case_config.data.sequence_length = length
            flops = dims and measure.transformer_train_flops(*dims, length)
            for peer in settings.peers:
                cases.append(
                    spec(
                        settings,
                        "text_fixed",
                        f"length {length}",
                        peer,
                        length=length,
                        data=path,
                        model=model_of.get(peer, config.backbone),
                        config=_config_json(case_config),
                        flops_per_sample=flops,
                        **shared,
                    )
                )
    if "text_epoch" in settings.suites:
        length = config.data.sequence_length
        train = splits.train
        path = _write_examples(
            pathlib.Path(work) / "epoch.json",
            train.values,
            train.label_ids,
            classes,
        )
        flops = None
        if dims:
            # Useful FLOPs: each text at its own token count, no padding.
            tokens = np.minimum(
                token_lengths(built.preprocessor, train.values),
                length,
            )
            flops = float(
                np.mean(
                    [
                        measure.transformer_train_flops(*dims, int(n))
                        for n in tokens
                    ]
                )
            )
        for peer in settings.peers:
            cases.append(
                spec(
                    settings,
                    "text_epoch",
                    f"{len(train)} texts, length <= {length}",
                    peer,
                    length=length,
                    data=path,
                    model=model_of.get(peer, config.backbone),
                    config=_config_json(config),
                    flops_per_sample=flops,
                    **shared,
                )
            )
    log(
        f"text: {config.backbone}, {classes} classes, batch "
        f"{settings.batch_size}; epoch suite sequence length "
        f"{config.data.sequence_length}"
    )
    return cases


def _config_json(config):
    from kft import config as config_lib

    return config_lib.to_json(config)


def _write_images(folder, count, size, classes=3, seed=0):
    """`count` random-noise PNGs of `size` px in `classes` class folders;
    returns (paths, label ids) in a fixed order."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    paths, labels = [], []
    for index in range(count):
        label = index % classes
        target = pathlib.Path(folder) / f"class_{label}"
        target.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        path = target / f"{index:04d}.png"
        path.write_bytes(tf.io.encode_png(pixels).numpy())
        paths.append(str(path))
        labels.append(label)
    return paths, labels


def image_cases(config, settings, work):
    """The images cases: the whole backbone training (kft, keras), and a
    frozen backbone with a Dense head: kft recomputing the backbone every
    step, and kft on cached features (kft/core/cached.py)."""

    classes = 3
    folder = pathlib.Path(work) / "images"
    paths, labels = _write_images(
        folder,
        settings.batch_size * settings.distinct_batches,
        settings.image_size,
        classes,
        config.seed,
    )
    path = _write_examples(
        pathlib.Path(work) / "images.json", paths, labels, classes
    )
    config = copy.deepcopy(config)
    config.backbone = settings.image_backbone
    config.weights = "none"
    config.data.image_size = settings.image_size
    config.data.batch_size = settings.batch_size
    config.data.augment = ""
    config.data.mixup = config.data.cutmix = 0.0
    name = f"{settings.image_backbone} {settings.image_size}px"
    built = builder.build(config, classes)
    cases = []
    for plan, case in (("full", name), ("linear_probe", f"{name}, frozen")):
        config.plan = plan
        phase = freeze.plan_from_config(config)[-1]
        freeze.apply_phase(
            built, phase, built.family.block_pattern, config.train_batchnorm
        )
        total, trainable = kft_peer.layer_flops(built.model)
        fields = dict(
            data=path,
            config=_config_json(config),
            flops_per_sample=total + 2 * trainable,
            seed=config.seed,
        )
        cases.append(spec(settings, "images", case, "kft", **fields))
        if plan == "linear_probe":
            # The head alone trains on features: its FLOPs, 3x forward.
            head = dict(fields, flops_per_sample=3 * trainable)
            cases.append(spec(settings, "images", case, "kft_cached", **head))
        if plan == "full" and "keras" in settings.peers:
            keras_fields = dict(
                folder=str(folder),
                backbone=settings.image_backbone,
                image_size=settings.image_size,
                num_classes=classes,
            )
            cases.append(
                spec(
                    settings,
                    "images",
                    case,
                    "keras",
                    **fields,
                    **keras_fields,
                )
            )
    return cases


def matmul_case(settings):
    """The utilization suite's matmul peak (numpy, TensorFlow, PyTorch)."""
    return spec(
        settings,
        "utilization",
        f"{settings.matmul_size}x{settings.matmul_size}",
        "matmul",
        matmul_size=settings.matmul_size,
        matmul_repeats=5,
        torch="torch" in settings.peers,
    )
