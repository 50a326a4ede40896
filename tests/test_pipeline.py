"""The tf.data pipelines: resize modes, augmentation, seeds, bucket shapes."""

import numpy as np
import pytest
import tensorflow as tf

from kft import data
from kft.core.errors import UserError
from kft.data import augment
from kft.tasks.classification.task import TASK as CLASSIFICATION


def _png(height, width, level=200):
    pixels = np.full((height, width, 3), level, np.uint8)
    return tf.io.encode_png(pixels).numpy()


def _split(values, labels):
    return data.Split("train", "memory", values, np.array(labels, np.int32))


def _images(count=12, size=16):
    rng = np.random.default_rng(0)
    values = [
        tf.io.encode_png(
            rng.integers(0, 255, (size, size, 3)).astype(np.uint8)
        ).numpy()
        for _ in range(count)
    ]
    return _split(values, [i % 3 for i in range(count)])


@pytest.mark.parametrize("mode", data.RESIZE_MODES)
def test_decode_image_modes_give_fixed_uint8(mode):
    image = data.decode_image(_png(20, 40), 16, mode)
    assert image.shape == (16, 16, 3) and image.dtype == tf.uint8


def test_pad_keeps_aspect_and_fills_black():
    image = data.decode_image(_png(20, 40), 16, "pad").numpy()
    assert (image[:4] == 0).all() and (image[-4:] == 0).all()
    assert (image[5:11] == 200).all()


def test_crop_keeps_aspect_without_borders():
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :8] = 255  # a white band cropped away by the center square
    image = data.decode_image(tf.io.encode_png(pixels), 16, "crop").numpy()
    assert image.max() == 0
    squashed = data.decode_image(tf.io.encode_png(pixels), 16).numpy()
    assert squashed.max() == 255


@pytest.mark.parametrize("name", list(augment.OPS))
def test_augmentation_keeps_shape_dtype_range_and_seed(name):
    image = tf.random.stateless_uniform([16, 16, 3], [1, 2], 0.0, 255.0)
    seed = tf.constant([3, 4], tf.int64)
    out = augment.OPS[name](image, seed)
    assert out.shape == image.shape and out.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(out)) <= float(tf.reduce_max(out))
    assert float(tf.reduce_max(out)) <= 255.0 + 1e-3
    np.testing.assert_array_equal(out, augment.OPS[name](image, seed))
    changed = [
        not np.allclose(augment.OPS[name](image, [3, s]), image)
        for s in range(8)
    ]
    assert any(changed)


def test_negative_mixing_alpha_is_a_user_error():
    from kft import config as config_lib
    from kft import run

    config = config_lib.default_config()
    config.data.cutmix = -1.0
    with pytest.raises(UserError, match="data.cutmix"):
        run.check_choices(config)


def test_unknown_augmentation_is_a_user_error():
    assert augment.parse("true") == ["flip"]
    assert augment.parse(" flip, color ") == ["flip", "color"]
    with pytest.raises(UserError, match="valid: a comma list of flip"):
        augment.parse("flip,blur")


@pytest.mark.parametrize("mix", [augment.mixup, augment.cutmix])
def test_mixing_gives_label_shares_summing_to_one(mix):
    images = tf.random.stateless_uniform([8, 16, 16, 3], [1, 2], 0.0, 255.0)
    labels = tf.one_hot(tf.range(8) % 3, 3)
    mixed, shares = mix(images, labels, 1.0, tf.constant([5, 6]))
    assert mixed.shape == images.shape
    np.testing.assert_allclose(tf.reduce_sum(shares, -1), 1.0, rtol=1e-6)
    assert not np.allclose(shares, labels)


def _batches(split, training, seed, epoch=0, **options):
    dataset = data.image_batches(
        split, 16, 4, training, seed, num_classes=3, **options
    )
    if training:
        dataset = dataset.dataset(epoch, epoch + 1)
    return [(x.numpy(), y.numpy()) for x, y in dataset]


