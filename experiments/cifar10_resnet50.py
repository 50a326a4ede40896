"""ImageNet ResNet50 fine-tuned on CIFAR-10 through TFDS.

    kft-train --experiment=cifar10_resnet50 --model_dir=runs/cifar10_resnet50

Needs the internet (ImageNet weights from Keras, cifar10 from TFDS) and a
GPU to be quick. 32x32 images are resized to 160x160 so the pretrained
filters see objects at a familiar scale; 10% of the training split is
validation, the 10,000-image test split is the test.

Not run here: the machines that build kft have no hub access. A test builds
this config with a tiny stand-in backbone and data. Fine-tuned ImageNet
ResNet50s commonly reach 0.95-0.97 test accuracy on CIFAR-10 at this size.
"""

from kft.config import default_config


def get_config():
    config = default_config()
    config.backbone = "ResNet50"
    config.weights = "imagenet"
    config.data.train = "tfds:cifar10:train[:90%]"
    config.data.validation = "tfds:cifar10:train[90%:]"
    config.data.test = "tfds:cifar10:test"
    config.data.image_size = 160
    config.data.augment = "flip,crop"
    config.data.batch_size = 64
    config.plan = "two_phase"
    config.epochs = 5
    config.learning_rate = 1e-4
    config.precision = "mixed_float16"
    config.monitor = "val_accuracy"
    return config
