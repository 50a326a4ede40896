"""Text preprocessing for keras-hub backbones that ship no classifier one.

keras-hub has `TextClassifierPreprocessor` subclasses for most families
(BERT, RoBERTa, DeBERTaV3, ...) but not all (ELECTRA). `TokenPacker` is
the same thing built from the family's tokenizer: [CLS] text [SEP],
padded, with segment ids and a padding mask.
"""

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

    def __call__(self, texts):
        texts = tf.convert_to_tensor(texts)
        token_ids, segment_ids = self.packer((self.tokenizer(texts),))
        return {
            "token_ids": token_ids,
            "segment_ids": segment_ids,
            "padding_mask": token_ids != self.tokenizer.pad_token_id,
        }


def text_preprocessor(preset, sequence_length):
    """The family's classifier preprocessor, or a TokenPacker."""
    import keras_hub

    try:
        return keras_hub.models.TextClassifierPreprocessor.from_preset(
            preset, sequence_length=sequence_length
        )
    except ValueError:
        tokenizer = keras_hub.models.Tokenizer.from_preset(preset)
        return TokenPacker(tokenizer, sequence_length)
