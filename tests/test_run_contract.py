"""Every task behind the one interface (kft/tasks/base.py): the methods the
run flow calls, the one-line refusals of what a task lacks, and a test
per task that checks its run folder against `conftest.assert_run_contract`.
"""

import ast
import pathlib

import pytest

from kft import config as config_lib
from kft.core.errors import UserError
from kft.tasks import base, registry

TESTS = pathlib.Path(__file__).parent
# Each task's end-to-end test, which calls assert_run_contract on its run.
CONTRACT_TESTS = {
    "classification": ("test_cli.py", "test_text_classifier_end_to_end"),
    "multilabel": ("test_tasks.py", "test_multilabel_end_to_end"),
    "regression": ("test_tasks.py", "test_pair_regression_end_to_end"),
    "tokens": ("test_tokens.py", "test_kft_train_token_classifier_end_to_end"),
    "qa": ("test_qa.py", "test_kft_train_qa_end_to_end"),
    "causal_lm": ("test_generation.py", "test_kft_train_causal_lm_end_to_end"),
}
# What a task must give; the rest has defaults in base.Task.
REQUIRED = (
    "prepare",
    "batches",
    "compile",
    "evaluate",
    "evaluation_split",
    "export_sample",
    "export",
    "format_table",
    "write_report",
)
# A setting that turns each feature on.
TURN_ON = {
    "lr_find": ("lr_find", True),
    "class_weight": ("class_weight", "balanced"),
    "label_smoothing": ("label_smoothing", 0.1),
    "mixup": ("data.mixup", 0.2),
    "augment": ("data.augment", "flip"),
    "litert": ("litert.quantization", "none"),
    "ensemble": ("ensemble", 3),
}


def test_every_task_has_a_contract_test():
    assert set(CONTRACT_TESTS) == set(registry.TASKS)
    for task, (file_name, function) in CONTRACT_TESTS.items():
        tree = ast.parse((TESTS / file_name).read_text())
        found = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef) and node.name == function
        ]
        assert found, f"{file_name}::{function} ({task}) is missing"
        calls = {
            node.func.id
            for node in ast.walk(found[0])
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        }
        assert "assert_run_contract" in calls, f"{function} ({task})"


@pytest.mark.parametrize("name", sorted(registry.TASKS))
def test_every_task_gives_what_the_flow_calls(name):
    task = registry.TASKS[name]
    assert task.name == name
    assert isinstance(task, base.Task)
    for method in REQUIRED:
        assert getattr(type(task), method) is not getattr(base.Task, method), (
            f"{name} lacks {method}"
        )
    assert "loss" in task.metrics
    assert task.unsupported <= set(base.FEATURES)


CASES = [
    (name, feature)
    for name in sorted(registry.TASKS)
    for feature in sorted(registry.TASKS[name].unsupported)
]


@pytest.mark.parametrize("name,feature", CASES)
def test_what_a_task_lacks_is_refused_in_one_line(name, feature):
    config = config_lib.default_config()
    config.task = name
    config.monitor = "val_loss"
    key, value = TURN_ON[feature]
    node = config
    *parents, last = key.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    with pytest.raises(UserError) as caught:
        registry.get(name).check_common(config)
    message = str(caught.value)
    assert "\n" not in message
    assert f"task {name}" in message and key.split(".")[-1] in message


@pytest.mark.parametrize("name", sorted(registry.TASKS))
def test_a_monitor_the_task_does_not_report_is_refused(name):
    config = config_lib.default_config()
    config.task = name
    config.monitor = "val_no_such_metric"
    with pytest.raises(UserError, match=f"not a {name} metric; valid: val_"):
        registry.get(name).check_common(config)


def test_an_unknown_task_lists_the_valid_ones():
    with pytest.raises(UserError, match="valid: classification, multilabel"):
        registry.get("clasification")


def test_runs_on_several_workers_are_for_the_labelled_tasks():
    """test_distribute trains these on two workers; the others refuse."""
    several = {
        name for name, task in registry.TASKS.items() if task.multi_worker
    }
    assert several == {"classification", "multilabel", "regression"}
