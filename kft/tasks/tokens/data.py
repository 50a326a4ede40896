"""Token classification data: tagged sentences in, aligned batches out.

Specs (`data.train`, `data.validation`, `data.test`):

- a CoNLL-style file (any other extension than .jsonl): one word per line,
  columns split by white space, the tag in the last column; a blank line
  ends a sentence; `-DOCSTART-` lines are skipped;
- a `.jsonl` file: one sentence per line, a list of words and a list of
  tags (`data.tokens_column`, `data.tags_column`; empty picks `tokens` /
  `words` and `tags` / `ner_tags` / `ner`);
- `tfds:NAME[/CONFIG]:SPLIT` with a sequence of words and a sequence of
  tags (ClassLabel ids or strings), such as `tfds:conll2003:train`
  (features `tokens` and `ner`).

Any bad sentence (word and tag counts that differ, a tag outside
`data.tag_scheme`, an empty sentence) stops the run with one line naming
it: a tagged corpus with a broken line is usually misaligned beyond it.

`encode_words` turns words into the backbone's inputs in TensorFlow ops
(the export runs it too): each word is split into word pieces on its own,
the pieces are packed as [CLS] pieces [SEP] and padded; each word's label
goes on its first piece, and every other position (later pieces, [CLS],
[SEP], padding) gets -1, which the loss and metrics skip. A sentence longer
than the sequence length loses its last pieces; words with no piece left
get no prediction and count as tagged "O" in the metrics.
"""

import dataclasses
import json
import pathlib

import numpy as np
import tensorflow as tf

from kft.core import files
from kft.core.errors import UserError
from kft.data import tfds_source
from kft.data.pipeline import Epochs, epoch_seed, prefetched
from kft.tasks.tokens import entities

IGNORE = -1
TOKEN_NAMES = ("tokens", "words")
TAG_NAMES = ("tags", "ner_tags", "ner")


@dataclasses.dataclass
class TokenSplit:
    """Tagged sentences: `words` and `tags` are lists of string lists."""

    name: str
    source: str
    words: list
    tags: list

    def __len__(self):
        return len(self.words)


@dataclasses.dataclass
class TokenSplits:
    """The three splits (validation may be None), tag names and log notes."""

    train: TokenSplit
    validation: TokenSplit | None
    test: TokenSplit
    labels: list
    notes: list


# === Readers ===


def read_conll(text, where):
    """Sentences of a CoNLL-style text: (words, tags) lists."""
    words, tags, sentence, sentence_tags = [], [], [], []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if fields and fields[0] == "-DOCSTART-":
            continue
        if not fields:
            if sentence:
                words.append(sentence)
                tags.append(sentence_tags)
            sentence, sentence_tags = [], []
            continue
        if len(fields) < 2:
            raise UserError(
                f"{where} line {number}: '{line.strip()}' has no tag; "
                "CoNLL lines hold a word and its tag (last column)"
            )
        sentence.append(fields[0])
        sentence_tags.append(fields[-1])
    if sentence:
        words.append(sentence)
        tags.append(sentence_tags)
    return words, tags


def _pick(available, wanted, names, where, what):
    if wanted:
        if wanted not in available:
            raise UserError(
                f"{where} has no {what} '{wanted}'; it has: "
                f"{', '.join(sorted(available))}"
            )
        return wanted
    for name in names:
        if name in available:
            return name
    raise UserError(
        f"{where} has no {what} named {' or '.join(names)}; set "
        f"--config.data.{'tokens' if what == 'words' else 'tags'}_column"
    )


def read_jsonl(text, where, data_config):
    """Sentences of a JSONL text with a word list and a tag list a line."""
    words, tags = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise UserError(f"{where} line {number}: {error}") from None
        here = f"{where} line {number}"
        word_key = _pick(
            row, data_config.tokens_column, TOKEN_NAMES, here, "words"
        )
        tag_key = _pick(row, data_config.tags_column, TAG_NAMES, here, "tags")
        words.append([str(word) for word in row[word_key]])
        tags.append([str(tag) for tag in row[tag_key]])
    return words, tags


