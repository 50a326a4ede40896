"""Every backbone of the table: build tiny, fit one step, save and reload.

keras.applications entries: every entry's own data (constructor, family,
normalization, default size) is checked against keras.applications without
building (`test_table_entry`). The full check (random weights on 32x32
images, block regex, one fit step, save, reload with safe_mode) runs by
default for one representative per keras.applications module, the cheapest
measured; the other entries share its code, hence its layer names.
The full check of every entry (about 15 minutes on 2 CPU cores) is opt-in:

    KFT_FULL_SWEEP=1 pytest -q tests/test_backbones.py

keras-hub text families are built as 2-layer models with tiny vocabularies,
saved as local presets and loaded through the same path as a user's folder.
"""

import os
import sys

import keras
import numpy as np
import pytest

from kft import config as config_lib
from kft.core import freeze
from kft.core.errors import UserError
from kft.model import backbones, builder, heads
from kft.serving import export
from kft.tasks.classification.task import TASK as CLASSIFICATION


def _check_fit_and_reload(built, inputs, labels, tmp_path):
    """One fit step changes the weights; a saved model predicts the same."""
    model = built.model
    phase = freeze.Phase("full", 1, ("head", "all"), 1e-3)
    freeze.apply_phase(built, phase, built.family.block_pattern)
    config = config_lib.default_config()
    # Random deep CNNs give huge features (EfficientNetV2L: ~1e3); a small,
    # clipped step keeps one update finite.
    optimizer = keras.optimizers.SGD(learning_rate=1e-4, global_clipnorm=1.0)
    CLASSIFICATION.compile(model, optimizer, config, 3)
    # Any trainable variable may carry the change: random networks give
    # features near 0 (EfficientNet) or saturated softmaxes (EfficientNetV2L).
    before = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    model.fit(inputs, labels, batch_size=len(labels), epochs=1, verbose=0)
    after = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    assert any(not np.array_equal(b, a) for b, a in zip(before, after))
    assert all(np.isfinite(a).all() for a in after)
    expected = np.asarray(model.predict(inputs, verbose=0))
    assert expected.shape == (len(labels), 3)
    np.testing.assert_allclose(expected.sum(axis=-1), 1.0, rtol=1e-5)
    path = str(tmp_path / "model.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path, compile=False, safe_mode=True)
    got = np.asarray(reloaded.predict(inputs, verbose=0))
    np.testing.assert_allclose(got, expected, atol=1e-5)


# The cheapest entry of each keras.applications module (measured on CPU).
REPRESENTATIVES = [
    "ConvNeXtTiny",
    "EfficientNetB0",
    "EfficientNetV2B0",
    "MobileNetV2",
    "MobileNetV3Small",
    "ResNet50",
    "ResNet50V2",
]
FULL_SWEEP = os.environ.get("KFT_FULL_SWEEP") == "1"


def _module(name):
    """The keras.applications module that defines the constructor `name`."""
    return sys.modules[getattr(keras.applications, name).__module__]


def _keras_default_size(name, monkeypatch):
    """The input size keras builds `name` at, read without building it.

    The constructor is stopped where it asks imagenet_utils for its input
    shape, before it makes any layer.
    """
    from keras.src.applications import imagenet_utils

    class Asked(Exception):
        pass

    def ask(input_shape, default_size, **kwargs):
        raise Asked(default_size)

    monkeypatch.setattr(imagenet_utils, "obtain_input_shape", ask)
    with pytest.raises(Asked) as asked:
        getattr(keras.applications, name)(weights=None)
    return asked.value.args[0]


@pytest.mark.parametrize("name", sorted(backbones.TABLE))
def test_table_entry(name, monkeypatch):
    """The entry's own data agrees with keras.applications."""
    entry = backbones.TABLE[name]
    module = _module(entry.name)
    # The family's normalization is the module's preprocess_input.
    images = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3))
    images = images.astype("float32")
    expected = module.preprocess_input(images.copy())
    got = heads.ImageNormalization(entry.family.normalization)(images)
    np.testing.assert_allclose(np.asarray(got), expected, atol=1e-4)
    # Same code, same family: the representative's full check covers it.
    same_code = [rep for rep in REPRESENTATIVES if _module(rep) is module]
    assert len(same_code) == 1, "one representative per module"
    assert entry.family is backbones.TABLE[same_code[0]].family
    if module.__name__.endswith("mobilenet_v3"):
        # MobileNetV3 takes any size; its ImageNet weights are 224.
        assert entry.image_size == 224
    else:
        assert entry.image_size == _keras_default_size(entry.name, monkeypatch)


@pytest.mark.parametrize(
    "name", sorted(backbones.TABLE) if FULL_SWEEP else REPRESENTATIVES
)
def test_application_backbone(name, tmp_path):
    keras.utils.set_random_seed(0)  # the same random weights every run
    config = config_lib.default_config()
    config.backbone = name
    config.weights = "none"
    config.data.image_size = 32
    built = builder.build(config, 3)
    assert built.modality == "image"
    groups = freeze.block_groups(built.backbone, built.family.block_pattern)
    assert len(groups) >= 4, "the table's block regex finds the blocks"
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3))
    _check_fit_and_reload(
        built, images.astype("float32"), np.array([0, 2]), tmp_path
    )


