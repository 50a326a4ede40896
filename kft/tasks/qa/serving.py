"""Question answering inside the served graph: raw question and context
strings in, answer text and character offsets out.

It does in TensorFlow ops what kft/tasks/qa/spans.py does in Python for training
and
evaluation: split words as BERT's basic tokenizer does (keeping byte
offsets), tokenize them, cut each context into overlapping windows, run the
span model on all windows of the batch at once, pick the best span of each
question over its windows, and map it back to the context. The parity test
holds the two to the same answers.
"""

import json
import typing

import tensorflow as tf

from kft.model import preprocessing
from kft.serving import check as fresh
from kft.serving import parity

_ALONE = (
    r"[!-/:-@\[-`{-~]|\p{P}|[\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}"
    r"\x{20000}-\x{2A6DF}\x{F900}-\x{FAFF}\x{2F800}-\x{2FA1F}]"
)
_SPLIT = preprocessing.WHITE_SPACE + "|" + _ALONE


def _pieces(texts, tokenizer):
    """Word pieces of each text with their words' byte offsets, ragged."""
    import tensorflow_text as tf_text

    words, starts, ends = tf_text.regex_split_with_offsets(
        texts, _SPLIT, _ALONE
    )
    ids = tokenizer(words.flat_values)
    if not isinstance(ids, tf.RaggedTensor):  # keras-hub's eager Python path
        ids = tf.ragged.constant(ids, dtype=tf.int32, ragged_rank=1)
    counts = ids.row_lengths()
    per_text = tf.RaggedTensor.from_row_lengths(counts, words.row_lengths())
    lengths = tf.reduce_sum(per_text, axis=1)

    def ragged(values):
        return tf.RaggedTensor.from_row_lengths(values, lengths)

    return (
        ragged(tf.cast(ids.flat_values, tf.int32)),
        ragged(tf.repeat(starts.flat_values, counts)),
        ragged(tf.repeat(ends.flat_values, counts)),
    )


def _offset(offsets, found, index, sentinel):
    values = tf.concat([offsets.flat_values, tf.zeros([1], tf.int64)], 0)
    return tf.gather(values, tf.where(found, index, sentinel))


def answer_fn(
    model,
    tokenizer,
    sequence_length,
    stride,
    max_answer_length=30,
    max_question_tokens=64,
    null_threshold=None,
):
    """A function of (question, context) string batches to answers.

    Returns {"answer", "start", "end", "score"}: the answer text ("" for
    none), its character offsets in the context and its probability, as
    `kft.qa.best_answer` computes them.
    """
    ids = (tokenizer.cls_token_id, tokenizer.sep_token_id)
    length = sequence_length

    def answer(question, context):
        question_ids, _, _ = _pieces(question, tokenizer)
        question_ids = question_ids[:, :max_question_tokens]
        context_ids, byte_starts, byte_ends = _pieces(context, tokenizer)
        count = tf.shape(question, out_type=tf.int64)[0]
        cut = _windows(question_ids, context_ids, length, stride, count, ids)
        starts, ends = _logits(model, cut, length, tokenizer.pad_token_id)
        window_best, window_arg = _best_spans(
            starts, ends, cut, length, max_answer_length
        )
        best = tf.math.unsorted_segment_max(window_best, cut.example, count)
        chosen = _chosen_windows(window_best, best, cut.example, count)
        arg = tf.gather(window_arg, chosen)
        span_start, span_end = arg // length, arg % length
        # An empty segment's max is the lowest float, not -inf.
        found = best > -1e30
        if null_threshold is not None:
            null = starts[:, 0] + ends[:, 0]
            lowest_null = tf.math.unsorted_segment_min(null, cut.example, count)
            found &= lowest_null - best <= null_threshold
        score = _probability(starts, chosen, span_start) * _probability(
            ends, chosen, span_end
        )
        # Back to the context through the pieces' word byte offsets; a
        # question without an answer reads the sentinel 0 at the end.
        piece = tf.gather(cut.first - cut.head.row_lengths(), chosen)
        sentinel = tf.size(byte_starts.flat_values, out_type=tf.int64)
        byte_start = _offset(byte_starts, found, piece + span_start, sentinel)
        byte_end = _offset(byte_ends, found, piece + span_end, sentinel)
        return {
            "answer": tf.strings.substr(
                context, byte_start, byte_end - byte_start
            ),
            "start": _characters(context, byte_start),
            "end": _characters(context, byte_end),
            "score": tf.where(found, score, 0.0),
        }

    return answer


