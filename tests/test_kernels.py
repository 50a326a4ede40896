"""kft/model/kernels.py: matmul-shaped einsums folded into one 2-D matmul."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from kft.model import kernels

SPLITS = [
    ("abc,cde->abde", 1),  # attention query/key/value projection
    ("abcd,cde->abe", 2),  # attention output projection
    ("abc,cd->abd", 1),
    ("btd,dnh->btnh", 1),
    ("ab,bc->ac", 1),
    ("abc,dce->abde", None),  # kernel axes out of order
    ("aecd,abcd->acbe", None),  # attention scores: a batch axis shared
    ("abc,cd->adb", None),  # output reordered
    ("abc,cd->ab", None),  # a kernel axis summed away
    ("...c,cd->...d", None),
    ("abc->acb", None),
]


@pytest.mark.parametrize("subscripts, expected", SPLITS)
def test_matmul_split(subscripts, expected):
    assert kernels.matmul_split(subscripts) == expected


FOLDED = [
    ("abc,cde->abde", (3, 5, 8), (8, 2, 4)),
    ("abcd,cde->abe", (3, 5, 2, 4), (2, 4, 8)),
    ("abc,cd->abd", (3, 5, 8), (8, 6)),
    ("abcd,de->abce", (2, 3, 4, 5), (5, 7)),
]


@pytest.mark.parametrize("subscripts, x_shape, kernel_shape", FOLDED)
def test_folded_einsum_matches_einsum_and_its_gradients(
    subscripts, x_shape, kernel_shape
):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=x_shape), tf.float32)
    kernel = tf.Variable(rng.normal(size=kernel_shape).astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        folded = kernels.folded_einsum(subscripts, x, kernel)
        plain = tf.einsum(subscripts, x, kernel)
        folded_sum = tf.reduce_sum(folded * folded)
        plain_sum = tf.reduce_sum(plain * plain)
    assert folded.shape == plain.shape
    np.testing.assert_allclose(folded, plain, rtol=1e-5, atol=1e-5)
    for target in (x, kernel):
        np.testing.assert_allclose(
            tape.gradient(folded_sum, target),
            tape.gradient(plain_sum, target),
            rtol=1e-4,
            atol=1e-4,
        )


def test_folded_einsum_keeps_an_unknown_batch_size():
    kernel = tf.ones((8, 2, 4))
    traced = tf.function(
        lambda x: kernels.folded_einsum("abc,cde->abde", x, kernel)
    ).get_concrete_function(tf.TensorSpec([None, 5, 8], tf.float32))
    assert traced.output_shapes.as_list() == [None, 5, 2, 4]
    assert (
        kernels.folded_einsum(
            "abc,cd->abd", tf.ones((2, 3, 4)), tf.ones((5, 6))
        )
        is None
    )


@pytest.mark.parametrize(
    "x, kernel",
    [
        (tf.ones((2, 3, 4), tf.int32), tf.ones((4, 5), tf.int32)),
        (tf.ones((2, 3, 4), tf.float32), tf.ones((4, 5), tf.float16)),
        (tf.ones((3, 4), tf.float32), tf.ones((4, 5), tf.float32)),
    ],
)
def test_folded_einsum_leaves_other_operands_to_keras(x, kernel):
    assert kernels.folded_einsum("abc,cd->abd", x, kernel) is None
    assert kernels.folded_einsum("ab,bc->ac", x, kernel) is None


def _op_types(model, inputs):
    graph = (
        tf.function(lambda: model(inputs, training=True))
        .get_concrete_function()
        .graph
    )
    return [op.type for op in graph.get_operations()]


def _bert_inputs():
    return {
        "token_ids": tf.constant([[2, 5, 6, 7, 3, 0]] * 2),
        "segment_ids": tf.zeros((2, 6), tf.int32),
        "padding_mask": tf.constant([[True] * 5 + [False]] * 2),
    }


def test_fold_folds_bert_projections_and_keeps_outputs(tiny_bert):
    import keras_hub

    backbone = keras_hub.models.Backbone.from_preset(tiny_bert)
    layers = backbone.get_config()["num_layers"]
    inputs = _bert_inputs()
    plain_ops = _op_types(backbone, inputs)
    plain = backbone(inputs, training=False)["sequence_output"]
    # Query, key, value and output projections of every layer.
    assert kernels.fold(backbone) == 4 * layers
    assert kernels.fold(backbone) == 0  # a second fold changes nothing
    folded_ops = _op_types(backbone, inputs)
    folded = backbone(inputs, training=False)["sequence_output"]
    # Left as batched matmuls: attention scores and their weighted sum.
    assert folded_ops.count("BatchMatMulV2") == 2 * layers
    assert plain_ops.count("BatchMatMulV2") == 6 * layers
    np.testing.assert_allclose(folded, plain, rtol=1e-5, atol=1e-6)
    assert kernels.unfold(backbone) == 4 * layers
    assert _op_types(backbone, inputs).count("BatchMatMulV2") == 6 * layers


def test_fold_keeps_gradients(tiny_bert):
    """Training through a folded backbone: the same gradients as the plain
    layers."""
    import keras_hub

    backbone = keras_hub.models.Backbone.from_preset(tiny_bert)
    inputs = _bert_inputs()

    def gradients():
        with tf.GradientTape() as tape:
            out = backbone(inputs, training=False)["sequence_output"]
            loss = tf.reduce_sum(out * out)
        return tape.gradient(loss, backbone.trainable_variables)

    plain = gradients()
    assert kernels.fold(backbone) > 0
    folded = gradients()
    assert [g is None for g in folded] == [g is None for g in plain]
    for got, want in zip(folded, plain):
        if want is None:  # a weight the sequence output does not use
            continue
        np.testing.assert_allclose(
            tf.convert_to_tensor(got), tf.convert_to_tensor(want), atol=1e-5
        )


def test_kft_leaves_keras_einsum_and_other_models_alone(tiny_bert, tiny_gpt2):
    """`import kft`, and kft loading a backbone, change neither Keras's
    einsum nor a model of the user's: only kft's own backbone is folded.
    In a fresh process, so that no other test's install is in the way."""
    script = f"""
import keras
from keras.src.backend.tensorflow import numpy as tf_numpy
keras_einsum = tf_numpy.einsum
import kft, kft.run, kft.model.backbones, kft.model.builder
assert tf_numpy.einsum is keras_einsum, "import kft replaced Keras' einsum"
from kft.model import backbones, kernels
source = backbones.resolve({tiny_bert!r})
ours, _ = backbones.load_hub_backbone(source)
assert tf_numpy.einsum is keras_einsum, "loading replaced Keras' einsum"
from kft.core import compat
folded = [x for x in compat.flatten_layers(ours) if kernels.is_folded(x)]
assert len(folded) == 8, len(folded)
theirs = keras.Sequential([keras.Input((5, 8)), keras.layers.EinsumDense(
    "abc,cd->abd", output_shape=(None, 4))])
layer = theirs.layers[0]
assert not kernels.is_folded(layer) and "call" not in vars(layer)
from kft.tasks.causal_lm import generation
lm = generation.load_causal_lm({tiny_gpt2!r})
assert tf_numpy.einsum is keras_einsum, "a causal LM replaced Keras' einsum"
assert any(kernels.is_folded(x) for x in compat.flatten_layers(lm))
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.stdout.strip().endswith("ok"), result.stderr[-3000:]
