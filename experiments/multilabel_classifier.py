"""Tag texts with any number of labels each: no Python needed.

    kft-train --experiment=multilabel_classifier --model_dir=runs/tags \
        --config.backbone=bert_base_en_uncased \
        --config.data.train=tags.jsonl --config.data.label_column=tags

A label is a JSON list in a .jsonl file (["sports", "politics"]; [] is an
example with none of the labels), or text split by
--config.data.label_delimiter (default ",") in any file. One sigmoid per
label, binary cross-entropy; after training each label gets the threshold
that maximizes its F1 on the validation split (thresholds.json), used by
the test metrics, kft-evaluate and the export. metrics.json: micro- and
macro-F1, per-label precision/recall/F1, subset accuracy, Hamming loss.
The export answers `probabilities`, `decisions` (0/1 per label) and
`labels` (the chosen names joined by the delimiter).

Held-out validation and test splits are random (not stratified). Defaults
otherwise as text_classifier; the best epoch is kept by validation
macro-F1 at 0.5.

Expected result: depends on the data; no multi-label corpus is among the
offline assets. On the tests' generated data (80 short texts tagged pos
and/or neg, the 2-layer test BERT, one epoch): test micro-F1 0.571,
macro-F1 0.567 on 12 held-out texts (docs/tasks/multilabel.md).
"""

from kft.config import default_config


def get_config():
    config = default_config()
    config.backbone = "bert_base_en_uncased"
    config.task = "multilabel"
    return config
