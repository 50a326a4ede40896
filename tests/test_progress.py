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
