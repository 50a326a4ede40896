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

import tensorflow as tf

from kft.model import preprocessing
from kft.serving import check as fresh

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
    length = sequence_length
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    pad_id = tokenizer.pad_token_id

    def answer(question, context):
        question_ids, _, _ = _pieces(question, tokenizer)
        question_ids = question_ids[:, :max_question_tokens]
        context_ids, byte_starts, byte_ends = _pieces(context, tokenizer)
        count = tf.shape(question, out_type=tf.int64)[0]
        room = length - question_ids.row_lengths() - 3
        total = context_ids.row_lengths()
        more = tf.maximum(total - room, 0)
        windows = 1 + (more + stride - 1) // stride
        example = tf.repeat(tf.range(count), windows)
        offset = tf.ragged.range(windows).flat_values * stride
        size = tf.minimum(
            tf.gather(room, example), tf.gather(total, example) - offset
        )
        first = tf.gather(context_ids.row_starts(), example) + offset
        where = tf.ragged.range(first, first + size)
        question_rows = tf.gather(question_ids, example)
        rows = tf.shape(example, out_type=tf.int64)[0]
        cls = tf.fill([rows, 1], cls_id)
        sep = tf.fill([rows, 1], sep_id)
        head = tf.concat([cls, question_rows, sep], axis=1)
        body = tf.concat([tf.gather(context_ids.flat_values, where), sep], 1)
        token_ids = tf.concat([head, body], axis=1)
        segment_ids = tf.concat(
            [tf.zeros_like(head), tf.ones_like(body)], axis=1
        )
        padding_mask = tf.sequence_mask(token_ids.row_lengths(), length)
        logits = model(
            {
                "token_ids": token_ids.to_tensor(pad_id, shape=[None, length]),
                "segment_ids": segment_ids.to_tensor(0, shape=[None, length]),
                "padding_mask": padding_mask,
            },
            training=False,
        )
        starts = tf.cast(logits["start"], tf.float32)
        ends = tf.cast(logits["end"], tf.float32)
        # Candidate spans: both ends among the window's context tokens.
        context_start = head.row_lengths()
        position = tf.range(length, dtype=tf.int64)[None, :]
        inside = (position >= context_start[:, None]) & (
            position < (context_start + size)[:, None]
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
        flat = tf.reshape(scores, [rows, length * length])
        window_best = tf.reduce_max(flat, axis=1)
        window_arg = tf.argmax(flat, axis=1)
        null = starts[:, 0] + ends[:, 0]
        best = tf.math.unsorted_segment_max(window_best, example, count)
        index = tf.range(rows)
        chosen = tf.math.unsorted_segment_min(
            tf.where(window_best == tf.gather(best, example), index, rows),
            example,
            count,
        )
        chosen = tf.minimum(chosen, rows - 1)
        arg = tf.gather(window_arg, chosen)
        span_start, span_end = arg // length, arg % length
        start_probability = tf.gather(
            tf.gather(tf.nn.softmax(starts), chosen), span_start, batch_dims=1
        )
        end_probability = tf.gather(
            tf.gather(tf.nn.softmax(ends), chosen), span_end, batch_dims=1
        )
        # An empty segment's max is the lowest float, not -inf.
        found = best > -1e30
        if null_threshold is not None:
            lowest_null = tf.math.unsorted_segment_min(null, example, count)
            found &= lowest_null - best <= null_threshold
        # Back to the context through the pieces' word byte offsets; a
        # question without an answer reads the sentinel 0 at the end.
        piece = tf.gather(first - context_start, chosen)
        sentinel = tf.size(byte_starts.flat_values, out_type=tf.int64)
        byte_start = _offset(byte_starts, found, piece + span_start, sentinel)
        byte_end = _offset(byte_ends, found, piece + span_end, sentinel)
        text = tf.strings.substr(context, byte_start, byte_end - byte_start)

        def characters(bytes_):
            head = tf.strings.substr(context, tf.zeros_like(bytes_), bytes_)
            return tf.strings.length(head, unit="UTF8_CHAR")

        score = tf.where(found, start_probability * end_probability, 0.0)
        return {
            "answer": text,
            "start": tf.cast(characters(byte_start), tf.int64),
            "end": tf.cast(characters(byte_end), tf.int64),
            "score": score,
        }

    return answer


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


def check(path, examples, expected, tolerance=1e-5):
    """Runs the SavedModel on `examples` in a fresh process and compares
    with the Python path's `expected` answers; returns the figures or
    raises ExportError."""
    from kft.core.errors import ExportError

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
