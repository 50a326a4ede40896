"""Training pieces of token classification: the masked loss and metrics.

Labels are int [batch, length] tag ids with -1 (`tokens.IGNORE`) where no
word starts (later word pieces, [CLS], [SEP], padding); the model gives
tag probabilities [batch, length, tags]. The loss is the cross-entropy
averaged over labelled positions only; `accuracy` and `macro_f1` count
those positions (tags, "O" included). Entity-level figures need whole
sentences, so they come at the end (kft/tasks/tokens/entities.py).
"""

import keras
from keras import ops

from kft.tasks.classification import metrics as evaluation


def _kept(labels):
    labels = ops.cast(labels, "int32")
    return ops.maximum(labels, 0), ops.cast(labels >= 0, "float32")


def loss(labels, probabilities):
    """Cross-entropy over labelled positions, averaged over them."""
    ids, kept = _kept(labels)
    each = keras.losses.sparse_categorical_crossentropy(ids, probabilities)
    return ops.sum(each * kept) / ops.maximum(ops.sum(kept), 1.0)


def _accuracy(labels, probabilities):
    ids, kept = _kept(labels)
    predicted = ops.cast(ops.argmax(probabilities, axis=-1), "int32")
    right = ops.cast(ops.equal(ids, predicted), "float32") * kept
    return ops.sum(right) / ops.maximum(ops.sum(kept), 1.0)


def accuracy():
    """Share of labelled positions whose tag is right."""
    return keras.metrics.MeanMetricWrapper(_accuracy, name="accuracy")


@keras.saving.register_keras_serializable(package="kft")
class TagMacroF1(evaluation.MacroF1):
    """Macro F1 over tags, counting labelled positions only."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        ids, kept = _kept(ops.reshape(y_true, (-1,)))
        probabilities = ops.reshape(y_pred, (-1, self.num_classes))
        predicted = ops.argmax(probabilities, axis=-1)
        actual = ops.one_hot(ids, self.num_classes, dtype="float32")
        actual = actual * kept[:, None]
        guessed = ops.one_hot(predicted, self.num_classes, dtype="float32")
        self.matrix.assign_add(ops.matmul(ops.transpose(actual), guessed))


def loss_and_metrics(num_tags):
    return loss, [accuracy(), TagMacroF1(num_tags)]