class _Windows(typing.NamedTuple):
    """The windows of a batch of questions: which question each row is
    (`example`), where its context piece starts (`first`) and how many it
    holds (`size`), and the rows' [CLS] question [SEP] heads, token ids
    and segment ids (ragged)."""

    example: tf.Tensor
    first: tf.Tensor
    size: tf.Tensor
    head: tf.RaggedTensor
    token_ids: tf.RaggedTensor
    segment_ids: tf.RaggedTensor


def _windows(question_ids, context_ids, length, stride, count, ids):
    """Cuts each context into windows `stride` pieces apart, each after
    its question, as the training windows are cut."""
    cls_id, sep_id = ids
    room = length - question_ids.row_lengths() - 3
    total = context_ids.row_lengths()
    more = tf.maximum(total - room, 0)
    step = tf.minimum(tf.cast(stride, room.dtype), room)  # as spans.windows
    windows = 1 + (more + step - 1) // step
    example = tf.repeat(tf.range(count), windows)
    offset = tf.ragged.range(windows).flat_values * tf.gather(step, example)
    size = tf.minimum(
        tf.gather(room, example), tf.gather(total, example) - offset
    )
    first = tf.gather(context_ids.row_starts(), example) + offset
    where = tf.ragged.range(first, first + size)
    rows = tf.shape(example, out_type=tf.int64)[0]
    cls = tf.fill([rows, 1], cls_id)
    sep = tf.fill([rows, 1], sep_id)
    head = tf.concat([cls, tf.gather(question_ids, example), sep], axis=1)
    body = tf.concat([tf.gather(context_ids.flat_values, where), sep], 1)
    token_ids = tf.concat([head, body], axis=1)
    segment_ids = tf.concat([tf.zeros_like(head), tf.ones_like(body)], axis=1)
    return _Windows(example, first, size, head, token_ids, segment_ids)


def _logits(model, cut, length, pad_id):
    """The span model's start and end logits of every window row."""
    padding_mask = tf.sequence_mask(cut.token_ids.row_lengths(), length)
    logits = model(
        {
            "token_ids": cut.token_ids.to_tensor(pad_id, shape=[None, length]),
            "segment_ids": cut.segment_ids.to_tensor(0, shape=[None, length]),
            "padding_mask": padding_mask,
        },
        training=False,
    )
    return (
        tf.cast(logits["start"], tf.float32),
        tf.cast(logits["end"], tf.float32),
    )


def _best_spans(starts, ends, cut, length, max_answer_length):
    """Each window's best span score and its flat (start * length + end)
    index, over spans with both ends among the window's context pieces."""
    context_start = cut.head.row_lengths()
    position = tf.range(length, dtype=tf.int64)[None, :]
    inside = (position >= context_start[:, None]) & (
        position < (context_start + cut.size)[:, None]
    )
    span = position[:, None, :] - position[:, :, None]  # end - start
    valid = (
        inside[:, :, None]
        & inside[:, None, :]
        & (span >= 0)
        & (span < max_answer_length)
    )
    scores = starts[:, :, None] + ends[:, None, :]
    scores = tf.where(valid, scores, -float("inf"))
    flat = tf.reshape(scores, [tf.shape(starts)[0], length * length])
    return tf.reduce_max(flat, axis=1), tf.argmax(flat, axis=1)


def _chosen_windows(window_best, best, example, count):
    """The first window of each question that holds its best span."""
    rows = tf.shape(example, out_type=tf.int64)[0]
    index = tf.range(rows)
    chosen = tf.math.unsorted_segment_min(
        tf.where(window_best == tf.gather(best, example), index, rows),
        example,
        count,
    )
    return tf.minimum(chosen, rows - 1)


def _probability(logits, chosen, position):
    """The softmax probability of `position` in each chosen window."""
    return tf.gather(
        tf.gather(tf.nn.softmax(logits), chosen), position, batch_dims=1
    )


