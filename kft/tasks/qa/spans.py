"""Extractive question answering: windows, answer spans, SQuAD scores.

A context longer than the sequence length is cut into overlapping windows
of word pieces, each packed as `[CLS] question [SEP] context piece [SEP]`.
A window whose context piece holds the whole answer is labelled with the
answer's first and last token positions; the others (and every window of
an unanswerable SQuAD v2 question) point at position 0, the [CLS] token,
which the span head reads as "no answer here".

Every token keeps the character offsets of the word it came from, so a
predicted span maps back to the original context text exactly. Words are
split as BERT's basic tokenizer splits them (white space, then each
punctuation mark and CJK character alone), so tokenizing word by word
gives the same pieces as tokenizing the whole text.

`best_answer` picks the best span over all windows of one question (start
and end logits, end not before start, at most `max_answer_length` tokens)
and compares it with the no-answer score; `squad_scores` computes exact
match and F1 with SQuAD's answer normalization.
"""

import collections
import dataclasses
import unicodedata

import keras
import numpy as np
from keras import ops

from kft.core.errors import UserError

NO_ANSWER = ""
# Longer questions are cut to this many tokens.
MAX_QUESTION_TOKENS = 64
# What `fit` reports for a span model (and `--config.monitor` can pick).
METRICS = ("loss", "start_accuracy", "end_accuracy")


def _is_punctuation(char):
    code = ord(char)
    # BERT counts all non-letter/number ASCII as punctuation ($, ^, `...).
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96:
        return True
    if 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(char):
    code = ord(char)
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x2A6DF
        or 0xF900 <= code <= 0xFAFF
        or 0x2F800 <= code <= 0x2FA1F
    )


def word_spans(text):
    """[(start, end)] character spans of the words of `text`.

    A word is a run of characters that are neither white space nor
    punctuation; each punctuation mark and each CJK character is a word of
    its own, as BERT's basic tokenizer splits.
    """
    spans = []
    start = None
    for index, char in enumerate(text):
        alone = _is_punctuation(char) or _is_cjk(char)
        if char.isspace() or alone:
            if start is not None:
                spans.append((start, index))
                start = None
            if alone:
                spans.append((index, index + 1))
        elif start is None:
            start = index
    if start is not None:
        spans.append((start, len(text)))
    return spans


def word_tokenizer(tokenizer):
    """A `tokenize_words` function over a keras-hub tokenizer."""

    def tokenize_words(words):
        ids = tokenizer(list(words))
        if hasattr(ids, "to_list"):  # a tf.RaggedTensor
            ids = ids.to_list()
        return [[int(i) for i in row] for row in ids]

    return tokenize_words


@dataclasses.dataclass
class Pieces:
    """A text's word pieces with the character span of each one's word."""

    ids: list
    starts: list
    ends: list


def pieces(text, tokenize_words):
    """Tokenizes `text` word by word.

    Args:
        text: the raw text.
        tokenize_words: maps a list of words to a list of lists of piece
            ids (the backbone tokenizer, called once for all words).
    """
    spans = word_spans(text)
    tokenized = tokenize_words([text[s:e] for s, e in spans]) if spans else []
    ids, starts, ends = [], [], []
    for (start, end), word_ids in zip(spans, tokenized):
        for piece in word_ids:
            ids.append(int(piece))
            starts.append(start)
            ends.append(end)
    return Pieces(ids, starts, ends)


@dataclasses.dataclass
class Window:
    """One packed window of a question and a stretch of its context.

    `context_start` is the position of the window's first context token in
    `token_ids`; `offset` is that token's index in the whole context's
    pieces. `start` and `end` are the answer's token positions, 0 and 0
    (the [CLS] token) when the window does not hold the whole answer.
    """

    example: int
    token_ids: list
    segment_ids: list
    context_start: int
    offset: int
    length: int
    start: int = 0
    end: int = 0


