"""Every Keras, keras-hub and TensorFlow internal kft relies on, in one place.

Each function here reaches a private name that no public API offers; the
rest of kft calls these and never touches a private attribute of a
library object. When an upgrade moves one, tests/test_compat.py fails on
the function that broke, and this file is the only one to mend.
`CHECKED_WITH` names the versions they were last checked against (the
newest that setup.cfg allows).
"""

import keras

CHECKED_WITH = {
    "keras": "3.15.1",
    "keras_hub": "0.32.0",
    "tensorflow": "2.21.0",
}


# === Layers ===


def flatten_layers(layer, include_self=False, recursive=True):
    """Every layer inside `layer`, nested ones included. Keras' public
    `.layers` lists only the top level of a model."""
    return list(
        layer._flatten_layers(include_self=include_self, recursive=recursive)
    )


def direct_sublayers(layer):
    """The layers `layer` holds directly ([] for a leaf such as Dense);
    public only on models, as `.layers`."""
    return list(layer._layers)


def lora_base_kernel(layer):
    """The frozen base kernel of a LoRA-enabled Dense or EinsumDense
    (keras' `enable_lora` keeps it apart from the adapters)."""
    return layer._kernel


def keep_training_argument(backbone):
    """Makes `backbone` keep the `training` value it is called with.

    Keras 3 functional models hand the outer call's `training` to every
    layer whose call-context arguments include it, over the value the
    layer was called with when the model was built
    (keras/src/models/functional.py, `operation_fn`).
    """
    backbone._call_context_args = backbone._call_context_args - {"training"}


# === Optimizers ===


def adam_slots(optimizer, variable):
    """(first moment, second moment) variables of Keras' Adam or AdamW for
    `variable`."""
    index = optimizer._get_variable_index(variable)
    return optimizer._momentums[index], optimizer._velocities[index]


def averages(optimizer):
    """The moving averages an optimizer made with `use_ema` keeps, one per
    variable it was built on, in that order."""
    return optimizer._model_variables_moving_average


def ema_pairs(optimizer):
    """(variable, its moving average) for every variable `optimizer`
    updates; [] without `use_ema`."""
    if not (optimizer.use_ema and optimizer.built):
        return []
    return list(zip(optimizer._trainable_variables, averages(optimizer)))


# === The TensorFlow backend's einsum ===


def tf_backend_numpy():
    """Keras' TensorFlow backend numpy module, whose `einsum` every
    EinsumDense calls (kft/model/kernels.py replaces it)."""
    from keras.src.backend.tensorflow import numpy as tf_numpy

    return tf_numpy


def convert_to_tensor(value):
    return tf_backend_numpy().convert_to_tensor(value)


# === keras-hub packers ===


def replace_packer_trim(packer, trim):
    """Makes a keras-hub MultiSegmentPacker cut segments with `trim(inputs,
    sequence_length=None)` instead of TF Text's RoundRobinTrimmer (an
    instance attribute over the class's method)."""
    packer._trim_inputs_tf = trim


def restore_packer_trim(packer):
    if packer is not None and "_trim_inputs_tf" in vars(packer):
        del packer._trim_inputs_tf


# === tf.data ===


def serialized_graph(dataset):
    """The GraphDef bytes of a tf.data pipeline (to find Python ops)."""
    return dataset._as_serialized_graph().numpy()


def backend_is_tensorflow():
    return keras.backend.backend() == "tensorflow"