def _characters(context, byte_offsets):
    """Byte offsets into `context` as character (UTF-8) offsets."""
    head = tf.strings.substr(context, tf.zeros_like(byte_offsets), byte_offsets)
    return tf.cast(tf.strings.length(head, unit="UTF8_CHAR"), tf.int64)


def write_saved_model(model, tokenizer, path, settings):
    """Writes a SavedModel whose `serving_default` takes `question` and
    `context` (`tf.string [None]`) and returns `answer_fn`'s outputs.

    Args:
        settings: `answer_fn`'s keyword arguments (sequence_length,
            stride, max_answer_length, max_question_tokens,
            null_threshold).
    """
    import keras

    archive = keras.export.ExportArchive()
    archive.track(tokenizer)
    answer = answer_fn(model, tokenizer, **settings)
    text = tf.TensorSpec([None], tf.string)
    archive.add_endpoint(
        "serving_default",
        lambda question, context: answer(question, context),
        input_signature=[text, text],
    )
    archive.write_out(path, verbose=False)


def served_answers(path, examples, batch_size=64):
    """The answers the SavedModel at `path` serves for `examples`, as
    `kft.tasks.qa.spans.Answer`s (kft-evaluate --saved_model); the logits
    are not served and read NaN."""
    from kft.core import files
    from kft.core.errors import UserError
    from kft.tasks.qa import spans

    if not files.exists(f"{path}/saved_model.pb"):
        raise UserError(f"no SavedModel at {path} (expected BASE/N)")
    serve = tf.saved_model.load(path).signatures["serving_default"]
    answers = []
    for first in range(0, len(examples), batch_size):
        batch = examples[first : first + batch_size]
        out = serve(
            question=tf.constant([e.question for e in batch]),
            context=tf.constant([e.context for e in batch]),
        )
        for index in range(len(batch)):
            answers.append(
                spans.Answer(
                    out["answer"][index].numpy().decode("utf-8"),
                    int(out["start"][index]),
                    int(out["end"][index]),
                    float(out["score"][index]),
                    float("nan"),
                    float("nan"),
                )
            )
    return answers


# Runs in a fresh interpreter importing only TensorFlow and TF Text.
_CHECK_SCRIPT = """
import json, sys, time
import tensorflow as tf
import tensorflow_text  # noqa: F401
path = sys.argv[1]
questions, contexts = json.load(sys.stdin)
started = time.time()
serve = tf.saved_model.load(path).signatures["serving_default"]
load_seconds = time.time() - started
inputs = sorted(serve.structured_input_signature[1])
out = serve(question=tf.constant(questions), context=tf.constant(contexts))
print(json.dumps({
    "inputs": inputs,
    "outputs": sorted(out),
    "load_seconds": load_seconds,
    "answer": [a.decode("utf-8") for a in out["answer"].numpy()],
    "start": out["start"].numpy().tolist(),
    "end": out["end"].numpy().tolist(),
    "score": out["score"].numpy().tolist(),
}))
"""


def check(path, examples, expected):
    """Runs the SavedModel on `examples` in a fresh process and compares
    with the Python path's `expected` answers (scores within
    `parity.tolerance()`); returns the figures or raises ExportError."""
    from kft.core.errors import ExportError

    tolerance = parity.tolerance()

    sample = [[e.question for e in examples], [e.context for e in examples]]
    served = fresh.run_script(_CHECK_SCRIPT, [path], stdin=json.dumps(sample))
    problems = []
    if served["inputs"] != ["context", "question"]:
        problems.append(f"serving inputs are {served['inputs']}")
    differ = [
        i
        for i, answer in enumerate(expected)
        if (served["answer"][i], served["start"][i], served["end"][i])
        != (answer.text, answer.start, answer.end)
    ]
    if differ:
        problems.append(f"{len(differ)} answers differ (first: {differ[0]})")
    gap = max(
        (abs(s - a.score) for s, a in zip(served["score"], expected)),
        default=0.0,
    )
    if gap > tolerance:
        problems.append(f"scores differ by up to {gap:.2e}")
    if problems:
        raise ExportError("export refused: " + "; ".join(problems))
    return {
        "examples": len(examples),
        "answers_equal": len(examples),
        "max_abs_difference": gap,
        "tolerance": tolerance,
        "load_seconds": served["load_seconds"],
        "outputs": served["outputs"],
    }
