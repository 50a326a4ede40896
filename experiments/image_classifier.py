"""Fine-tune an image backbone on your own images: no Python needed.

    kft-train --experiment=image_classifier --model_dir=runs/my_images \
        --config.backbone=EfficientNetB0 --config.data.train=photos/

photos/ holds one sub-folder per class (JPEG, PNG, BMP, GIF). The backbone
is any keras.applications name of the table in kft/model/backbones.py with
--config.weights=imagenet (downloaded; the default), none, or a local
.weights.h5 file; or a keras-hub image preset or local preset folder.
TFDS works too: --config.data.train=tfds:tf_flowers:train[:80%].

Defaults: two_phase (the head for 1 epoch at 1e-3, then everything but
BatchNorm for 3 epochs at 5e-5), images resized to the backbone's size and
normalized the backbone's way inside the model; training images randomly
flipped and cropped (--config.data.augment=flip,crop: label-preserving for
photos of objects, and what little data needs most; set it to "" for text
or digits-like images where a mirror changes the class). Expected result:
depends on your data; see flowers_resnet50.py for a public reference.
"""

from kft.config import default_config


def get_config():
    config = default_config()
    config.backbone = "EfficientNetB0"
    config.data.batch_size = 32
    config.data.augment = "flip,crop"
    return config