def _save_hub_text(family, folder):
    """Saves a tiny backbone of `family` with a tiny tokenizer as a preset."""
    import keras_hub
    from conftest import VOCAB

    models = keras_hub.models
    sizes = dict(
        num_layers=2,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=32,
    )
    if family == "BertBackbone":
        backbone = models.BertBackbone(len(VOCAB), **sizes)
        tokenizer = models.BertTokenizer(vocabulary=VOCAB)
    elif family == "DistilBertBackbone":
        backbone = models.DistilBertBackbone(len(VOCAB), **sizes)
        tokenizer = models.DistilBertTokenizer(vocabulary=VOCAB)
    elif family == "ElectraBackbone":
        backbone = models.ElectraBackbone(
            vocab_size=len(VOCAB), embedding_dim=8, **sizes
        )
        tokenizer = models.ElectraTokenizer(vocabulary=VOCAB)
    elif family == "RobertaBackbone":
        vocab = {
            "<s>": 0,
            "<pad>": 1,
            "</s>": 2,
            "<unk>": 3,
            "<mask>": 4,
            "Ġgood": 5,
            "Ġbad": 6,
            "good": 7,
            "Ġ": 8,
            "g": 9,
            "o": 10,
            "d": 11,
            "b": 12,
            "a": 13,
            "Ġg": 14,
            "Ġb": 15,
            "oo": 16,
        }
        merges = ["Ġ g", "Ġ b", "o o", "Ġg oo", "Ġgoo d", "Ġb a", "Ġba d"]
        vocab |= {"Ġgoo": 17, "Ġba": 18}
        backbone = models.RobertaBackbone(len(vocab), **sizes)
        tokenizer = models.RobertaTokenizer(vocabulary=vocab, merges=merges)
    elif family == "DebertaV3Backbone":
        proto = _sentencepiece(["[PAD]", "[CLS]", "[SEP]", "[MASK]"])
        backbone = models.DebertaV3Backbone(12, **sizes)
        tokenizer = models.DebertaV3Tokenizer(proto=proto)
    elif family == "AlbertBackbone":
        proto = _sentencepiece(["<pad>", "[CLS]", "[SEP]", "[MASK]"])
        backbone = models.AlbertBackbone(
            12,
            embedding_dim=8,
            num_groups=2,
            num_inner_repetitions=1,
            **sizes,
        )
        tokenizer = models.AlbertTokenizer(proto=proto)
    else:
        raise AssertionError(family)
    backbone.save_to_preset(str(folder))
    tokenizer.save_to_preset(str(folder))


def _sentencepiece(specials):
    """A 12-piece word-level SentencePiece model with the given specials."""
    import io

    import sentencepiece

    pad, bos, eos, mask = specials
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(["good movie", "bad movie is the", "fine"]),
        model_writer=model,
        vocab_size=12,
        model_type="WORD",
        pad_id=0,
        bos_id=1,
        eos_id=2,
        unk_id=3,
        pad_piece=pad,
        bos_piece=bos,
        eos_piece=eos,
        unk_piece="<unk>",
        user_defined_symbols=mask,
        minloglevel=3,
    )
    return model.getvalue()


TEXT_FAMILIES = [
    "BertBackbone",
    "DistilBertBackbone",
    "ElectraBackbone",
    "RobertaBackbone",
]


@pytest.mark.parametrize("family", TEXT_FAMILIES)
def test_hub_text_backbone(family, tmp_path):
    folder = tmp_path / "preset"
    _save_hub_text(family, folder)
    config = config_lib.default_config()
    config.backbone = str(folder)
    built = builder.build(config, 3)
    assert built.modality == "text"
    assert backbones.HUB_FAMILIES[type(built.backbone).__name__] is built.family
    groups = freeze.block_groups(built.backbone, built.family.block_pattern)
    assert len(groups) == 3, "embeddings, then one group per layer"
    built.preprocessor.sequence_length = 16
    packed = built.preprocessor(["good movie", "bad"])
    inputs = {k: np.asarray(v) for k, v in packed.items()}
    _check_fit_and_reload(built, inputs, np.array([0, 2]), tmp_path)
    # Each family's tokenizer and packer go into the serving graph alike.
    sample = ["good movie", "", "bad is the movie " * 20]
    _, figures = export.export(
        built, ["a", "b", "c"], str(tmp_path / "export"), sample, log=print
    )
    assert figures["max_abs_difference"] <= 1e-5


@pytest.mark.parametrize(
    "name,message",
    [
        ("ResNet51", "did you mean"),
        ("", "no backbone given"),
        ("/no/such/folder/x", "backbone folder /no/such/folder/x does not"),
        ("bert_tiny_en_uncasd", "unknown backbone"),
    ],
)
def test_unknown_backbone_is_a_user_error(name, message):
    with pytest.raises(UserError, match=message):
        backbones.resolve(name)


def test_local_weights_file_round_trip(tmp_path):
    """Weights kft saved load back through the same path as `imagenet`."""
    config = config_lib.default_config()
    config.backbone = "MobileNetV2"
    config.weights = "none"
    config.data.image_size = 32
    first = builder.build(config, 2)
    path = str(tmp_path / "backbone.weights.h5")
    first.backbone.save_weights(path)
    config.weights = path
    second = builder.build(config, 2)
    for a, b in zip(first.backbone.weights, second.backbone.weights):
        np.testing.assert_array_equal(np.array(a), np.array(b))
    config.weights = str(tmp_path / "missing.weights.h5")
    with pytest.raises(UserError, match="weights file not found"):
        builder.build(config, 2)
