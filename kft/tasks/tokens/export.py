"""SavedModel export of a token-classification (NER) run.

`serving_default` takes raw `text` (`tf.string [None]`) and, in plain
TensorFlow ops plus the tokenizer's TF Text op:

1. splits each text into words at white space (what Python's
   `str.split()` counts as white space), keeping each word's character
   offsets (Unicode code points, so `text[start:end]` in Python is the
   word);
2. packs the words as training did (`tokens.encode_words`: first word
   pieces carry the prediction; words past the sequence length get none
   and count as "O");
3. takes each word's tag probabilities at its first piece, the argmax tag,
   and finds entities as seqeval's default mode does (`entities.entities`),
   vectorized.

Outputs, one row per text, padded to the most entities in the batch:
`entity_type` (`tf.string [None, M]`, "" as padding), `start` and `end`
(`int64 [None, M]`, character offsets, end exclusive, -1 as padding),
`score` (`float32 [None, M]`, the mean over the entity's words of the
chosen tag's probability, 0 as padding), `entity_text` (the substring),
and `num_entities` (`int64 [None]`).

`export` writes, checks and publishes `BASE/<N>/` as kft/serving/export.py does
for classifiers; the check runs the SavedModel in a fresh process that
imports only `tensorflow` and `tensorflow_text` and compares its entities
with those `entities.decode` finds from the Keras model's probabilities.
"""

import json
import os
import re
import tempfile

import keras
import numpy as np
import tensorflow as tf

from kft.core.errors import ExportError
from kft.model import preprocessing
from kft.serving import check as fresh
from kft.serving import parity, publish
from kft.tasks.tokens import data as tokens
from kft.tasks.tokens import entities

# The serving signature's outputs, as the check expects them.
OUTPUTS = (
    "entity_type",
    "start",
    "end",
    "score",
    "entity_text",
    "num_entities",
)
PREFIX_CODES = {"O": 0, "B": 1, "I": 2, "E": 3, "S": 4}


# === The graph ===


def split_words(text):
    """White-space words of `text` [N]: (ragged words, starts, ends)."""
    chars = tf.strings.unicode_split(text, "UTF-8")
    flat = chars.flat_values
    rows = chars.value_rowids()
    index = tf.range(tf.size(flat, out_type=tf.int64)) - tf.gather(
        chars.row_splits, rows
    )
    space = tf.strings.regex_full_match(flat, preprocessing.WHITE_SPACE)
    previous_space = tf.concat([[True], space[:-1]], axis=0) | (index == 0)
    begins = ~space & previous_space
    word_ids = tf.cumsum(tf.cast(begins, tf.int64)) - 1
    count = tf.reduce_sum(tf.cast(begins, tf.int64))
    kept = ~space
    ids = word_ids[kept]
    words = tf.strings.unsorted_segment_join(flat[kept], ids, count)
    starts = tf.math.unsorted_segment_min(index[kept], ids, count)
    ends = tf.math.unsorted_segment_max(index[kept], ids, count) + 1
    word_rows = tf.math.unsorted_segment_min(rows[kept], ids, count)
    nrows = tf.shape(text, out_type=tf.int64)[0]

    def ragged(values):
        return tf.RaggedTensor.from_value_rowids(values, word_rows, nrows)

    return ragged(words), ragged(starts), ragged(ends)


def _chunk_ends(prefix, kind, next_prefix, next_kind):
    """entities._chunk_end of (word, next word), vectorized on codes."""
    O, B, I, E, S = range(5)  # noqa: E741, N806
    inside = (prefix == B) | (prefix == I)
    return (
        (prefix == E)
        | (prefix == S)
        | (
            inside
            & ((next_prefix == B) | (next_prefix == S) | (next_prefix == O))
        )
        | ((prefix != O) & (kind != next_kind))
    )


def _chunk_starts(prefix, kind, previous_prefix, previous_kind):
    """entities._chunk_start of (previous word, word), vectorized."""
    O, B, I, E, S = range(5)  # noqa: E741, N806
    after = (
        (previous_prefix == E) | (previous_prefix == S) | (previous_prefix == O)
    )
    return (
        (prefix == B)
        | (prefix == S)
        | (after & ((prefix == E) | (prefix == I)))
        | ((prefix != O) & (previous_kind != kind))
    )


