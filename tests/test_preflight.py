"""The TPU preflight rejects, one line each, what would not run on a TPU."""

import pytest
import tensorflow as tf

from kft import config as config_lib
from kft.core import preflight
from kft.core.errors import UserError


def _config(**data):
    config = config_lib.default_config()
    config.strategy = "tpu"
    config.tpu = "grpc://10.0.0.2:8470"
    config.data.train = "gs://bucket/train.csv"
    for key, value in data.items():
        config.data[key] = value
    return config


@pytest.mark.parametrize(
    "data, model_dir, words",
    [
        ({}, "/home/me/run", ["--model_dir=/home/me/run is local"]),
        ({"train": "reviews.csv"}, "gs://b/run", ["data.train=reviews.csv"]),
        ({"test": "/data/t.csv"}, "gs://b/run", ["data.test=/data/t.csv"]),
        (
            {"train": "tfds:glue/sst2:train"},
            "gs://b/run",
            ["data.tfds_data_dir", "gs://"],
        ),
    ],
)
def test_local_paths_are_rejected_for_a_remote_tpu(data, model_dir, words):
    with pytest.raises(UserError) as error:
        preflight.check_paths(_config(**data), model_dir)
    message = str(error.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_remote_paths_and_tpu_vms_pass():
    tfds = _config(train="tfds:glue/sst2:train", tfds_data_dir="gs://b/tfds")
    preflight.check_paths(tfds, "gs://b/run")
    local = _config(train="reviews.csv")
    local.tpu = "local"  # a TPU VM reads its own disk
    preflight.check_paths(local, "/home/me/run")


def test_dynamic_text_shapes_are_rejected():
    with pytest.raises(UserError, match="text_shapes=dynamic"):
        preflight.check_config(_config(text_shapes="dynamic"))
    preflight.check_config(_config(text_shapes="auto"))


def _batches(drop_remainder=True):
    images = tf.zeros([10, 4, 4, 3])
    dataset = tf.data.Dataset.from_tensor_slices((images, tf.range(10)))
    return dataset.batch(4, drop_remainder=drop_remainder)


def test_datasets_with_dynamic_shapes_or_python_are_rejected():
    preflight.check_dataset(_batches(), "training")
    with pytest.raises(UserError, match="dynamic shape"):
        preflight.check_dataset(_batches(drop_remainder=False), "training")
    # Varying lengths pass where only the batch must be fixed (text).
    ragged = _batches().map(lambda x, y: (x[:, : tf.reduce_max(y)], y))
    with pytest.raises(UserError, match="dynamic shape"):
        preflight.check_dataset(ragged, "training")
    preflight.check_dataset(ragged, "training", static="batch")
    python = _batches().map(
        lambda x, y: (tf.py_function(lambda v: v * 2, [x], tf.float32), y)
    )
    with pytest.raises(UserError, match="calls Python") as error:
        preflight.check_dataset(python, "validation", static="none")
    assert "\n" not in str(error.value)
    numpy = _batches().map(
        lambda x, y: (x, tf.numpy_function(lambda v: v, [y], tf.int32))
    )
    with pytest.raises(UserError, match="calls Python"):
        preflight.check_dataset(numpy, "training", static="none")
