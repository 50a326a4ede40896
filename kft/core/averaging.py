"""Weight averaging (config.optimizer.ema_momentum).

The optimizer keeps a moving average of every weight it trains
(kft/core/optim.py). The trainer swaps the average into the model for what
judges and keeps a model: each epoch's validation, the best weights and,
without validation data, the run's end; and swaps the raw weights back
before training goes on or a checkpoint is written, so training itself
never sees the average and a resumed run goes on from the raw weights.
"""

import tensorflow as tf

from kft.core import compat


class Swap:
    """Puts an optimizer's averages into the model's weights and back."""

    def __init__(self):
        self.held = None  # [(variable, its raw value)] while swapped in

    def average_in(self, optimizer):
        """The averages into the weights; does nothing without any."""
        pairs = [] if optimizer is None else compat.ema_pairs(optimizer)
        if self.held is not None or not pairs:
            return
        self.held = [
            (variable, tf.identity(variable.value)) for variable, _ in pairs
        ]
        for variable, average in pairs:
            variable.assign(average)

    def raw_back(self):
        """The raw weights back, if the averages are in."""
        for variable, value in self.held or ():
            variable.assign(value)
        self.held = None