def test_augmentation_and_mixing_only_on_training_data():
    split = _images()
    options = dict(augment=list(augment.OPS), mixup=0.4, cutmix=1.0)
    plain = _batches(split, False, 0)
    evaluated = _batches(split, False, 0, **options)
    for (x, y), (x2, y2) in zip(plain, evaluated, strict=True):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
        assert y.dtype == np.int32
    trained = _batches(split, True, 0, **options)
    assert trained[0][1].shape == (4, 3) and trained[0][0].dtype == np.float32


def test_same_seed_same_order_and_augmentation():
    split = _images()
    options = dict(augment=["flip", "crop", "color"], mixup=0.4)
    first = _batches(split, True, 7, **options)
    again = _batches(split, True, 7, **options)
    other = _batches(split, True, 8, **options)
    for (x, y), (x2, y2) in zip(first, again, strict=True):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(first[0][0], other[0][0])
    next_epoch = _batches(split, True, 7, epoch=1, **options)
    assert not np.array_equal(first[0][0], next_epoch[0][0])


def test_an_epoch_is_the_same_alone_after_others_or_resumed():
    """Epoch e's batches depend on (seed, e) only: read alone, after the
    epochs before it, or from a step in the middle (a resumed run)."""
    split = _images()
    epochs = data.image_batches(
        split,
        16,
        4,
        True,
        3,
        augment=["flip", "crop"],
        mixup=0.4,
        num_classes=3,
    )
    steps = epochs.steps()
    assert steps == 3
    run = [x.numpy() for x, _ in epochs.dataset(0, 3)]
    assert len(run) == 3 * steps
    alone = [x.numpy() for x, _ in epochs.dataset(2, 3)]
    resumed = [x.numpy() for x, _ in epochs.dataset(1, 3, skip=2)]
    for got, expected in zip(alone, run[2 * steps :], strict=True):
        np.testing.assert_array_equal(got, expected)
    for got, expected in zip(resumed, run[steps + 2 :], strict=True):
        np.testing.assert_array_equal(got, expected)


def test_same_seed_same_text_order(tiny_bert, text_csv):
    import keras_hub

    preprocessor = keras_hub.models.TextClassifierPreprocessor.from_preset(
        tiny_bert, sequence_length=32
    )
    texts = [" ".join(["good"] * (i % 20 + 1)) for i in range(60)]
    split = _split(texts, [i % 3 for i in range(60)])

    def order(seed, epochs=1, first=0):
        batches = data.text_batches(split, preprocessor, 8, True, seed)
        return [
            [y.numpy().tolist() for _, y in batches.dataset(e, e + 1)]
            for e in range(first, first + epochs)
        ]

    first, second = order(3, epochs=2)
    assert [first, second] == order(3, epochs=2)
    assert first != second  # reshuffled every epoch
    assert [second] == order(3, first=1)  # epoch 1 without epoch 0 first
    assert order(3) != order(4)


def test_fixed_lengths():
    assert data.fixed_lengths(128) == [16, 32, 64, 128]
    assert data.fixed_lengths(200) == [16, 32, 64, 128, 200]
    assert data.fixed_lengths(8) == [8]


@pytest.mark.parametrize(
    "fixed, allowed", [(False, {16, 32, 48, 64}), (True, {16, 32, 64})]
)
def test_text_batch_shapes_stay_in_their_set(tiny_bert, fixed, allowed):
    import keras_hub

    preprocessor = keras_hub.models.TextClassifierPreprocessor.from_preset(
        tiny_bert, sequence_length=64
    )
    texts = [" ".join(["good"] * (i % 60 + 1)) for i in range(120)]
    split = _split(texts, [i % 3 for i in range(120)])
    lengths = set()
    for drop in (False, True):
        dataset = data.text_batches(
            split, preprocessor, 8, True, 0, fixed, drop_remainder=drop
        ).dataset(0, 2)
        for inputs, _ in dataset:
            mask = inputs["padding_mask"].numpy()
            width = mask.shape[1]
            smaller = max([a for a in allowed if a < width], default=0)
            assert smaller < mask.sum(axis=1).max() <= width
            lengths.add(mask.shape[1])
            assert not drop or mask.shape[0] == 8
    assert lengths == allowed