def decode_entities(
    tag_ids, best, word_rows, first_in_row, last_in_row, labels
):
    """Entity spans over flat words: (rows, first, last, type, score).

    Args:
        tag_ids: int32 [W] chosen tag per word (all texts back to back).
        best: float32 [W] the chosen tag's probability.
        word_rows: int64 [W] each word's text.
        first_in_row, last_in_row: bool [W].
        labels: the tag names in id order.
    """
    split = [entities.split_tag(tag) for tag in labels]
    types = sorted({kind for _, kind in split if kind})
    prefix = tf.gather([PREFIX_CODES[p] for p, _ in split], tag_ids)
    kind = tf.gather([types.index(k) if k else -1 for _, k in split], tag_ids)
    outside = tf.zeros_like(prefix)
    previous_prefix = tf.where(first_in_row, outside, tf.roll(prefix, 1, 0))
    previous_kind = tf.where(first_in_row, outside - 1, tf.roll(kind, 1, 0))
    next_prefix = tf.where(last_in_row, outside, tf.roll(prefix, -1, 0))
    next_kind = tf.where(last_in_row, outside - 1, tf.roll(kind, -1, 0))
    starts = _chunk_starts(prefix, kind, previous_prefix, previous_kind)
    ends = _chunk_ends(prefix, kind, next_prefix, next_kind)
    end_positions = tf.where(ends)[:, 0]
    first = tf.where(starts)[:, 0]
    rank = tf.cumsum(tf.cast(ends, tf.int64), exclusive=True)
    last = tf.gather(end_positions, tf.gather(rank, first))
    # Sums per entity, not differences of a running sum: over a batch of
    # texts that loses float32 precision (1e-5 at a few thousand words).
    count = tf.size(first, out_type=tf.int64)
    entity = tf.cumsum(tf.cast(starts, tf.int64)) - 1  # the latest opened
    entity = tf.where(entity >= 0, entity, count)
    index = tf.range(tf.size(best, out_type=tf.int64))
    inside = index <= tf.gather(tf.concat([last, [-1]], 0), entity)
    entity = tf.where(inside, entity, count)
    sums = tf.math.unsorted_segment_sum(best, entity, count + 1)[:count]
    score = sums / tf.cast(last - first + 1, tf.float32)
    names = tf.gather(
        tf.constant(types + [""], tf.string), tf.gather(kind, first)
    )
    return tf.gather(word_rows, first), first, last, names, score


def serve_entities(model, tokenizer, labels, sequence_length, text):
    """The `serving_default` outputs for raw `text` [N]."""
    words, word_starts, word_ends = split_words(text)
    inputs, positions = tokens.encode_words(tokenizer, words, sequence_length)
    inputs = {
        name: tf.cast(inputs[name], model.input[name].dtype)
        for name in model.input
    }
    probabilities = tf.cast(model(inputs, training=False), tf.float32)
    rows = tf.cast(positions.value_rowids(), tf.int64)
    flat = positions.flat_values
    indices = tf.stack([tf.cast(rows, tf.int32), tf.maximum(flat, 0)], axis=1)
    word_probabilities = tf.gather_nd(probabilities, indices)
    tag_ids = tf.argmax(word_probabilities, axis=-1, output_type=tf.int32)
    truncated = flat < 0
    tag_ids = tf.where(truncated, 0, tag_ids)  # no piece left: "O"
    best = tf.where(truncated, 1.0, tf.reduce_max(word_probabilities, axis=-1))
    splits = tf.cast(positions.row_splits, tf.int64)
    index = tf.range(tf.size(flat, out_type=tf.int64))
    first_in_row = index == tf.gather(splits, rows)
    last_in_row = index == tf.gather(splits, rows + 1) - 1
    entity_rows, first, last, names, score = decode_entities(
        tag_ids, best, rows, first_in_row, last_in_row, labels
    )
    start = tf.gather(word_starts.flat_values, first)
    end = tf.gather(word_ends.flat_values, last)
    substrings = tf.strings.substr(
        tf.gather(text, entity_rows), start, end - start, unit="UTF8_CHAR"
    )
    nrows = tf.shape(text, out_type=tf.int64)[0]

    def padded(values, fill):
        ragged = tf.RaggedTensor.from_value_rowids(values, entity_rows, nrows)
        return ragged.to_tensor(default_value=fill)

    return {
        "entity_type": padded(names, ""),
        "start": padded(start, tf.constant(-1, tf.int64)),
        "end": padded(end, tf.constant(-1, tf.int64)),
        "score": padded(score, 0.0),
        "entity_text": padded(substrings, ""),
        "num_entities": tf.cast(
            tf.math.bincount(
                tf.cast(entity_rows, tf.int32),
                minlength=tf.cast(nrows, tf.int32),
                maxlength=tf.cast(nrows, tf.int32),
            ),
            tf.int64,
        ),
    }


def write_saved_model(built, labels, path):
    """Writes the token-classification SavedModel of `built` to `path`."""
    tokenizer = tokens.tokenizer_of(built.preprocessor)
    length = built.preprocessor.sequence_length
    word_pieces = tokens.word_pieces(tokenizer, tf.constant(["a"]))
    del word_pieces  # a first call builds the tokenizer (kft-export)
    archive = keras.export.ExportArchive()
    archive.track(tokenizer)

    def serve(text):
        return serve_entities(built.model, tokenizer, labels, length, text)

    with fresh.quiet():
        archive.add_endpoint(
            fresh.SERVING,
            serve,
            [tf.TensorSpec([None], tf.string, name="text")],
        )
        archive.write_out(path, verbose=False)


