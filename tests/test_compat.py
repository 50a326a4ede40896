"""Each library internal of kft/core/compat.py still does what kft needs, on the
installed Keras, keras-hub and TensorFlow: an upgrade that moves one fails
here, by name, rather than somewhere deep in a run."""

import importlib.metadata

import keras
import numpy as np
import pytest
import tensorflow as tf

from kft.core import compat


def _model():
    inputs = keras.Input((4,))
    inner = keras.Sequential([keras.layers.Dense(3), keras.layers.Dense(2)])
    return keras.Model(inputs, inner(inputs)), inner


def test_checked_with_names_the_installed_libraries():
    for name in compat.CHECKED_WITH:
        assert importlib.metadata.version(name.replace("_", "-"))


def test_flatten_layers_reaches_nested_layers():
    model, inner = _model()
    layers = compat.flatten_layers(model)
    assert inner in layers
    assert all(layer in layers for layer in inner.layers)
    assert model not in layers
    assert model in compat.flatten_layers(model, include_self=True)


def test_direct_sublayers():
    _, inner = _model()
    assert set(inner.layers) <= set(compat.direct_sublayers(inner))
    assert compat.direct_sublayers(inner.layers[0]) == []


def test_lora_base_kernel_is_the_frozen_kernel():
    layer = keras.layers.Dense(3)
    layer.build((None, 4))
    layer.enable_lora(2)
    kernel = compat.lora_base_kernel(layer)
    assert tuple(kernel.shape) == (4, 3)
    assert not kernel.trainable


def test_keep_training_argument():
    class Noisy(keras.layers.Layer):
        def call(self, x, training=None):
            return x + (1.0 if training else 0.0)

    inputs = keras.Input((2,))
    noisy = keras.Sequential([Noisy()])
    compat.keep_training_argument(noisy)
    model = keras.Model(inputs, noisy(inputs, training=False))
    ones = np.ones((1, 2), "float32")
    np.testing.assert_array_equal(model(ones, training=True), ones)


def test_adam_slots_are_the_moments():
    variable = keras.Variable(np.ones(3, "float32"))
    optimizer = keras.optimizers.AdamW(learning_rate=0.1)
    optimizer.build([variable])
    optimizer.apply([tf.constant([1.0, 2.0, 3.0])], [variable])
    momentum, velocity = compat.adam_slots(optimizer, variable)
    np.testing.assert_allclose(momentum, [0.1, 0.2, 0.3], rtol=1e-6)
    np.testing.assert_allclose(velocity, [0.001, 0.004, 0.009], rtol=1e-5)


def test_ema_pairs_are_each_variable_and_its_average():
    first = keras.Variable(np.ones(3, "float32"))
    second = keras.Variable(np.zeros(2, "float32"))
    optimizer = keras.optimizers.SGD(learning_rate=1.0, use_ema=True)
    assert compat.ema_pairs(optimizer) == []  # not built yet
    optimizer.apply([tf.ones(3), tf.ones(2)], [first, second])
    pairs = compat.ema_pairs(optimizer)
    assert [variable for variable, _ in pairs] == [first, second]
    # Keras' first step copies the weights into their averages.
    for variable, average in pairs:
        np.testing.assert_array_equal(variable, average)
    assert compat.averages(optimizer) == [average for _, average in pairs]
    assert compat.ema_pairs(keras.optimizers.SGD()) == []


def test_the_backend_einsum_is_the_one_layers_call(monkeypatch):
    calls = []
    numpy_module = compat.tf_backend_numpy()
    plain = numpy_module.einsum

    def spy(*args, **kwargs):
        calls.append(args[0])
        return plain(*args, **kwargs)

    monkeypatch.setattr(numpy_module, "einsum", spy)
    layer = keras.layers.EinsumDense("ab,bc->ac", output_shape=3)
    layer(np.ones((2, 4), "float32"))
    assert calls == ["ab,bc->ac"]


def test_packer_trim_is_replaced_and_restored():
    keras_hub = pytest.importorskip("keras_hub")
    packer = keras_hub.layers.MultiSegmentPacker(
        sequence_length=6, start_value=1, end_value=2
    )
    segments = (tf.ragged.constant([[5, 5, 5, 5]]),)

    def first_token(inputs, sequence_length=None, **_):
        return [segment[:, :1] for segment in inputs]

    def packed():  # in a graph, where serving runs it
        return tf.function(lambda: packer(segments)[0])().numpy().tolist()

    compat.replace_packer_trim(packer, first_token)
    assert packed() == [[1, 5, 2, 0, 0, 0]]
    compat.restore_packer_trim(packer)
    assert packed() == [[1, 5, 5, 5, 5, 2]]


def test_serialized_graph_lists_python_ops():
    dataset = tf.data.Dataset.range(3).map(
        lambda x: tf.py_function(lambda y: y, [x], tf.int64)
    )
    graph = tf.compat.v1.GraphDef.FromString(compat.serialized_graph(dataset))
    ops = [node.op for node in graph.node]
    ops += [n.op for f in graph.library.function for n in f.node_def]
    assert "EagerPyFunc" in ops