def windows(
    question_ids,
    context,
    sequence_length,
    stride,
    special,
    example=0,
    answer=None,
    max_question_tokens=MAX_QUESTION_TOKENS,
):
    """Cuts a context into windows of at most `sequence_length` tokens.

    Args:
        question_ids: the question's piece ids.
        context: the context's `Pieces`.
        sequence_length: the packed length of each window.
        stride: tokens between the starts of two windows (BERT's
            doc_stride); windows overlap by their length minus the stride.
        special: (cls_id, sep_id).
        example: an index carried into each window.
        answer: (start char, end char) of the answer in the context, or
            None (prediction, or an unanswerable question).
        max_question_tokens: longer questions are cut to this many tokens.

    Returns:
        A list of `Window`, unpadded.
    """
    cls_id, sep_id = special
    question_ids = list(question_ids)[:max_question_tokens]
    room = sequence_length - len(question_ids) - 3
    if room < 1:
        raise UserError(
            f"--config.data.sequence_length {sequence_length} leaves no room "
            f"for context after a {len(question_ids)}-token question "
            f"(questions are cut to {max_question_tokens} tokens): give a "
            "longer sequence length"
        )
    if stride < 1:
        raise ValueError(f"stride {stride} must be at least 1")
    # Over the room, a stride would skip context between windows: they
    # abut instead (the served windows are cut alike, qa/serving.py).
    stride = min(stride, room)
    first, last = _answer_tokens(context, answer)
    result = []
    count = len(context.ids)
    offset = 0
    while True:
        length = min(room, count - offset)
        head = [cls_id, *question_ids, sep_id]
        window = Window(
            example=example,
            token_ids=head + context.ids[offset : offset + length] + [sep_id],
            segment_ids=[0] * len(head) + [1] * (length + 1),
            context_start=len(head),
            offset=offset,
            length=length,
        )
        if first is not None and offset <= first and last < offset + length:
            window.start = len(head) + first - offset
            window.end = len(head) + last - offset
        result.append(window)
        if offset + length >= count:
            return result
        offset += stride


def _answer_tokens(context, answer):
    """The first and last context token of an answer's character span."""
    if answer is None:
        return None, None
    start_char, end_char = answer
    first = last = None
    for index, (start, end) in enumerate(zip(context.starts, context.ends)):
        if end > start_char and start < end_char:
            if first is None:
                first = index
            last = index
    return first, last


@dataclasses.dataclass
class Answer:
    """The predicted answer of one question; `text` is "" for none.

    `start` and `end` are character offsets into the context; `score` is
    the probability of the span's start times that of its end (softmax
    over its window's positions); `logit` the start + end logits, and
    `null_logit` the lowest [CLS] start + end logits over the windows.
    """

    text: str
    start: int
    end: int
    score: float
    logit: float
    null_logit: float


def _softmax(logits):
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()


def best_answer(
    context_text,
    context,
    windows_,
    start_logits,
    end_logits,
    max_answer_length=30,
    null_threshold=None,
):
    """The best span of one question over all of its windows.

    Every pair of context positions in a window with the end not before
    the start and at most `max_answer_length` tokens is a candidate; the
    highest start + end logits wins (the first one on ties).

    Args:
        context_text: the original context.
        context: its `Pieces`.
        windows_: the question's `Window`s.
        start_logits, end_logits: [windows, positions] arrays.
        max_answer_length: the longest answer, in tokens.
        null_threshold: None answers always (SQuAD v1); otherwise answer
            "" when the no-answer logit exceeds the best span's by more.

    Returns:
        An `Answer`.
    """
    best = None
    null = np.inf
    for index, window in enumerate(windows_):
        starts = np.asarray(start_logits[index], dtype=np.float32)
        ends = np.asarray(end_logits[index], dtype=np.float32)
        null = min(null, float(starts[0] + ends[0]))
        low = window.context_start
        high = low + window.length  # exclusive
        if high == low:
            continue
        scores = starts[low:high, None] + ends[None, low:high]
        lengths = (
            np.arange(high - low)[None, :] - np.arange(high - low)[:, None]
        )
        scores[(lengths < 0) | (lengths >= max_answer_length)] = -np.inf
        flat = int(np.argmax(scores))
        s, e = divmod(flat, high - low)
        if best is None or scores[s, e] > best[0]:
            probability = _softmax(starts)[low + s] * _softmax(ends)[low + e]
            best = (
                float(scores[s, e]),
                context.starts[window.offset + s],
                context.ends[window.offset + e],
                float(probability),
            )
    null = float(null if windows_ else 0.0)
    if best is None or (
        null_threshold is not None and null - best[0] > null_threshold
    ):
        return Answer(NO_ANSWER, 0, 0, 0.0, -np.inf, null)
    logit, start, end, probability = best
    return Answer(context_text[start:end], start, end, probability, logit, null)


# --- The span model and its data ---------------------------------------

# Logits of positions a span cannot use (padding, the question): low
# enough to vanish in a softmax, small enough for float16.
MASKED = -1e4


