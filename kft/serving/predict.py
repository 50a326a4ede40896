"""Running an export's signature on raw inputs, as kft-predict and
`kft.load(...).predict` do: only TensorFlow (and tensorflow_text, for
text exports) is used, so the SavedModel alone answers, as TF Serving
would.

`signature` picks `serving_default`, or a causal LM's `generate`;
`answers` runs a batch (one bad input spoils only its own answer); `line`
turns one answer into what kft-predict prints: `label`, `class_id` and
`probabilities` (classification); `labels` and `probabilities`
(multilabel); `score` (regression); `entities` (tokens); `answer`,
`start`, `end` and `score` (qa); `generated` (causal LM).
"""

import os

from kft.core import files
from kft.core.errors import UserError

# Input names of exports that answer a class or label per input.
CLASS_INPUTS = ({"image_bytes"}, {"text"}, {"text", "text_pair"})


def input_names(serve):
    """The signature's input names, sorted (`text`, `text_pair`)."""
    return sorted(serve.structured_input_signature[1])


def label_names(path):
    """The export's labels in output order (assets/labels.txt); [] for an
    export without them (a NER export keeps its tags under another name)."""
    labels_file = os.path.join(path, "assets", "labels.txt")
    if not files.exists(labels_file):
        return []
    return files.read_text(labels_file).splitlines()


def signature(loaded, path):
    """The signature kft-predict runs: `serving_default`, or a causal
    LM's `generate`."""
    for name in ("serving_default", "generate"):
        if name in loaded.signatures:
            return loaded.signatures[name]
    names = ", ".join(sorted(loaded.signatures)) or "none"
    raise UserError(
        f"{path} has no serving_default or generate signature ({names})"
    )


def answers(serve, names, values, is_image):
    """Outputs for a batch; one bad image spoils only its own answer."""
    import tensorflow as tf

    def load(value):
        return tf.io.read_file(value) if is_image else tf.constant(value)

    try:
        if len(names) > 1:  # text pairs: one tensor per input
            columns = list(zip(*values))
            inputs = {n: tf.constant(c) for n, c in zip(names, columns)}
        else:
            inputs = {names[0]: tf.stack([load(v) for v in values])}
        out = serve(**inputs)
        return [
            {name: out[name][i].numpy() for name in out}
            for i in range(len(values))
        ]
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as error:
        if len(values) == 1:
            return [{"error": _reason(error, is_image)}]
    return [
        answer
        for value in values
        for answer in answers(serve, names, [value], is_image)
    ]


def _reason(error, is_image):
    """What went wrong with one input, in words (TensorFlow's own message
    starts with its graph's node names)."""
    import tensorflow as tf

    if isinstance(error, tf.errors.NotFoundError):
        return "file not found"
    if is_image:
        return "not a readable image (empty, cut off, or not an image)"
    lines = [line for line in error.message.splitlines() if line.strip()]
    return (lines[0] if lines else type(error).__name__)[:300]


def _shown(value, inputs):
    """The input as a line shows it: the value, a text pair as a list,
    named inputs (a question and its context) as an object."""
    if not isinstance(value, tuple):
        return value
    if set(inputs) in CLASS_INPUTS:
        return list(value)
    return dict(zip(inputs, value))


def line(value, answer, names, inputs=("text",)):
    """One output line; `names` are the export's labels, in output order,
    `inputs` the signature's input names."""
    shown = {"input": _shown(value, inputs)}
    if "error" in answer:
        return shown | answer
    if "num_entities" in answer:  # a token-classification (NER) export
        return shown | {"entities": _entities(answer)}
    if "answer" in answer:  # extractive QA: the span and its offsets
        return shown | {
            "answer": answer["answer"].decode("utf-8"),
            "start": int(answer["start"]),
            "end": int(answer["end"]),
            "score": round(float(answer["score"]), 6),
        }
    if "text" in answer:  # a causal LM's generate: the prompt continued
        return shown | {"generated": answer["text"].decode("utf-8", "replace")}
    if "score" in answer:  # regression
        shown["score"] = round(float(answer["score"]), 6)
    elif "decisions" in answer:  # multilabel: the labels at their thresholds
        decisions = answer["decisions"]
        shown["labels"] = [n for n, d in zip(names, decisions) if d]
    else:
        shown |= {
            "label": answer["label"].decode("utf-8"),
            "class_id": int(answer["class_id"]),
        }
    if "probabilities" in answer:
        shown["probabilities"] = [
            round(float(p), 6) for p in answer["probabilities"]
        ]
    return shown


def _entities(answer):
    """The spans of one text: type, character offsets, text and score."""
    return [
        {
            "type": answer["entity_type"][i].decode("utf-8"),
            "start": int(answer["start"][i]),
            "end": int(answer["end"][i]),
            "text": answer["entity_text"][i].decode("utf-8"),
            "score": round(float(answer["score"][i]), 6),
        }
        for i in range(int(answer["num_entities"]))
    ]