def read_tfds(spec, data_config):
    """Sentences of a TFDS split with word and tag sequence features."""
    import tensorflow_datasets as tfds

    name, split = tfds_source.parse_spec(spec)
    try:
        with tfds_source.quiet_info_logs():
            builder = tfds.builder(
                name, data_dir=data_config.tfds_data_dir or None
            )
            builder.download_and_prepare()
            features = builder.info.features
            word_key = _pick(
                features, data_config.tokens_column, TOKEN_NAMES, spec, "words"
            )
            tag_key = _pick(
                features, data_config.tags_column, TAG_NAMES, spec, "tags"
            )
            dataset = builder.as_dataset(split=split)
    except UserError:
        raise
    except Exception as error:  # tfds raises many kinds; all are the user's
        first = str(error).splitlines()[0][:300] if str(error) else ""
        raise UserError(
            f"cannot load {spec}: {type(error).__name__}: {first} (offline, "
            "give a prepared copy: --config.data.tfds_data_dir)"
        ) from None
    feature = features[tag_key]
    names = getattr(getattr(feature, "feature", feature), "names", None)
    words, tags = [], []
    for example in tfds.as_numpy(dataset):
        words.append([w.decode("utf-8") for w in example[word_key]])
        tags.append(
            [names[int(t)] if names else _text(t) for t in example[tag_key]]
        )
    return words, tags


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_spec(spec, data_config, name="train"):
    """Reads and checks one spec into a `TokenSplit`."""
    if spec.startswith("tfds:"):
        words, tags = read_tfds(spec, data_config)
    else:
        path = spec if "://" in spec else str(pathlib.Path(spec).expanduser())
        if not files.exists(path):
            raise UserError(f"data not found: {spec}")
        try:
            text = files.read_text(path)
        except UnicodeDecodeError:
            raise UserError(f"{spec} is not UTF-8 text") from None
        if path.lower().endswith(".jsonl"):
            words, tags = read_jsonl(text, spec, data_config)
        else:
            words, tags = read_conll(text, spec)
    check(words, tags, spec, data_config.tag_scheme)
    return TokenSplit(name, spec, words, tags)


def check(words, tags, where, scheme):
    """Raises UserError for misaligned, empty or out-of-scheme sentences."""
    if not words:
        raise UserError(f"{where} holds no tagged sentences")
    for index, (sentence, sentence_tags) in enumerate(zip(words, tags)):
        if len(sentence) != len(sentence_tags):
            raise UserError(
                f"{where} sentence {index + 1}: {len(sentence)} words but "
                f"{len(sentence_tags)} tags"
            )
        if not sentence:
            raise UserError(f"{where} sentence {index + 1} has no words")
    if scheme not in entities.SCHEMES:
        raise UserError(
            f"bad value '{scheme}' for --config.data.tag_scheme; valid: "
            + ", ".join(entities.SCHEMES)
        )
    entities.check_tags(tags, scheme, where)


def load_splits(data_config, seed):
    """Reads the train, validation and test specs into `TokenSplits`.

    A missing validation or test spec is a seeded random share of the
    training sentences (`data.validation_fraction`, `test_fraction`).
    """
    if not data_config.train:
        raise UserError("no training data; set --config.data.train")
    train = read_spec(data_config.train, data_config)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(train))
    parts, notes = {}, []
    for name in ("test", "validation"):
        spec = data_config[name]
        fraction = data_config[f"{name}_fraction"]
        if spec:
            parts[name] = read_spec(spec, data_config, name)
        elif fraction > 0:
            count = max(1, int(round(len(train) * fraction)))
            taken, order = order[:count], order[count:]
            source = f"{data_config.train} ({fraction:.0%}, seed {seed})"
            parts[name] = _take(train, taken, name, source)
            notes.append(
                f"no {name} data given: holding out {count} training "
                f"sentences ({fraction:.0%}, data.split_seed {seed})"
            )
        else:
            parts[name] = None
    if not len(order):
        raise UserError(f"{data_config.train}: no sentences left to train on")
    train = _take(train, np.sort(order), "train", train.source)
    labels = entities.tag_names(train.tags)
    for part in parts.values():
        if part:
            check_known_tags(part, labels)
    test = parts["test"] or parts["validation"]
    if test is None:
        raise UserError(
            "no test and no validation data; give --config.data.test or "
            "a test_fraction above 0"
        )
    return TokenSplits(train, parts["validation"], test, labels, notes)


