"""The layers kft puts on top of a backbone: pooling and a Dense head.

The head computes in float32 even under mixed precision, so the softmax and
the loss keep their precision.
"""

import dataclasses

import keras
from keras import ops


@dataclasses.dataclass(frozen=True)
class Head:
    """What a task puts on the backbone (each task gives its own).

    Args:
        activation: of the output Dense (softmax, sigmoid, linear).
        sequence: an output at every position (tagging), no pooling.
        finish: a layer applied to the output Dense's result (regression's
            target scaling), or None.
    """

    activation: str = "softmax"
    sequence: bool = False
    finish: object = None


@keras.saving.register_keras_serializable(package="kft")
class MaskedMeanPooling(keras.layers.Layer):
    """Averages token vectors over the positions where the mask is true."""

    def call(self, sequence, mask):
        weights = ops.cast(ops.expand_dims(mask, -1), sequence.dtype)
        total = ops.sum(sequence * weights, axis=1)
        count = ops.maximum(ops.sum(weights, axis=1), 1.0)
        return total / count


@keras.saving.register_keras_serializable(package="kft")
class FirstToken(keras.layers.Layer):
    """Takes the first token's vector ([CLS] in BERT-style models)."""

    def call(self, sequence):
        return sequence[:, 0, :]


@keras.saving.register_keras_serializable(package="kft")
class ImageNormalization(keras.layers.Layer):
    """A keras.applications family's `preprocess_input`, inside the graph.

    Takes RGB images with values in [0, 255]. Modes: "caffe" (BGR minus the
    ImageNet mean), "tf" (to [-1, 1]), "torch" (ImageNet mean and std) and
    "none" (the backbone normalizes inside, as EfficientNet does).
    """

    def __init__(self, mode="none", **kwargs):
        super().__init__(**kwargs)
        self.mode = mode

    def call(self, images):
        images = ops.cast(images, self.compute_dtype)
        if self.mode == "caffe":
            mean = ops.convert_to_tensor([103.939, 116.779, 123.68])
            return ops.flip(images, axis=-1) - ops.cast(mean, images.dtype)
        if self.mode == "tf":
            return images / 127.5 - 1.0
        if self.mode == "torch":
            mean = ops.convert_to_tensor([0.485, 0.456, 0.406])
            std = ops.convert_to_tensor([0.229, 0.224, 0.225])
            mean = ops.cast(mean, images.dtype)
            return (images / 255.0 - mean) / ops.cast(std, images.dtype)
        return images

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def pool_text(outputs, padding_mask, pooling):
    """Reduces a text backbone's outputs to one vector per example."""
    if isinstance(outputs, dict):
        sequence = outputs["sequence_output"]
        pooled = outputs.get("pooled_output")
    else:
        sequence, pooled = outputs, None
    if pooling in ("auto", "mean"):
        return MaskedMeanPooling(name="mean_pool")(sequence, padding_mask)
    if pooling == "cls":
        return FirstToken(name="cls_pool")(sequence)
    if pooling == "pooled":
        if pooled is None:
            raise ValueError("this backbone has no pooled output")
        return pooled
    raise ValueError(f"unknown pooling '{pooling}'")


def sequence_output(outputs):
    """The per-position vectors [batch, length, hidden] of a backbone."""
    return outputs["sequence_output"] if isinstance(outputs, dict) else outputs


def pool_image(features, pooling):
    if pooling in ("auto", "avg"):
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")(features)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name="max_pool")(features)
    raise ValueError(f"unknown pooling '{pooling}'")


# The layers `head` makes, in order; the first takes the pooled features.
HEAD_LAYERS = ("head_dropout_0", "head_hidden", "head_dropout", "head_output")


def head_layers(model):
    """The head's layers of a model `head` built, in order: from its first
    layer on pooled features to the last (a task's `finish` included)."""
    layers = model.layers
    for index, layer in enumerate(layers):
        if layer.name in HEAD_LAYERS:
            return layers[index:]
    return []


# Classification's head: a softmax over classes.
SOFTMAX = Head()


def head(features, num_outputs, head_config, spec=SOFTMAX):
    """Dropout, an optional hidden Dense, then the output Dense in float32
    with `spec`'s activation (and its `finish` layer after it)."""
    x = features
    if head_config.hidden_units:
        x = keras.layers.Dropout(head_config.dropout, name="head_dropout_0")(x)
        x = keras.layers.Dense(
            head_config.hidden_units,
            activation=head_config.hidden_activation,
            name="head_hidden",
        )(x)
    x = keras.layers.Dropout(head_config.dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(
        num_outputs,
        activation=spec.activation,
        dtype="float32",
        name="head_output",
    )(x)
    if spec.finish is not None:
        return spec.finish()(outputs)
    return outputs