# === The check ===

_CHECK_SCRIPT = """
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer ops)

path, inputs_file = sys.argv[1:3]
texts = json.loads(open(inputs_file).read())
serve = tf.saved_model.load(path).signatures["serving_default"]
out = serve(text=tf.constant(texts, tf.string))
result = {key: value.numpy().tolist() for key, value in out.items()}
for key in ("entity_type", "entity_text"):
    result[key] = [[v.decode("utf-8") for v in row] for row in result[key]]
inputs = {k: [v.dtype.name, v.shape.as_list()]
          for k, v in serve.structured_input_signature[1].items()}
modules = sorted(m for m in ("keras", "keras_hub", "kft") if m in sys.modules)
print(json.dumps({"outputs": result, "inputs": inputs, "imported": modules}))
"""


def _served(path, texts):
    with tempfile.TemporaryDirectory() as scratch:
        inputs_file = os.path.join(scratch, "inputs.json")
        with open(inputs_file, "w", encoding="utf-8") as file:
            json.dump(texts, file)
        return fresh.run_script(_CHECK_SCRIPT, [path, inputs_file])


def keras_entities(built, labels, texts):
    """Per text [(type, start, end, score)] from the Keras model.

    Also returns, per text, whether two tags of a word tie (within
    `parity.tolerance()`), where either answer is right.
    """
    words = [text.split() for text in texts]
    offsets = [[m.span() for m in re.finditer(r"\S+", t)] for t in texts]
    split = tokens.TokenSplit(
        "check", "", words, [["O"] * len(w) for w in words]
    )
    tokenizer = tokens.tokenizer_of(built.preprocessor)
    length = built.preprocessor.sequence_length
    inputs, labels_array = tokens.encode_split(split, tokenizer, ["O"], length)
    probabilities = np.asarray(built.model.predict_on_batch(inputs), np.float32)
    allowed = parity.tolerance()
    found, ties = [], []
    for row, spans in enumerate(offsets):
        kept = labels_array[row] >= 0
        word_probabilities = np.zeros((len(spans), len(labels)), np.float32)
        word_probabilities[:, 0] = 1.0
        word_probabilities[: kept.sum()] = probabilities[row][kept]
        top2 = np.sort(word_probabilities, axis=-1)[:, -2:]
        ties.append(bool(np.any(top2[:, 1] - top2[:, 0] < allowed)))
        _, entity_spans = entities.decode(word_probabilities, labels)
        found.append(
            [
                (kind, spans[first][0], spans[last][1], score)
                for kind, first, last, score in entity_spans
            ]
        )
    return found, ties


def check(path, built, labels, texts):
    """Compares the SavedModel's entities with the Keras model's."""
    report = _served(path, texts)
    served = report["outputs"]
    expected, ties = keras_entities(built, labels, texts)
    mismatches, difference = 0, 0.0
    allowed = parity.tolerance()
    for row, want in enumerate(expected):
        count = served["num_entities"][row]
        got = [
            (
                served["entity_type"][row][i],
                int(served["start"][row][i]),
                int(served["end"][row][i]),
                float(served["score"][row][i]),
            )
            for i in range(count)
        ]
        same = [g[:3] for g in got] == [w[:3] for w in want]
        if not same:
            mismatches += not ties[row]
            continue
        for g, w in zip(got, want):
            difference = max(difference, abs(g[3] - w[3]))
    figures = {
        "examples": len(texts),
        "entities": sum(len(w) for w in expected),
        "span_mismatches": mismatches,
        "max_abs_difference": difference,
        "tolerance": allowed,
        "near_ties": int(sum(ties)),
        "inputs": report["inputs"],
        "imported": report["imported"],
    }
    problems = []
    if mismatches:
        problems.append(f"entities differ on {mismatches} texts")
    if difference > allowed:
        problems.append(f"scores differ by up to {difference:.2e}")
    if set(served) != set(OUTPUTS):
        problems.append(f"serving outputs are {sorted(served)}")
    if set(report["inputs"]) != {"text"}:
        problems.append(f"serving inputs are {sorted(report['inputs'])}")
    if problems:
        raise ExportError("export refused: " + "; ".join(problems))
    return figures


def export(built, labels, base, texts, weights_file=None, log=print):
    """Writes, checks and publishes `base/<N>/`; returns (path, figures)."""

    def build(folder):
        write_saved_model(built, labels, folder)
        figures = check(folder, built, labels, texts)
        figures["saved_model_bytes"] = fresh.folder_bytes(folder)
        publish.size_ratio(figures, weights_file)
        return figures

    path, figures = publish.build_and_publish(base, build)
    log(
        f"exported {path}: serving and Keras find the same entities in "
        f"{figures['examples']} test texts (max score |diff| "
        f"{figures['max_abs_difference']:.1e})"
    )
    return path, figures
