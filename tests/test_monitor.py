"""The monitored figure (kft/core/monitor.py): which way is better, and a
clear error for a figure the task does not log."""

import pytest

from kft.core.errors import UserError
from kft.core.monitor import Monitor

CLASSIFICATION = ("accuracy", "macro_f1")
REGRESSION = ("mae", "rmse")


@pytest.mark.parametrize(
    "name, metrics, value, best, better",
    [
        ("val_macro_f1", CLASSIFICATION, 0.8, 0.7, True),
        ("val_macro_f1", CLASSIFICATION, 0.7, 0.8, False),
        ("val_loss", CLASSIFICATION, 0.3, 0.4, True),
        ("loss", CLASSIFICATION, 0.4, 0.3, False),
        ("val_rmse", REGRESSION, 1.0, 2.0, True),
        ("mae", REGRESSION, 2.0, 1.0, False),
        ("val_accuracy", CLASSIFICATION, 0.1, None, True),
        ("val_loss", CLASSIFICATION, 9.0, None, True),
        ("val_accuracy", CLASSIFICATION, 0.5, 0.5, False),
    ],
)
def test_better(name, metrics, value, best, better):
    monitor = Monitor.of(name, metrics + ("loss",), "some")
    assert monitor.better(value, best) is better


def test_a_figure_the_task_does_not_log_is_one_line():
    with pytest.raises(
        UserError,
        match=r"^--config.monitor=val_f1 is not a classification metric; "
        r"valid: val_accuracy, .* \(or without val_\)$",
    ):
        Monitor.of("val_f1", CLASSIFICATION, "classification")
