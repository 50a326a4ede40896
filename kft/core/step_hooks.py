"""What happens after every training step inside one epoch's `model.fit`:
the run's position moves on, a NaN or Inf loss stops the epoch
(`NonFinite`, which the trainer answers by restoring and retrying), a
checkpoint comes every `checkpoint.every_steps` steps, and a stop request
(SIGTERM, Ctrl-C) is honoured at the step's end."""

import math

import keras

from kft.core import checkpoint


class NonFinite(Exception):
    """A NaN or Inf loss at a step: the state and rate it happened at."""

    def __init__(self, state, rate):
        super().__init__()
        self.state = state
        self.rate = rate


class StepHooks(keras.callbacks.Callback):
    """Per-step bookkeeping inside one epoch's fit: the position, NaN
    checks, checkpoints every N steps and on a signal."""

    def __init__(self, trainer, skip):
        super().__init__()
        self.trainer = trainer
        self.skip = skip

    def on_train_batch_end(self, batch, logs=None):
        trainer, state = self.trainer, self.trainer.state
        if self.skip and batch < self.model.steps_per_execution:
            # Resumed mid-epoch: add the epoch's metrics so far. Keras makes
            # the metric variables in the first step, so not before it.
            checkpoint.add_metrics(self.model, state)
        done = self.skip + batch + 1
        before = state.global_step
        state.global_step += done - state.step
        state.step = done
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise NonFinite(state, trainer.current_rate())
        every = trainer.config.checkpoint.every_steps
        trainer.stop_if_signalled()
        crossed = every and state.global_step // every > before // every
        if crossed and done < trainer.steps:
            trainer.save()

    def on_test_batch_end(self, batch, logs=None):
        self.trainer.stop_if_signalled()
