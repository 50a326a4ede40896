"""Builds the functional model: inputs, backbone, pooling, head.

Image backbones are called with `training=False`, so BatchNorm keeps its
inference mode even when its layer is unfrozen (`trainable` is not
`training`; see the Keras transfer-learning guide). Text backbones have no
BatchNorm; by default (`backbone_dropout`) they follow the training phase so
their own dropout regularizes the fine-tune, as keras-hub's classifiers do
(a head-only phase trains on features computed once in inference mode:
kft/core/cached.py).
"""

import dataclasses
import os
import tempfile

import keras

from kft.core import compat, files, run_folder
from kft.core.errors import UserError
from kft.model import backbones, heads, preprocessing


@dataclasses.dataclass
class Built:
    """A model ready to compile, with the pieces freeze plans and data need.

    Args:
        model: the functional model; inputs as the data pipeline gives them.
        backbone: the backbone layer inside `model`.
        family: the backbone's `backbones.Family`.
        preprocessor: a `preprocessing.TextPreprocessor` for text
            (cleaning, tokenizer and packer), or None for images (their
            normalization is a layer of the model).
        image_size: the square image size the model takes (images only).
        unused: names of backbone layers whose outputs the head ignores
            (BERT's pooler under mean pooling); they stay frozen.
        resize: how images reach `image_size` (`data.RESIZE_MODES`); the
            export resizes served images the same way.
        pairs: whether text inputs are pairs of texts (`text_pair`).
        generator: the keras-hub CausalLM a causal_lm run generates with
            (None otherwise).
        head_layers: names of the head's layers on pooled features, in
            order (kft/core/cached.py trains them alone); () for models
            without such a head.
    """

    model: keras.Model
    backbone: keras.Model
    family: backbones.Family
    preprocessor: object = None
    image_size: int = 0
    unused: tuple = ()
    resize: str = "squash"
    pairs: bool = False
    generator: object = None
    head_layers: tuple = ()

    @property
    def modality(self):
        return self.family.modality


def load_backbone(config):
    """Returns (backbone, family, preprocessor, image_size) for the config."""
    source = backbones.resolve(config.backbone)
    if source.kind == "applications":
        entry = backbones.TABLE[source.name]
        size = config.data.image_size or entry.image_size
        weights = backbones.application_weights(config.weights)
        return entry.build(size, weights), entry.family, None, size
    backbone, family = backbones.load_hub_backbone(source)
    if family.modality == "text":
        preprocessor = _hub_text_preprocessor(
            source, backbone, config.data.clean_text
        )
        return backbone, family, preprocessor, 0
    size = config.data.image_size or 224
    return backbone, family, _hub_image_converter(source, size), size


def _hub_text_preprocessor(source, backbone, clean):
    length = getattr(backbone, "max_sequence_length", None) or 512
    return preprocessing.text_preprocessor(source.name, length, clean)


def _hub_image_converter(source, size):
    import keras_hub

    converter = keras_hub.layers.ImageConverter.from_preset(source.name)
    converter.image_size = (size, size)
    return converter


def build(config, num_outputs, head=heads.SOFTMAX, member=0):
    """Builds the model for `config`: the backbone, pooling and `head`
    (a `heads.Head`, which the task gives) with `num_outputs` units.
    `member` k > 0 of an ensemble gets a model name of its own."""
    backbone, family, preprocessor, size = load_backbone(config)
    if family.modality == "text":
        model = _text_model(backbone, num_outputs, config, head)
    else:
        if head.sequence:
            raise UserError(
                f"this task needs a text backbone; {config.backbone} takes "
                f"{family.modality}"
            )
        model = _image_model(
            backbone, family, preprocessor, size, num_outputs, config, head
        )
        preprocessor = None
    if member:
        model = keras.Model(model.input, model.output, name=f"member_{member}")
    unused = ()
    if family.modality == "text" and config.head.pooling != "pooled":
        unused = ("pooled_dense",)
    return Built(
        model,
        backbone,
        family,
        preprocessor,
        size,
        unused,
        config.data.resize,
        bool(config.data.text_pair_column) and family.modality == "text",
        head_layers=()
        if head.sequence
        else tuple(layer.name for layer in heads.head_layers(model)),
    )


