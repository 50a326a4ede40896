"""Faster TensorFlow kernels for the einsums keras-hub models are made of.

Attention projections in keras-hub (Keras `EinsumDense`: "abc,cde->abde"
for query, key and value, "abcd,cde->abe" for the output) reach TensorFlow
as a batched matmul of a [batch, length, width] tensor by a kernel
broadcast over the batch. On CPU that kernel loops over the batch with
small matrices and ran about 4x slower per FLOP than one 2-D matmul of
the same work (MiniLM, batch 32, length 64: 495 ms of BatchMatMulV2 in a
forward pass against 235 ms of MatMul for twice the FLOPs). `install()`
makes Keras's TensorFlow einsum fold every such contraction (the trailing
axes of the input against the leading axes of the kernel, in order) into
reshapes around a single 2-D matmul: the same sum, reshaped, so results
agree to float rounding; gradients are the matmul's own. Other einsums
(attention scores, integer or mixed-dtype operands) go to Keras as before.

Measured with `python tools/profile_text_step.py` (kft's own train step,
alternating folded and plain in one process).
"""

import math

from kft.core import compat

_PLAIN = None


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


def install():
    """Folds matmul-shaped einsums in Keras's TensorFlow backend (once;
    nothing on other backends)."""
    global _PLAIN
    if _PLAIN is not None or not compat.backend_is_tensorflow():
        return
    tf_numpy = compat.tf_backend_numpy()
    plain = tf_numpy.einsum

    def einsum(subscripts, *operands, **kwargs):
        if len(operands) == 2 and not kwargs:
            x, kernel = (tf_numpy.convert_to_tensor(o) for o in operands)
            folded = folded_einsum(subscripts, x, kernel)
            if folded is not None:
                return folded
        return plain(subscripts, *operands, **kwargs)

    _PLAIN = plain
    tf_numpy.einsum = einsum


def uninstall():
    """Puts Keras's own einsum back (for measuring the difference)."""
    global _PLAIN
    if _PLAIN is None:
        return
    compat.tf_backend_numpy().einsum = _PLAIN
    _PLAIN = None
