"""ImageNet ResNet50 fine-tuned on tf_flowers (5 classes, 3,670 photos).

    kft-train --experiment=flowers_resnet50 --model_dir=runs/flowers_resnet50

Needs the internet (ImageNet weights from Keras, tf_flowers from TFDS).
tf_flowers has a single split: 70% train, 15% validation, 15% test by
slicing. The keras-io transfer-learning examples reach about 0.90-0.95
accuracy with frozen or lightly fine-tuned ImageNet CNNs on it.

Not run here: the machines that build kft have no hub access. A test builds
this config with a tiny stand-in backbone and data.
"""

from kft.config import default_config


def get_config():
    config = default_config()
    config.backbone = "ResNet50"
    config.weights = "imagenet"
    config.data.train = "tfds:tf_flowers:train[:70%]"
    config.data.validation = "tfds:tf_flowers:train[70%:85%]"
    config.data.test = "tfds:tf_flowers:train[85%:]"
    config.data.image_size = 224
    config.data.augment = "flip,crop"
    config.plan = "two_phase"
    config.head_epochs = 2
    config.epochs = 4
    config.learning_rate = 3e-5
    return config
