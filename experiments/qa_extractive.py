"""Extractive question answering: a span head on a text backbone.

    kft-train --experiment=qa_extractive --model_dir=runs/squad \
        --config.backbone=bert_base_en_uncased

Data: SQuAD v1.1 from TFDS by default; your own as SQuAD JSON (v1.1 or
v2.0, with unanswerable questions) or JSONL with question, context and
answers: --config.data.train=train.json --config.data.test=dev.json.
Without a validation spec, 10% of the training questions are held out by
context. Contexts longer than 384 tokens are cut into windows 128 tokens
apart; answers are at most 30 tokens; with unanswerable questions the
no-answer threshold is tuned on validation.

Defaults: every layer trained from the start (plan full) for 2 epochs at a
peak 3e-5 with 10% warmup and cosine decay, AdamW, batch 32, the epoch
with the lowest validation loss kept. The export's serving_default takes
`question` and `context` strings and returns `answer`, `start`, `end`
(character offsets) and `score`.

Expected result: not measured by kft yet (a full SQuAD run needs a GPU);
the BERT paper reports 80.8 exact match / 88.5 F1 for BERT-base on SQuAD
v1.1 dev with this recipe. tests/test_real_minilm.py fine-tunes MiniLM
for 4 steps on questions made from drug reviews.
"""

from kft.config import default_config


def get_config():
    config = default_config()
    config.task = "qa"
    config.backbone = "bert_base_en_uncased"
    config.data.train = "tfds:squad/v1.1:train"
    config.data.test = "tfds:squad/v1.1:validation"
    config.data.validation_fraction = 0.1
    config.plan = "full"
    config.epochs = 2
    config.learning_rate = 3e-5
    config.monitor = "val_loss"
    return config