def test_soft_labels_train_with_class_weight_and_metrics():
    import keras
    import ml_collections

    from kft.tasks.classification import metrics as evaluation

    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, activation="softmax")]
    )
    config = ml_collections.ConfigDict(
        {"label_smoothing": 0.1, "jit_compile": False, "steps_per_execution": 1}
    )
    CLASSIFICATION.compile(model, "adam", config, 3)
    features = np.random.default_rng(0).normal(size=(16, 4))
    shares = np.tile([[0.7, 0.3, 0.0]], (16, 1)).astype("float32")
    history = model.fit(
        features, shares, batch_size=8, class_weight={0: 2.0, 1: 1.0, 2: 1.0}
    )
    assert np.isfinite(history.history["loss"]).all()
    predicted = model.predict(features, verbose=0).argmax(-1)
    expected = float(np.mean(predicted == 0))
    results = model.evaluate(features, shares, return_dict=True, verbose=0)
    assert results["accuracy"] == pytest.approx(expected)
    sparse = model.evaluate(
        features, np.zeros(16, "int32"), return_dict=True, verbose=0
    )
    assert sparse["accuracy"] == pytest.approx(expected)
    assert sparse["macro_f1"] == pytest.approx(results["macro_f1"])
    metric = evaluation.MacroF1(3)
    metric.update_state(shares[:2], np.eye(3, dtype="float32")[[0, 1]])
    # Class 0's F1 2/3, class 1's 0 (predicted, never true); class 2,
    # neither, is not averaged.
    assert float(metric.result()) == pytest.approx((2 / 3) / 2)


@pytest.mark.parametrize("drop", [False, True])
def test_text_batches_are_full_and_of_similar_lengths(tiny_bert, drop):
    """As `group_by_length`: every batch full but a group's last, and the
    rows of a batch close in length (texts of 1 to 60 words, shuffled)."""
    import keras_hub

    preprocessor = keras_hub.models.TextClassifierPreprocessor.from_preset(
        tiny_bert, sequence_length=64
    )
    words = np.random.default_rng(0).permutation(
        [i % 60 + 1 for i in range(100)]
    )
    split = _split([" ".join(["good"] * n) for n in words], [0] * 100)
    epochs = data.text_batches(
        split, preprocessor, 8, True, 0, drop_remainder=drop
    )
    sizes, spans = [], []
    for inputs, _ in epochs.dataset(0, 1):
        rows = inputs["padding_mask"].numpy().sum(axis=1)
        sizes.append(len(rows))
        spans.append(rows.max() - rows.min())
    assert sorted(sizes) == ([] if drop else [4]) + [8] * 12
    assert epochs.steps() == len(sizes)
    assert max(spans) <= 8, spans


def test_what_keras_iterates_runs_without_tf_datas_autotuning(tiny_bert):
    """tf.data's autotuning thread sleeps in a loop that the end of each
    iterator waits out (up to 15 s at the end of a fit or evaluate, in
    TF 2.21), and kft calls fit and evaluate once per epoch: the datasets
    kft hands to Keras have it off."""
    import keras_hub

    preprocessor = keras_hub.models.TextClassifierPreprocessor.from_preset(
        tiny_bert, sequence_length=32
    )
    texts = _split(["good film", "bad"] * 4, [0, 1] * 4)
    images = _images()
    handed = [
        data.text_batches(texts, preprocessor, 4, True, 0).dataset(0, 1),
        data.text_batches(texts, preprocessor, 4, False, 0),
        data.image_batches(images, 16, 4, True, 0).dataset(0, 2, skip=1),
        data.image_batches(images, 16, 4, False, 0),
    ]
    for dataset in handed:
        assert dataset.options().autotune.enabled is False
    assert tf.data.Dataset.range(3).options().autotune.enabled is not False
