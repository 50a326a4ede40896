"""kft-evaluate and kft-export on a finished run: its config, its model
with the best weights, the decision it tuned, the split to evaluate.

A tokens, qa or causal_lm run hands both commands to its task module
(kft/tasks/registry.py); classification, multilabel and regression runs
are rebuilt and judged here, with kft/run.py's evaluation.
"""

import json
import os

from kft import config as config_lib
from kft.core import run_folder
from kft.core.run_folder import SAMPLE_FILE, WEIGHTS_FILE
from kft.core.run_folder import log as _log
from kft.model import builder
from kft.report import page as report_lib
from kft.serving import export, parity
from kft.tasks import dispatch as tasks
from kft.tasks import labelled, registry
from kft.tasks.classification import metrics as evaluation
from kft.tasks.classification import threshold


def read_run_config(model_dir, overrides=()):
    """A finished run's config.json with `overrides` applied and checked."""
    config = run_folder.read_config(model_dir)
    config_lib.apply_overrides(config, overrides)
    config_lib.check_values(config)
    return config


def load_run(model_dir, config):
    """Rebuilds a finished classification, multilabel or regression run:
    returns (labels, built), the model carrying the run's best weights."""
    labels = run_folder.read_labels(model_dir)
    weights = run_folder.weights_path(model_dir)
    return labels, builder.rebuild(config, len(labels), weights)


def export_run(model_dir, base):
    """Exports a finished run's best weights to `base/<N>/` (kft-export);
    a tokens, qa or causal_lm run exports through its task module."""
    config = read_run_config(model_dir)
    if config.task in registry.OWN_RUNS:
        return registry.module(config.task).export_run(model_dir, config, base)
    labels, built = load_run(model_dir, config)
    sample = parity.load_sample(os.path.join(model_dir, SAMPLE_FILE))
    path, _ = export.export(
        built,
        labels,
        base,
        sample,
        run_folder.weights_path(model_dir),
        log=_log,
        threshold=_decision(config, model_dir, labels),
        delimiter=config.data.label_delimiter,
    )
    return path


def _decision(config, model_dir, labels):
    """How a finished run decides: its threshold(s), or None."""
    if config.task != "classification":
        return tasks.load_decision(config, model_dir, labels)
    record = threshold.load(config.eval.threshold, model_dir, len(labels))
    return threshold.value(record)


def evaluate_run(model_dir, overrides=(), saved_model=""):
    """kft-evaluate: metrics of a finished run (or its export) on a split.

    Writes MODEL_DIR/eval/<split file name>/metrics.json; returns the dict.
    """
    config = read_run_config(model_dir, overrides)
    if config.task in registry.OWN_RUNS:
        module = registry.module(config.task)
        return module.evaluate_run(model_dir, config, saved_model)
    labels, built = load_run(model_dir, config)
    cut = _decision(config, model_dir, labels)
    split = labelled.evaluation_split(config, labels, model_dir)
    folder = run_folder.eval_folder(model_dir, split.source)
    if saved_model:
        probabilities = parity.serve_probabilities(
            saved_model, split, built.modality
        )
    if saved_model and config.task != "classification":
        report = labelled.task_report(
            config.task, split, probabilities, labels, cut, folder
        )
    elif saved_model:
        labelled.write_predictions(
            split, probabilities, labels, built.modality, folder, cut
        )
        report = evaluation.classification_report(
            split.label_ids, probabilities, labels, split.name, cut
        )
    else:
        report = labelled.evaluate(built, split, labels, config, cut, folder)
    report["source"] = split.source
    report["model"] = saved_model or os.path.join(model_dir, WEIGHTS_FILE)
    evaluation.write_report(report, os.path.join(folder, "metrics.json"))
    print(labelled.format_table(report), flush=True)
    _log(f"wrote {os.path.join(folder, 'metrics.json')}")
    run_config = json.loads(config_lib.to_json(config))
    _log(f"report: {report_lib.write(folder, run_config)}")
    return report