def _take(split, indices, name, source):
    return TokenSplit(
        name,
        source,
        [split.words[i] for i in indices],
        [split.tags[i] for i in indices],
    )


# === Word pieces ===


def tokenizer_of(preprocessor):
    """The keras-hub WordPiece tokenizer inside a `TextPreprocessor`."""
    tokenizer = preprocessor.inner.tokenizer
    for name in ("cls_token_id", "sep_token_id", "pad_token_id"):
        if getattr(tokenizer, name, None) is None:
            raise UserError(
                "token classification needs a BERT-style tokenizer with "
                f"[CLS], [SEP] and [PAD]; {type(tokenizer).__name__} has none"
            )
    return tokenizer


def encode_words(tokenizer, words, sequence_length):
    """Packs ragged words [batch, (words)] into the backbone's inputs.

    Returns (inputs, positions): the `token_ids`, `segment_ids` and
    `padding_mask` [batch, sequence_length], and each word's first piece
    position, ragged [batch, (words)] int32, -1 where truncated away.
    """
    pieces = tf.cast(word_pieces(tokenizer, words.flat_values), tf.int32)
    counts = tf.cast(pieces.row_lengths(), tf.int32)
    # A word the tokenizer drops entirely (control characters) becomes [UNK].
    empty = tf.cast(counts == 0, tf.int64)
    unknown = tf.RaggedTensor.from_row_lengths(
        tf.fill([tf.reduce_sum(empty)], _unknown_id(tokenizer)), empty
    )
    pieces = tf.concat([pieces, unknown], axis=1)
    counts = tf.cast(pieces.row_lengths(), tf.int32)
    row_splits = tf.cast(words.row_splits, tf.int32)
    starts = tf.cumsum(counts, exclusive=True)
    word_rows = tf.cast(words.value_rowids(), tf.int32)
    row_first = tf.gather(starts, tf.gather(row_splits, word_rows))
    positions = 1 + starts - row_first  # 1: after [CLS]
    room = sequence_length - 2
    positions = tf.where(positions <= room, positions, -1)
    sentences = tf.RaggedTensor.from_row_splits(
        pieces.flat_values,
        tf.gather(tf.concat([starts, [tf.reduce_sum(counts)]], 0), row_splits),
    )[:, :room]
    ones = tf.ones([sentences.nrows(), 1], tf.int32)
    packed = tf.concat(
        [
            ones * tokenizer.cls_token_id,
            sentences,
            ones * tokenizer.sep_token_id,
        ],
        axis=1,
    )
    token_ids = packed.to_tensor(
        default_value=tokenizer.pad_token_id, shape=[None, sequence_length]
    )
    mask = tf.sequence_mask(packed.row_lengths(), sequence_length)
    inputs = {
        "token_ids": token_ids,
        "segment_ids": tf.zeros_like(token_ids),
        "padding_mask": mask,
    }
    return inputs, tf.RaggedTensor.from_row_splits(positions, row_splits)


def word_pieces(tokenizer, words):
    """Ragged piece ids [words, (pieces)] of a 1-D string tensor.

    Traced even when called eagerly: keras-hub hands eager ragged outputs
    back as Python lists.
    """
    if tf.executing_eagerly():
        return tf.function(tokenizer)(words)
    return tokenizer(words)


