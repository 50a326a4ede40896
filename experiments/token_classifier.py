"""Fine-tune a text backbone to tag words (named entities): no Python.

    kft-train --experiment=token_classifier --model_dir=runs/my_ner \
        --config.backbone=bert_base_en_uncased \
        --config.data.train=train.conll --config.data.test=test.conll

Data: CoNLL-style files (a word and its tag per line, the tag last, a
blank line between sentences, -DOCSTART- lines skipped), .jsonl files with
a `tokens` and a `tags` list per line, or a TFDS dataset such as
`tfds:conll2003:train` (features `tokens` and `ner`; other names with
--config.data.tokens_column / tags_column). Tags are BIO (IOB2) by
default; --config.data.tag_scheme=bioes for B/I/E/S tags. Without
--config.data.validation / test, a seeded 15% of the training sentences
is held out for each.

The backbone must have a WordPiece tokenizer with [CLS]/[SEP]/[PAD] (the
BERT family: BERT, DistilBERT, ELECTRA, MiniLM checkpoints); each word's
first piece carries its tag. Defaults: the whole model trained for 3 epochs
at 5e-5 (AdamW, warmup and cosine decay; a fresh per-token head learns
fast enough alongside), batches of 32 sentences, sequence length from the
data (99th percentile of word pieces per sentence), the best epoch by
validation tag macro-F1 kept. metrics.json holds seqeval's entity-level
micro precision, recall and F1 (default and strict mode) and per-type
figures; the export takes raw text and returns entity spans.

Expected result: depends on your data. On the template sentences
tests/test_tokens.py generates (255 training sentences), MiniLM
(kft-fetch minilm), plan full, 2 epochs at 1e-4, batches of 16, on the
2-core CPU: entity F1 1.000 on 150 test sentences with the training
names, 0.605 on 150 whose names never occur in training; 128 s with the
export (docs/tasks/tokens.md).
"""

from kft.config import default_config


def get_config():
    config = default_config()
    config.task = "tokens"
    config.backbone = "bert_base_en_uncased"
    config.plan = "full"
    config.epochs = 3
    config.learning_rate = 5e-5
    return config
