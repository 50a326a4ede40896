"""Stage 2 of the offline image-transfer demo: digits 5-9 from 10 labels each.

    kft-fetch digits
    kft-train --experiment=digits_pretrain --model_dir=runs/digits_pretrain
    kft-train --experiment=digits_transfer --model_dir=runs/digits_probe \
        --config.plan=linear_probe
    kft-train --experiment=digits_transfer --model_dir=runs/digits_two_phase
    kft-train --experiment=digits_transfer --model_dir=runs/digits_scratch \
        --config.weights=none --config.plan=full

Fine-tunes the ResNet50 that digits_pretrain.py trained on digits 0-4 (its
weights file loaded through --config.weights, as a user's ImageNet file
would be) on digits 5-9 with only 10 labelled images per class, and tests
on the other 846 images of 5-9. The third run, from random weights, is the
baseline that shows what the transfer is worth.

Expected result and runtime: see the closing note of the core issue for
the measured figures of each run on the 2-core CPU.
"""

from kft import assets
from kft.config import default_config


def get_config():
    config = default_config()
    config.backbone = "ResNet50"
    config.weights = "runs/digits_pretrain/checkpoints/backbone.weights.h5"
    config.data.train = assets.file("digits", "finetune")
    config.data.test = assets.file("digits", "test")
    config.data.image_size = 32
    config.data.validation_fraction = 0.2
    config.data.batch_size = 16
    config.plan = "two_phase"
    config.head_epochs = 10
    config.head_learning_rate = 1e-2
    config.epochs = 10
    config.learning_rate = 1e-4
    config.monitor = "val_accuracy"
    return config
