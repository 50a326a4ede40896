"""Predict a number from a text (a rating, a score): no Python needed.

    kft-train --experiment=text_regressor --model_dir=runs/scores \
        --config.backbone=bert_base_en_uncased \
        --config.data.train=scores.csv --config.data.label_column=score

A linear head; the loss is MSE (or --config.regression.loss=huber) on
targets standardized by the training targets' mean and std
(--config.regression.scaling=none turns it off); the model itself answers
in the targets' units, so metrics, kft-predict and the export's `score`
need no undoing (target_scaling.json records mean and std). metrics.json:
MAE, RMSE, Pearson and Spearman correlation. The best epoch is kept by
validation RMSE; held-out splits are random. With text_pair_column it
scores pairs (similarity, as STS-B).

Expected result: depends on the data. Measured 2026-11-28 on the 2-core
CPU (shared) with MiniLM on the drug reviews' sentiment as a number
(negative 0, neutral 1, positive 2), this experiment with
--config.backbone=~/.cache/kft/minilm --config.plan=full
--config.epochs=2 --config.learning_rate=1e-4
--config.data.batch_size=16: test MAE 0.626, RMSE 0.758, Pearson 0.487,
where always answering the training mean scores MAE 0.790; 926 s
(docs/tasks/regression.md).
"""

from kft.config import default_config


def get_config():
    config = default_config()
    config.backbone = "bert_base_en_uncased"
    config.task = "regression"
    config.monitor = "val_rmse"
    return config
