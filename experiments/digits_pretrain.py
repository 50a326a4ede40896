"""Narrow pretraining, for contrast: learn digits 0-4 from scratch.

    kft-fetch digits
    kft-train --experiment=digits_pretrain --model_dir=runs/digits_pretrain

Trains a randomly initialized ResNet50 (from the backbone table) on the 901
scikit-learn 8x8 digits 0-4, upscaled to 32x32. The run folder keeps the
backbone's weights as checkpoints/backbone.weights.h5, which
digits_transfer.py loads back through --config.weights, the same path a
user's ImageNet weights file takes. BatchNorm trains here, since there are
no pretrained statistics to protect.

Expected result (2026-11-23, the commands above, on the 2-core CPU shared
with another run): 0.919 accuracy on the 135 held-out 0-4 images, 595 s
for 8 epochs. Its features transfer to digits 5-9 worse than random
weights do, where mnist_pretrain.py's (more images, all ten classes, from
another source) transfer well: see digits_transfer.py.
"""

from kft.core import assets, experiments


def get_config():
    config = experiments.load("mnist_pretrain")  # the same training
    config.data.train = assets.file("digits", "pretrain")
    config.data.validation_fraction = 0.15
    config.data.test_fraction = 0.15
    return config
