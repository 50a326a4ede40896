"""Faster TensorFlow kernels for the einsums keras-hub models are made of.

Attention projections in keras-hub (Keras `EinsumDense`: "abc,cde->abde"
for query, key and value, "abcd,cde->abe" for the output) reach TensorFlow
as a batched matmul of a [batch, length, width] tensor by a kernel
broadcast over the batch. On CPU that kernel loops over the batch with
small matrices and ran about 4x slower per FLOP than one 2-D matmul of
the same work (MiniLM, batch 32, length 64: 495 ms of BatchMatMulV2 in a
forward pass against 235 ms of MatMul for twice the FLOPs). `fold(model)`
makes the EinsumDense layers of one model, kft's own, fold every such
contraction (the trailing axes of the input against the leading axes of
the kernel, in order) into reshapes around a single 2-D matmul: the same
sum, reshaped, so results agree to float rounding; gradients are the
matmul's own. Other einsums (attention scores, integer or mixed-dtype
operands) run as Keras runs them. Nothing process-wide changes: Keras's
einsum, and every model kft did not load, stay as they are (a notebook's
other models, the plain Keras peer of kft-benchmark).

Measured with `python tools/profile_text_step.py` (kft's own train step,
alternating folded and plain in one process).
"""

import math

from kft.core import compat


def matmul_split(subscripts):
    """k where `subscripts` contracts the input's last k axes with the
    kernel's first k and keeps the rest in order, else None."""
    text = subscripts.replace(" ", "")
    if "->" not in text or "." in text or text.count(",") != 1:
        return None
    inputs, out = text.split("->")
    lhs, rhs = inputs.split(",")
    for k in range(min(len(lhs), len(rhs)), 0, -1):
        if (
            lhs[-k:] == rhs[:k]
            and out == lhs[:-k] + rhs[k:]
            and len(set(lhs + rhs)) == len(lhs) + len(rhs) - k
        ):
            return k
    return None


def folded_einsum(subscripts, x, kernel):
    """`subscripts` of `x` and `kernel` as one 2-D matmul, or None where
    the contraction is not of that form or shapes are not static enough."""
    import tensorflow as tf

    k = matmul_split(subscripts)
    if k is None or x.shape.rank is None or x.shape.rank - k < 2:
        return None
    if x.dtype != kernel.dtype or not x.dtype.is_floating:
        return None
    inner = kernel.shape[:k]
    outer = kernel.shape[k:]
    if None in inner or None in outer or list(x.shape[-k:]) != list(inner):
        return None
    width = math.prod(inner)
    flat = tf.matmul(
        tf.reshape(x, [-1, width]), tf.reshape(kernel, [width, -1])
    )
    dynamic = tf.shape(x)
    leading = [
        size if size is not None else dynamic[axis]
        for axis, size in enumerate(x.shape[:-k])
    ]
    return tf.reshape(flat, leading + list(outer))


def fold(model):
    """Makes the plain EinsumDense layers of `model` (and of the layers
    in it) compute matmul-shaped contractions as one 2-D matmul; returns
    how many layers it changed. Only these layer instances change: each
    gets a `call` of its own (EinsumDense's: the einsum, then bias and
    activation), so a model kft did not fold runs as before. Quantized
    layers and subclasses with their own `call` are left alone; a second
    fold changes nothing. Nothing on other backends."""
    if not compat.backend_is_tensorflow():
        return 0
    folded = 0
    for layer in compat.flatten_layers(model, include_self=True):
        if _foldable(layer):
            layer.call = _folded_call(layer)
            folded += 1
    return folded


def unfold(model):
    """Gives `model`'s folded layers back EinsumDense's own `call` (for
    measuring the difference); returns how many it changed."""
    unfolded = 0
    for layer in compat.flatten_layers(model, include_self=True):
        if getattr(vars(layer).get("call"), "kft_folded", False):
            del layer.call
            unfolded += 1
    return unfolded


def is_folded(layer):
    return getattr(vars(layer).get("call"), "kft_folded", False)


def _foldable(layer):
    import keras

    return (
        isinstance(layer, keras.layers.EinsumDense)
        and type(layer).call is keras.layers.EinsumDense.call
        and getattr(layer, "quantization_mode", None) is None
        and not is_folded(layer)
    )


def _folded_call(layer):
    """EinsumDense.call of `layer` with its einsum folded where it can be
    (the kernel read as EinsumDense reads it, LoRA's update included)."""
    from keras import ops

    plain = layer.call

    def call(inputs, training=None):
        folded = folded_einsum(
            layer.equation,
            compat.convert_to_tensor(inputs),
            compat.convert_to_tensor(layer.kernel),
        )
        if folded is None:
            return plain(inputs, training=training)
        if layer.bias is not None:
            folded = ops.add(folded, layer.bias)
        if layer.activation is not None:
            folded = layer.activation(folded)
        return folded

    call.kft_folded = True
    return call