def _unknown_id(tokenizer):
    return int(tokenizer.token_to_id("[UNK]"))


def word_labels(positions, tag_ids, sequence_length):
    """Tag ids on first pieces, IGNORE elsewhere: int32 [batch, length]."""
    batch = positions.nrows(out_type=tf.int32)
    rows = tf.cast(positions.value_rowids(), tf.int32)
    flat = positions.flat_values
    kept = flat >= 0
    indices = tf.stack([rows[kept], flat[kept]], axis=1)
    values = tf.cast(tag_ids.flat_values, tf.int32)[kept]
    labels = tf.fill([batch, sequence_length], IGNORE)
    return tf.tensor_scatter_nd_update(labels, indices, values)


def _ragged(sentences, dtype):
    return tf.ragged.constant(sentences, dtype=dtype, row_splits_dtype=tf.int64)


def check_known_tags(part, labels):
    """UserError where `part` holds a tag outside `labels` (the training
    data's, or a finished run's labels.txt)."""
    unknown = sorted({t for tags in part.tags for t in tags} - set(labels))
    if unknown:
        raise UserError(
            f"{part.source} has tags the training data lacks: "
            f"{', '.join(unknown[:5])} (its tags: {', '.join(labels)})"
        )


def encode_split(split, tokenizer, labels, sequence_length, batch=256):
    """(inputs dict, labels) numpy arrays of a whole `TokenSplit`."""
    index = {tag: i for i, tag in enumerate(labels)}
    parts = []
    for start in range(0, len(split), batch):
        words = _ragged(split.words[start : start + batch], tf.string)
        tag_ids = _ragged(
            [
                [index[t] for t in tags]
                for tags in split.tags[start : start + batch]
            ],
            tf.int32,
        )
        inputs, positions = encode_words(tokenizer, words, sequence_length)
        parts.append((inputs, word_labels(positions, tag_ids, sequence_length)))
    inputs = {
        key: np.concatenate([p[0][key].numpy() for p in parts])
        for key in parts[0][0]
    }
    return inputs, np.concatenate([p[1].numpy() for p in parts])


def piece_counts(split, tokenizer, batch=256):
    """Word pieces per sentence, with [CLS] and [SEP]."""
    counts = []
    for start in range(0, len(split), batch):
        words = _ragged(split.words[start : start + batch], tf.string)
        pieces = word_pieces(tokenizer, words.flat_values)
        per_word = tf.maximum(pieces.row_lengths(), 1)
        sentences = tf.RaggedTensor.from_row_splits(per_word, words.row_splits)
        counts.append(tf.reduce_sum(sentences, axis=1).numpy() + 2)
    return np.concatenate(counts)


def _trim(granularity):
    """Cuts a batch to its longest row, rounded up to `granularity`."""

    def trim(inputs, labels):
        longest = tf.reduce_max(
            tf.reduce_sum(tf.cast(inputs["padding_mask"], tf.int32), axis=-1)
        )
        length = tf.minimum(
            (longest + granularity - 1) // granularity * granularity,
            tf.shape(labels)[1],
        )
        return {k: v[:, :length] for k, v in inputs.items()}, labels[:, :length]

    return trim


def batches(encoded, batch_size, training, seed, granularity=16):
    """`Epochs` of shuffled training batches, or one evaluation dataset.

    `encoded` is `encode_split`'s (inputs, labels); each batch is trimmed
    to its longest sentence (rounded up to `granularity`).
    """
    dataset = tf.data.Dataset.from_tensor_slices(encoded)
    count = len(encoded[1])

    def make(epoch_seed=None):
        examples = dataset
        if epoch_seed is not None:
            examples = examples.shuffle(count, seed=epoch_seed)
        return examples.batch(batch_size).map(_trim(granularity))

    if not training:
        return prefetched(make())
    return Epochs(lambda epoch: make(epoch_seed(seed, epoch)))
