"""Fine-tune a text backbone on your own labelled texts: no Python needed.

    kft-train --experiment=text_classifier --model_dir=runs/my_texts \
        --config.backbone=bert_base_en_uncased \
        --config.data.train=reviews.csv \
        --config.data.text_column=review --config.data.label_column=stars

The backbone is a keras-hub preset name (online), a local keras-hub preset
folder or a local Hugging Face checkpoint folder (BERT, DistilBERT, RoBERTa,
DeBERTaV3, ALBERT, ELECTRA). Data is a .csv, .tsv or .jsonl file; without
--config.data.validation / --config.data.test, 15% of the training data is
held out for each (stratified, seeded), and the log says so.

Defaults: two_phase (the head for 1 epoch at 1e-3, then everything for 3
epochs at 5e-5 with warmup and cosine decay), AdamW with weight decay 0.01,
sequence length from the data, length-grouped batches of 32, the best
epoch by validation macro-F1 kept. Expected result: depends on your data;
on the drug-review demo see drug_reviews_minilm.py.
"""

from kft.config import default_config


def get_config():
    config = default_config()
    config.backbone = "bert_base_en_uncased"
    return config