def span_inputs(window_list, sequence_length, pad_id):
    """Packed, padded inputs and labels of windows, as numpy arrays.

    Returns (inputs, labels): inputs holds token_ids, segment_ids and
    padding_mask [windows, sequence_length]; labels holds start and end
    positions [windows].
    """
    count = len(window_list)
    token_ids = np.full((count, sequence_length), pad_id, dtype=np.int32)
    segment_ids = np.zeros((count, sequence_length), dtype=np.int32)
    for row, window in enumerate(window_list):
        token_ids[row, : len(window.token_ids)] = window.token_ids
        segment_ids[row, : len(window.segment_ids)] = window.segment_ids
    padding_mask = np.zeros((count, sequence_length), dtype=bool)
    for row, window in enumerate(window_list):
        padding_mask[row, : len(window.token_ids)] = True
    inputs = {
        "token_ids": token_ids,
        "segment_ids": segment_ids,
        "padding_mask": padding_mask,
    }
    labels = {
        "start": np.array([w.start for w in window_list], dtype=np.int32),
        "end": np.array([w.end for w in window_list], dtype=np.int32),
    }
    return inputs, labels


def example_windows(examples, tokenizer, sequence_length, stride, training):
    """Windows of every example, with the context pieces of each example.

    Args:
        examples: `kft.data.squad.Example`s.
        tokenizer: a keras-hub tokenizer with cls/sep token ids.
        sequence_length, stride: as `windows` takes them.
        training: label each window with the first answer's tokens.

    Returns:
        (windows, contexts): all windows in example order, and each
        example's context `Pieces`.
    """
    tokenize_words = word_tokenizer(tokenizer)
    special = (tokenizer.cls_token_id, tokenizer.sep_token_id)
    result, contexts = [], []
    for index, example in enumerate(examples):
        context = pieces(example.context, tokenize_words)
        question = pieces(example.question, tokenize_words).ids
        answer = example.answer_span if training else None
        result += windows(
            question, context, sequence_length, stride, special, index, answer
        )
        contexts.append(context)
    return result, contexts


def span_model(backbone, dropout=0.1, backbone_dropout=True):
    """The backbone's sequence output to start and end logits.

    Only [CLS] (no answer) and the window's context tokens can start or
    end a span; the logits of the question and of padding are masked.
    """
    inputs = {
        name: keras.Input(shape=(None,), dtype=tensor.dtype, name=name)
        for name, tensor in backbone.input.items()
    }
    outputs = backbone(inputs, training=None if backbone_dropout else False)
    sequence = outputs["sequence_output"]
    x = keras.layers.Dropout(dropout, name="head_dropout")(sequence)
    logits = keras.layers.Dense(2, dtype="float32", name="span_logits")(x)
    starts, ends = SpanMask(name="span_mask")(
        logits, inputs["segment_ids"], inputs["padding_mask"]
    )
    return keras.Model(
        inputs, {"start": starts, "end": ends}, name="kft_span_model"
    )


@keras.saving.register_keras_serializable(package="kft")
class SpanMask(keras.layers.Layer):
    """Splits [batch, length, 2] logits into start and end, masked."""

    def call(self, logits, segment_ids, padding_mask):
        length = ops.shape(segment_ids)[1]
        first = ops.expand_dims(ops.arange(length) == 0, 0)
        context = ops.logical_and(
            ops.cast(padding_mask, "bool"), segment_ids == 1
        )
        allowed = ops.logical_or(context, first)
        low = ops.cast(MASKED, "float32")
        masked = ops.where(ops.expand_dims(allowed, -1), logits, low)
        return masked[..., 0], masked[..., 1]


def compile_span_model(model, optimizer, **options):
    """Cross-entropy of the start and of the end position, averaged;
    `options` go to `compile` (jit_compile, steps_per_execution)."""
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(
        optimizer=optimizer,
        loss={"start": loss, "end": loss},
        loss_weights={"start": 0.5, "end": 0.5},
        metrics={"start": ["accuracy"], "end": ["accuracy"]},
        **options,
    )


def predict_answers(
    model,
    examples,
    window_list,
    contexts,
    inputs,
    batch_size=64,
    max_answer_length=30,
    null_threshold=None,
):
    """The best `Answer` of each example, from the model's logits."""
    logits = model.predict(inputs, batch_size=batch_size, verbose=0)
    by_example = collections.defaultdict(list)
    for row, window in enumerate(window_list):
        by_example[window.example].append(row)
    answers = []
    for index, example in enumerate(examples):
        rows = by_example[index]
        answers.append(
            best_answer(
                example.context,
                contexts[index],
                [window_list[row] for row in rows],
                logits["start"][rows],
                logits["end"][rows],
                max_answer_length=max_answer_length,
                null_threshold=null_threshold,
            )
        )
    return answers
