"""The line each epoch ends with (kft/core/progress.py)."""

import pytest

from kft.core import progress


@pytest.mark.parametrize(
    "done, total, seconds, line",
    [
        (1, 4, 150.2, "epoch 1/4: 2.5 min; about 7.5 min of training left"),
        (2, 3, 12, "epoch 2/3: 12 s; about 12 s of training left"),
        (4, 4, 30, "epoch 4/4: 30 s"),
        (1, 50, 400, "epoch 1/50: 6.7 min; about 5.4 h of training left"),
    ],
)
def test_epoch_line(done, total, seconds, line):
    assert progress.epoch_line(done, total, seconds) == line


@pytest.mark.parametrize(
    "done, phase_left, later, line",
    [
        (
            2,
            8,
            3,
            "epoch 2/13: 0 s; about 2 s left in phase head, then 3 "
            "more epoch(s) in later phases",
        ),
        (10, 0, 3, "epoch 10/13: 0 s; 3 more epoch(s) in later phases"),
        (11, 2, 0, "epoch 11/13: 0 s; about 1 s of training left"),
        (5, 0, 0, "epoch 5/13: 0 s"),  # early stopping in the last phase
    ],
)
def test_an_epoch_of_one_phase_times_that_phase_alone(
    done, phase_left, later, line
):
    """A cached head epoch takes a fraction of a second; its time says
    nothing about the backbone epochs of the phase after it."""
    got = progress.epoch_line(done, 13, 0.3, phase_left, later, "head")
    assert got == line
