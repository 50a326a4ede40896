"""Fine-tune a text backbone on pairs of texts: no Python needed.

    kft-train --experiment=pair_classifier --model_dir=runs/pairs \
        --config.backbone=bert_base_en_uncased \
        --config.data.train=pairs.csv \
        --config.data.text_column=question --config.data.text_pair_column=answer

Pairs are two texts judged together: paraphrase (GLUE MRPC, QQP),
entailment (MNLI, RTE), question-answer relevance, similarity (STS-B).
The backbone packs them as one input, [CLS] text [SEP] pair [SEP] with
segment ids 0 then 1, both texts cut round robin to the sequence length
(picked from the lengths of both); the export's `serving_default` takes
`text` and `text_pair`. Without column names, known pairs are found by
themselves (sentence1/sentence2, question/context, premise/hypothesis,
question1/question2, question/sentence).

Similarity as a number (STS-B's 0-5 scores) is a regression on pairs:

    kft-train --experiment=pair_classifier --model_dir=runs/stsb \
        --config.data.train=tfds:glue/stsb:train \
        --config.data.test=tfds:glue/stsb:validation \
        --config.task=regression --config.monitor=val_rmse

Offline, give a local backbone folder (keras-hub preset or Hugging Face
checkpoint, e.g. MiniLM after `kft-fetch minilm`: ~/.cache/kft/minilm)
and a local .csv, .tsv or .jsonl file. TFDS datasets (glue/mrpc,
glue/mnli) need the internet or a prepared --config.data.tfds_data_dir.

Defaults: those of text_classifier (two_phase, AdamW, the best epoch by
validation macro-F1, masked mean pooling over both texts).

Expected result: depends on the data. Measured 2026-11-28 on the 2-core
CPU (shared) with MiniLM, plan full, 2 epochs at 1e-4, batches of 16, on
pairs made from the drug reviews (a review with its own condition or
another one; 597 training pairs, 375 test pairs): test accuracy 0.675,
macro-F1 0.658 at the threshold tuned on 90 validation pairs (tuned then
for the F1 of class 1; two-class runs now tune for macro-F1), 0.731 and
0.730 by argmax; 1293 s (docs/tasks/pairs.md).
"""

from kft.config import default_config


def get_config():
    config = default_config()
    config.backbone = "bert_base_en_uncased"
    return config
