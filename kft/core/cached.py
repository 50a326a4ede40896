"""Cached frozen features: a head-only phase trains on features computed once.

When a phase trains the head alone on unaugmented data, every epoch would
compute the same pooled backbone outputs again. Here they are computed once
for the training and validation sets, with the backbone in inference mode,
and `model.fit` trains a model of the head's own layers on them: the very
layers (and variables) of the full model, so the full model's weights are
what trains, and checkpoints, best weights and the next (unfrozen) phase
see them as usual. A text backbone's dropout (`backbone_dropout`) is for
the phases where the backbone trains: the cached head learns on the
features it will see at inference (as accurate as dropout-noised features
on two text sets' validation splits: experiments/text_classifier.py).
With `cache_features` false a head-only phase computes the backbone every
step, in training mode where `backbone_dropout` is set.

`cache_features` in the config: "auto" caches every phase where that is
valid and logs why a head-only phase is not; "true" makes a head-only phase
that cannot be cached an error (UserError); "false" never caches.

Image batches come in the same order as on the recomputing path (when the
shuffle buffer holds the whole split, up to 512 MiB of pixels); text
batches are shuffled features without length grouping (there is no padding
left to save), so a text phase's batches and step count differ from the
recomputing path's.
"""

import time

import keras

from kft.core import distribute
from kft.core.errors import UserError

MODES = ("auto", "true", "false")


def why_not(config, built, phase, train_epochs):
    """Why `phase` cannot train on cached features; "" where it can."""
    if any(selector != "head" for selector in phase.trainable):
        return "the backbone trains"
    if not built.head_layers:
        return (
            f"task {config.get('task', 'classification')} has no head on "
            "pooled features"
        )
    if built.modality == "image" and config.train_batchnorm:
        return "train_batchnorm runs the backbone in training mode"
    augmented = [
        key
        for key, on in (
            ("data.augment", config.data.augment),
            ("data.mixup", config.data.mixup),
            ("data.cutmix", config.data.cutmix),
        )
        if on
    ]
    if augmented:
        return f"{' and '.join(augmented)} augment the training data"
    if getattr(train_epochs, "ordered", None) is None:
        return "the training data has no fixed order to compute features in"
    return ""


def decide(config, built, phase, train_epochs):
    """(cache or not, the log line saying which path `phase` takes)."""
    mode = str(config.cache_features).lower()
    if mode not in MODES:
        raise UserError(
            f"bad cache_features '{config.cache_features}'; valid: "
            f"{', '.join(MODES)}"
        )
    reason = why_not(config, built, phase, train_epochs)
    if mode == "false":
        reason = "cache_features is false"
    elif mode == "true" and reason and phase.trainable == ("head",):
        raise UserError(
            f"cache_features is true but phase {phase.name} cannot use "
            f"cached features: {reason}"
        )
    if reason:
        return False, (
            f"path of phase {phase.name}: computing the backbone every "
            f"step ({reason})"
        )
    return True, (
        f"path of phase {phase.name}: training the head on cached "
        "backbone features (computed once)"
    )


def split(built):
    """(extractor, head): the model's inputs to its pooled features, and
    the head's layers (shared, not copied) on those features."""
    model = built.model
    layers = [model.get_layer(name) for name in built.head_layers]
    # Cached (and gathered from several workers) in float32: a mixed
    # policy's bfloat16 has no multi-worker gather kernel.
    features = keras.layers.Activation(
        "linear", dtype="float32", name="kft_features_float32"
    )(layers[0].input)
    extractor = keras.Model(model.input, features, name="kft_features")
    inputs = keras.Input(shape=features.shape[1:], name="features")
    outputs = inputs
    for layer in layers:
        outputs = layer(outputs)
    return extractor, keras.Model(inputs, outputs, name="kft_head")


def features(extractor, train_epochs, validation_data, batch_size, log):
    """(training Epochs, validation dataset) of the backbone's features,
    computed once with `extractor` (`split(model)[0]`)."""
    started = time.time()
    labels, values = distribute.predict(extractor, train_epochs.ordered)
    train = train_epochs.in_memory((values, labels))
    count, validation = len(labels), None
    if validation_data is not None:
        labels, values = distribute.predict(extractor, validation_data)
        count += len(labels)
        validation = train_epochs.in_memory_evaluation(
            (values, labels), batch_size
        )
    log(
        f"computed the backbone features of {count} examples in "
        f"{time.time() - started:.1f}s"
    )
    return train, validation