def save_backbone(built, model_dir):
    """Saves the fine-tuned backbone where a next fine-tune can start from
    it; returns the path. A keras-hub model: a keras-hub preset folder,
    MODEL_DIR/backbone/ (the backbone and its tokenizer; a causal LM's
    whole task), which `--config.backbone` and keras-hub's `from_preset`
    take. A keras.applications model: its weights file,
    MODEL_DIR/checkpoints/backbone.weights.h5, which `--config.weights`
    takes with the same `--config.backbone`."""
    if not hasattr(built.backbone, "save_to_preset"):
        path = os.path.join(model_dir, run_folder.BACKBONE_FILE)
        built.backbone.save_weights(path)
        return path
    path = os.path.join(model_dir, run_folder.BACKBONE_DIR)
    if files.is_local(path):
        _save_preset(built, path)
        return path
    with tempfile.TemporaryDirectory() as scratch:  # gs://: written, copied
        _save_preset(built, scratch)
        files.copy_tree(scratch, path)
    return path


def _save_preset(built, folder):
    if built.generator is not None:
        built.generator.save_to_preset(folder)
        return
    built.backbone.save_to_preset(folder)
    inner = getattr(built.preprocessor, "inner", None)
    tokenizer = getattr(inner, "tokenizer", None)
    if tokenizer is not None:
        tokenizer.save_to_preset(folder)
    for layer in built.model.layers:  # a keras-hub image converter
        if layer is not built.backbone and hasattr(layer, "save_to_preset"):
            layer.save_to_preset(folder)


def rebuild(config, num_outputs, weights, head=heads.SOFTMAX):
    """The model of a finished run: built as its `config` says (an
    ensemble of `config.ensemble` members), with the run's `weights` file
    loaded in place of the pretrained ones."""
    config.weights = "none"
    built = build(config, num_outputs, head)
    if built.modality == "text":
        built.preprocessor.sequence_length = config.data.sequence_length
    if config.ensemble > 1:
        others = [
            build(config, num_outputs, head, member)
            for member in range(1, config.ensemble)
        ]
        built = ensemble(built, others)
    built.model.load_weights(weights)
    return built


def ensemble(first, others):
    """`first` (a Built) with a model that averages the outputs of its
    model and the `others`' models on the same inputs."""
    members = [first.model] + [other.model for other in others]
    inputs = first.model.input
    if isinstance(inputs, dict):
        inputs = {
            name: keras.Input(
                shape=tensor.shape[1:], dtype=tensor.dtype, name=name
            )
            for name, tensor in inputs.items()
        }
    else:
        inputs = keras.Input(
            shape=inputs.shape[1:], dtype=inputs.dtype, name=inputs.name
        )
    outputs = keras.layers.Average(name="ensemble_average", dtype="float32")(
        [member(inputs) for member in members]
    )
    model = keras.Model(inputs, outputs, name="kft_ensemble")
    return dataclasses.replace(first, model=model)


def _call(backbone, inputs, training):
    """Calls `backbone` in the functional model; `training=False` holds.

    Keras 3 functional models hand the outer call's `training` to every
    layer they hold, over the value a layer was called with when the
    model was built (keras/src/models/functional.py, `operation_fn`), so
    a backbone called with training=False would still run its dropout in
    `fit`. Without "training" among its call-context arguments the
    backbone keeps the False it was called with.
    """
    if training is False:
        compat.keep_training_argument(backbone)
    return backbone(inputs, training=training)


def _text_model(backbone, num_outputs, config, head):
    # === Inputs ===
    inputs = {
        name: keras.Input(shape=(None,), dtype=tensor.dtype, name=name)
        for name, tensor in backbone.input.items()
    }
    # === Functional Model ===
    # training=None follows fit/predict: dropout on while training only.
    outputs = _call(
        backbone, inputs, None if config.backbone_dropout else False
    )
    if head.sequence:  # an output per position: no pooling
        features = heads.sequence_output(outputs)
    else:
        try:
            features = heads.pool_text(
                outputs, inputs["padding_mask"], config.head.pooling
            )
        except ValueError as error:
            raise UserError(f"--config.head.pooling: {error}") from None
    outputs = heads.head(features, num_outputs, config.head, head)
    return keras.Model(inputs, outputs, name="kft_text_model")


def _image_model(backbone, family, converter, size, num_outputs, config, head):
    # === Inputs ===
    images = keras.Input(shape=(size, size, 3), name="image")
    # === Functional Model ===
    # Images arrive as RGB in [0, 255]; normalizing happens in the graph so
    # the exported model takes the same raw pixels.
    if converter is not None:
        x = converter(images)
    else:
        normalize = heads.ImageNormalization(family.normalization)
        x = normalize(images)
    # train_batchnorm lets BatchNorm update its statistics too (training
    # from scratch); otherwise they stay the pretrained ones.
    features = _call(backbone, x, None if config.train_batchnorm else False)
    if len(features.shape) == 4:
        try:
            features = heads.pool_image(features, config.head.pooling)
        except ValueError as error:
            raise UserError(f"--config.head.pooling: {error}") from None
    outputs = heads.head(features, num_outputs, config.head, head)
    return keras.Model(images, outputs, name="kft_image_model")
