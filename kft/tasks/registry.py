"""Finds the module of a task whose runs live on their own.

tokens, qa and causal_lm runs are `kft/tasks/<task>/task.py`, found by
name as big_vision finds an evaluator, so the run imports no task module
statically. Each has the same three commands:

- `train(config, model_dir, overwrite, strategy)`: kft-train;
- `evaluate_run(model_dir, config, saved_model)`: kft-evaluate, with the
  run's config (overrides applied); writes eval/<name>/;
- `export_run(model_dir, config, base)`: kft-export; returns the path.

classification, multilabel and regression runs go through kft/run.py.
"""

import importlib

OWN_RUNS = ("tokens", "qa", "causal_lm")


def module(task):
    """kft/tasks/<task>/task.py of a task in OWN_RUNS."""
    return importlib.import_module(f"kft.tasks.{task}.task")
