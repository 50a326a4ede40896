"""Text preprocessing: cleaning, then the backbone's tokenizer and packer.

`TextPreprocessor` is what the data pipeline, evaluation and the exported
serving graph all call, so the three see the same token ids: it cleans the
text with TensorFlow ops (`clean_text`) and packs it with the family's
keras-hub classifier preprocessor, or with `TokenPacker` for families that
ship none (ELECTRA): [CLS] text [SEP], padded, with segment ids and a
padding mask. A pair of texts packs as [CLS] text [SEP] pair [SEP], segment
ids 0 then 1, both cut round robin to fit the sequence length.
"""

import html

import tensorflow as tf


class TokenPacker:
    """Tokenizes and packs texts into the inputs of a BERT-style backbone.

    Args:
        tokenizer: a keras-hub tokenizer with cls/sep/pad token ids.
        sequence_length: the padded length of every row.
    """

    def __init__(self, tokenizer, sequence_length):
        import keras_hub

        self.tokenizer = tokenizer
        self.packer = keras_hub.layers.MultiSegmentPacker(
            start_value=tokenizer.cls_token_id,
            end_value=tokenizer.sep_token_id,
            pad_value=tokenizer.pad_token_id,
            sequence_length=sequence_length,
        )

    @property
    def sequence_length(self):
        return self.packer.sequence_length

    @sequence_length.setter
    def sequence_length(self, value):
        self.packer.sequence_length = value

    def __call__(self, texts, pairs=None):
        segments = (texts,) if pairs is None else (texts, pairs)
        token_ids, segment_ids = self.packer(
            tuple(self.tokenizer(tf.convert_to_tensor(s)) for s in segments)
        )
        return {
            "token_ids": token_ids,
            "segment_ids": segment_ids,
            "padding_mask": token_ids != self.tokenizer.pad_token_id,
        }


# Entities html.unescape would undo, as (pattern, text) pairs for RE2:
# decimal and hex references to printable ASCII and common typography,
# and their names. "&amp;" goes last so "&amp;quot;" stays "&quot;".
_TYPOGRAPHY = {
    "nbsp": 160,
    "times": 215,
    "ndash": 8211,
    "mdash": 8212,
    "lsquo": 8216,
    "rsquo": 8217,
    "sbquo": 8218,
    "ldquo": 8220,
    "rdquo": 8221,
    "bull": 8226,
    "hellip": 8230,
    "quot": 34,
    "apos": 39,
    "lt": 60,
    "gt": 62,
}
_CODES = [*range(32, 38), *range(39, 127), *_TYPOGRAPHY.values()]


def _rewrite(code):
    return "\\\\" if code == 92 else chr(code)


_ENTITIES = [
    (f"&#(0*{code}|[xX]0*{code:x});", _rewrite(code)) for code in _CODES
]
_ENTITIES += [(f"&{name};", _rewrite(c)) for name, c in _TYPOGRAPHY.items()]
_ENTITIES += [("&#(0*38|[xX]0*26);", "&"), ("&amp;", "&")]
WHITE_SPACE = r"[\s\p{Z}\x{85}\x{1c}-\x{1f}]+"


def clean_text(texts):
    """Undoes common HTML entities and collapses white space, in TF ops.

    Graph-safe (it runs inside the SavedModel too). It covers the entities
    scraped text carries (&#039;, &quot;, &amp;, &rsquo;, ...), not all of
    HTML's; `python_clean_text` is the reference it is tested against.
    """
    texts = tf.convert_to_tensor(texts, tf.string)
    has_entity = tf.strings.regex_full_match(texts, "(?s).*&.*;.*")
    cleaned = texts
    for pattern, rewrite in _ENTITIES:
        cleaned = tf.strings.regex_replace(cleaned, pattern, rewrite)
    texts = tf.where(has_entity, cleaned, texts)
    # Python's str.split() white space: ASCII, Unicode separators, \x1c-\x1f.
    texts = tf.strings.regex_replace(texts, WHITE_SPACE, " ")
    return tf.strings.strip(texts)


def python_clean_text(text):
    """What `clean_text` approximates: html.unescape, then one space."""
    return " ".join(html.unescape(text).split())


class TextPreprocessor:
    """Cleans (optionally) and packs texts into a text backbone's inputs.

    Args:
        packer: a keras-hub classifier preprocessor or a `TokenPacker`.
        clean: whether to run `clean_text` first.
    """

    def __init__(self, packer, clean=True):
        self.inner = packer
        self.clean = clean

    @property
    def sequence_length(self):
        return self.inner.sequence_length

    @sequence_length.setter
    def sequence_length(self, value):
        self.inner.sequence_length = value

    @property
    def packer(self):
        """The MultiSegmentPacker (None until a keras-hub one first runs)."""
        return getattr(self.inner, "packer", None)

    def layers(self):
        """The Keras layers an export must track (tokenizer tables)."""
        if isinstance(self.inner, TokenPacker):
            return [self.inner.tokenizer, self.inner.packer]
        return [self.inner]

    def __call__(self, texts, pairs=None):
        """Packs `texts`, or the pairs (`texts`, `pairs`) with segment ids."""
        segments = [texts] if pairs is None else [texts, pairs]
        segments = [tf.convert_to_tensor(s, tf.string) for s in segments]
        if self.clean:
            segments = [clean_text(s) for s in segments]
        if pairs is None:
            packed = self.inner(segments[0])
        else:  # by keyword: a positional tuple is taken for (x, y)
            packed = self.inner(x=tuple(segments))
        if isinstance(packed, tuple):  # keras-hub's (x, y, sample_weight)
            packed = packed[0]
        return packed


def text_preprocessor(preset, sequence_length, clean=True):
    """A TextPreprocessor over the family's classifier preprocessor."""
    import keras_hub

    try:
        packer = keras_hub.models.TextClassifierPreprocessor.from_preset(
            preset, sequence_length=sequence_length
        )
    except ValueError:
        tokenizer = keras_hub.models.Tokenizer.from_preset(preset)
        packer = TokenPacker(tokenizer, sequence_length)
    return TextPreprocessor(packer, clean)
