"""Plain Keras peers: what a keras-hub or keras.applications user writes.

Text: `keras_hub.models.TextClassifier.from_preset(folder, num_classes=n)`
with its preprocessor at the case's sequence length (it pads every row to
that length and tokenizes inside `fit`), compiled with AdamW and otherwise
keras-hub's defaults (no XLA on a CPU). Images: a keras.applications model
with its top (`weights=None`), `image_dataset_from_directory`, the
family's `preprocess_input`, cached, and `fit`.
"""

import json
import time

import keras

from kft.bench.peers import measure

LEARNING_RATE = 5e-5


class StepClock(keras.callbacks.Callback):
    """Records time.perf_counter() at the end of each (group of) steps."""

    def __init__(self):
        super().__init__()
        self.ends = {}

    def on_train_batch_end(self, batch, logs=None):
        self.ends[batch + 1] = time.perf_counter()


def rates(clock, spec):
    return measure.step_rates(
        clock.ends,
        spec["warmup"],
        spec["steps"],
        spec["repeats"],
        spec["batch_size"],
    )


def _examples(path):
    with open(path) as file:
        examples = json.load(file)
    return examples["values"], examples["label_ids"], examples["num_classes"]


def _text_classifier(spec, num_classes):
    import keras_hub

    keras.utils.set_random_seed(spec["seed"])
    classifier = keras_hub.models.TextClassifier.from_preset(
        spec["model"], num_classes=num_classes
    )
    classifier.preprocessor.sequence_length = spec["length"]
    classifier.compile(
        optimizer=keras.optimizers.AdamW(LEARNING_RATE, weight_decay=0.01)
    )
    return classifier


def text_fixed(spec):
    import tensorflow as tf

    texts, labels, num_classes = _examples(spec["data"])
    classifier = _text_classifier(spec, num_classes)
    dataset = tf.data.Dataset.from_tensor_slices((texts, labels))
    dataset = dataset.batch(spec["batch_size"]).repeat()
    return _timed_fit(classifier, dataset, spec)


def text_epoch(spec):
    """Whole epochs of shuffled raw texts, every row padded to the case's
    sequence length; one warm-up epoch."""
    import tensorflow as tf

    texts, labels, num_classes = _examples(spec["data"])
    classifier = _text_classifier(spec, num_classes)
    seconds = []
    for epoch in range(1 + spec["repeats"]):
        started = time.perf_counter()
        dataset = tf.data.Dataset.from_tensor_slices((texts, labels))
        dataset = dataset.shuffle(len(texts), seed=spec["seed"] + epoch)
        classifier.fit(dataset.batch(spec["batch_size"]), epochs=1, verbose=0)
        seconds.append(time.perf_counter() - started)
    return {
        "rates": [len(texts) / s for s in seconds[1:]],
        "warmup_seconds": seconds[0],
    }


# keras.applications modules whose preprocess_input a plain user applies;
# the other families (EfficientNet, MobileNetV3, ConvNeXt) normalize inside.
PREPROCESS = {
    "ResNet50": "resnet50",
    "ResNet101": "resnet",
    "ResNet152": "resnet",
    "ResNet50V2": "resnet_v2",
    "ResNet101V2": "resnet_v2",
    "ResNet152V2": "resnet_v2",
    "MobileNetV2": "mobilenet_v2",
}


def images(spec):
    import tensorflow as tf

    keras.utils.set_random_seed(spec["seed"])
    name, size = spec["backbone"], spec["image_size"]
    model = getattr(keras.applications, name)(
        weights=None, input_shape=(size, size, 3), classes=spec["num_classes"]
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(LEARNING_RATE, weight_decay=0.01),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    dataset = keras.utils.image_dataset_from_directory(
        spec["folder"],
        image_size=(size, size),
        batch_size=spec["batch_size"],
        seed=spec["seed"],
        verbose=False,
    )
    if name in PREPROCESS:
        module = getattr(keras.applications, PREPROCESS[name])
        dataset = dataset.map(
            lambda x, y: (module.preprocess_input(x), y),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    dataset = dataset.cache().repeat().prefetch(tf.data.AUTOTUNE)
    return _timed_fit(model, dataset, spec)


def _timed_fit(model, dataset, spec):
    """One fit over warm-up and timed steps; the timed steps' rates."""
    clock = StepClock()
    model.fit(
        dataset,
        steps_per_epoch=spec["warmup"] + spec["steps"] * spec["repeats"],
        epochs=1,
        verbose=0,
        callbacks=[clock],
    )
    return {"rates": rates(clock, spec)}
