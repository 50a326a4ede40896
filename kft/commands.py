"""kft-evaluate and kft-export on a finished run, of any task: its config,
its model with the best weights, the decision it tuned, the split to
evaluate. What varies by task is the task's (kft/tasks/base.py); a
LiteRT export (`export_litert_run`) is a classifier's only."""

import json
import os

from kft import config as config_lib
from kft.core import files, run_folder
from kft.core.errors import UserError
from kft.core.run_folder import METRICS
from kft.core.run_folder import log as _log
from kft.tasks import registry

# What a finished run cannot change: the model its weights fit, and the
# held-out splits carved from its training data (another carve would
# score examples it trained on).
FIXED = (
    "task", "backbone", "ensemble", "head.pooling", "head.hidden_units",
    "head.hidden_activation", "lm.lora", "lm.lora_rank", "data.train",
    "data.split_seed", "data.test_fraction", "data.validation_fraction",
    "data.image_size", "data.tag_scheme", "regression.scaling",
)  # fmt: skip
# What only steers training: accepted, and named as ignored.
TRAINING_ONLY = (
    "epochs", "head_epochs", "learning_rate", "head_learning_rate",
    "layer_decay", "optimizer.", "schedule.", "checkpoint.", "lr_find",
    "lr_find_options.", "seed", "plan", "phases", "resume", "monitor",
    "weights", "export", "litert.", "early_stopping_patience",
    "label_smoothing", "class_weight",
    "backbone_dropout", "cache_features", "train_batchnorm", "head.dropout",
    "deterministic", "regression.loss", "regression.huber_delta",
    "data.batch_size", "data.augment", "data.mixup", "data.cutmix",
    "data.validation",
)  # fmt: skip


def read_run_config(model_dir, overrides=(), log=_log):
    """A finished run's config.json with `overrides` applied and checked.

    A key in FIXED is a UserError; keys in TRAINING_ONLY are named in one
    `log` line as ignored."""
    keys = [key for key, _ in overrides]
    for key in keys:
        if key in FIXED:
            raise UserError(
                f"--config.{key} was fixed when the run in {model_dir} "
                "trained; train a new run to change it"
            )
    config = run_folder.read_config(model_dir)
    config_lib.apply_overrides(config, overrides)
    config_lib.check_values(config)
    ignored = [key for key in keys if _matches(key, TRAINING_ONLY)]
    if ignored:
        log(
            "ignored: "
            + ", ".join(f"--config.{key}" for key in ignored)
            + " (they steer training; the run has trained)"
        )
    return config


def _matches(key, names):
    """Whether `key` is one of `names` or lies under one ending in '.'."""
    return any(
        key == name or (name.endswith(".") and key.startswith(name))
        for name in names
    )


def load_run(model_dir, config):
    """(task, labels, built): a finished run rebuilt, with its best
    weights."""
    task = registry.get(config.task)
    labels, built = task.load(model_dir, config)
    return task, labels, built


def export_run(model_dir, base):
    """Exports a finished run's best weights to `base/<N>/` (kft-export),
    checked on the sample the run's own export was checked on."""
    config = read_run_config(model_dir)
    task, labels, built = load_run(model_dir, config)
    path, _ = task.export(
        built,
        labels,
        base,
        task.read_sample(model_dir),
        task.load_decision(config, model_dir, labels),
        config,
        run_folder.weights_path(model_dir),
    )
    return path


def check_split(model_dir, built, split):
    """Refuses a split of images for a text run, or the reverse."""
    modality = getattr(split, "modality", "")
    if modality and modality != built.modality:
        raise UserError(
            f"the run in {model_dir} takes {built.modality} but "
            f"{split.source} holds {modality}"
        )


def export_litert_run(model_dir, quantization="none", integer_io=False):
    """Writes a finished run's MODEL_DIR/litert/model_<mode>.tflite
    (kft-export --format=litert), checked on the run's evaluation split
    (its test split, or --config.data.test); returns the path."""
    config = read_run_config(model_dir)
    config.litert.quantization = quantization
    config.litert.integer_io = integer_io
    config_lib.check_values(config)
    task = registry.get(config.task)
    task.refuse_unsupported(config)
    labels, built = task.load(model_dir, config)
    decision = task.load_decision(config, model_dir, labels)
    split = task.evaluation_split(config, labels, model_dir)
    check_split(model_dir, built, split)
    path, figures = task.export_litert(
        built, labels, model_dir, split, decision, config
    )
    _log(
        f"wrote {path}: accuracy {figures['accuracy']:.4f} (Keras "
        f"{figures['keras_accuracy']:.4f}) on {figures['examples']} "
        f"examples, agreement {figures['agreement']:.1%}"
    )
    return path


def evaluate_run(model_dir, overrides=(), saved_model=""):
    """kft-evaluate: metrics of a finished run (or its export) on a split.

    Writes MODEL_DIR/eval/<split file name>/ (metrics.json,
    predictions.jsonl, report.html); returns the metrics.
    """
    config = read_run_config(model_dir, overrides)
    task, labels, built = load_run(model_dir, config)
    decision = task.load_decision(config, model_dir, labels)
    split = task.evaluation_split(config, labels, model_dir)
    check_split(model_dir, built, split)
    folder = run_folder.eval_folder(model_dir, split.source)
    if saved_model:
        report = task.serve(
            built, saved_model, split, labels, config, decision, folder
        )
    else:
        report = task.evaluate(built, split, labels, config, decision, folder)
    report["source"] = split.source
    report["model"] = saved_model or run_folder.weights_path(model_dir)
    path = os.path.join(folder, METRICS)
    files.write_text(path, json.dumps(report, indent=2))
    print(task.format_table(report), flush=True)
    _log(f"wrote {path}")
    run_config = json.loads(config_lib.to_json(config))
    _log(f"report: {task.write_report(folder, run_config)}")
    return report
