"""Trains a built model through its freeze plan, resumably.

Each phase sets `trainable`, makes a fresh optimizer on its own warmup and
decay schedule (carrying over the moments of variables that stay
trainable) and recompiles (Keras needs it after `trainable` changes). Each
epoch is one `model.fit` over that epoch's batches (`data.Epochs`: the
order depends on the seed and epoch alone), then validation, history.csv,
TensorBoard, best weights and early stopping, then a checkpoint
(kft/core/checkpoint.py); checkpoints also come every
`checkpoint.every_steps` steps. A rerun resumes from the newest good one
at the exact step. A head-only phase whose backbone runs in inference mode
on unaugmented data fits the head alone on backbone features computed once
(kft/core/cached.py); the log says which path each phase takes.

SIGTERM and Ctrl-C finish the current step, write a checkpoint and raise
`Interrupted` (a second Ctrl-C stops at once). A NaN or Inf loss restores
the last good checkpoint and retries at a lower learning rate, then gives
up with `Diverged`.
"""

import os
import signal
import sys
import time
import warnings

import keras
import numpy as np
import tensorflow as tf

from kft.core import (
    averaging,
    cached,
    checkpoint,
    distribute,
    freeze,
    history,
    optim,
    progress,
    signals,
    step_hooks,
    summaries,
)
from kft.core.errors import Diverged, Interrupted
from kft.core.monitor import Monitor

# Keras warns about both for every tf.data input whose length it cannot see
# (length-grouped batches); neither is a problem here.
warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed.*")
warnings.filterwarnings("ignore", message=".*Your input ran out of data.*")


def _verbosity(verbose):
    if verbose >= 0:
        return verbose
    return 1 if sys.stdout.isatty() else 2


class Trainer:
    """Runs the phases of `phases`: `Trainer(...).run(resume)` starts
    fresh, or (with `resume`) from the newest good checkpoint, and returns
    {"phases": [...], "best_epoch", "best_value", ...}."""

    def __init__(
        self,
        built,
        phases,
        train_epochs,
        validation_data,
        config,
        model_dir,
        num_classes,
        class_weight=None,
        log=print,
        shared_dir=None,
        strategy=None,
        *,
        task,
    ):
        self.monitor = Monitor.of(config.monitor, task.metrics, task.name)
        self.built = built
        self.model = built.model
        self.phases = phases
        self.train_epochs = train_epochs
        self.validation_data = validation_data
        if validation_data is not None:
            self.validation_data = distribute.shard(validation_data)
        self.config = config
        self.model_dir = model_dir
        # Where a resumed run's checkpoints are: the chief's run folder
        # (`model_dir` is a temporary folder on other workers).
        self.shared_dir = shared_dir or model_dir
        self.strategy = strategy or tf.distribute.get_strategy()
        self.num_classes = num_classes
        self.class_weight = class_weight
        self.log = log
        self.steps = train_epochs.steps()
        # What `model.fit` trains in the current phase: the model on the
        # data, or (kft/core/cached.py) its head on cached features.
        self.fit_model = self.model
        self.fit_data = None  # (training Epochs, validation) of features
        self.cache_phase = False
        self.split = None  # (extractor, head) once made
        self.total_epochs = sum(phase.epochs for phase in phases)
        self.state = checkpoint.State(lr_scales=[1.0] * len(phases))
        self.optimizer = None
        self.schedule = None
        self.average = averaging.Swap()
        self.signals = signals.Signals()
        self.epoch_started = time.time()
        self.task = task
        self.tensorboard = summaries.TensorBoardScalars(
            os.path.join(model_dir, "tensorboard")
        )

    # --- phases ---

    def setup_phase(self, index, carry=True):
        """Sets phase `index` trainable, with its optimizer, and compiles."""
        phase = self.phases[index]
        multipliers = freeze.apply_phase(
            self.built,
            phase,
            self.built.family.block_pattern,
            self.config.train_batchnorm,
        )
        self.cache_phase, line = cached.decide(
            self.config, self.built, phase, self.train_epochs
        )
        self.log(line)
        self.fit_model, self.fit_data = self.model, None
        self.steps = self.train_epochs.steps()
        if self.cache_phase:
            self.steps = self.train_epochs.in_memory_steps()
        self.schedule = optim.make_schedule(
            self.config.schedule,
            phase.learning_rate * self.state.lr_scales[index],
            phase.epochs * self.steps,
        )
        optimizer = optim.make_optimizer(
            self.config.optimizer, self.schedule, multipliers
        )
        optim.carry_state(
            self.optimizer if carry else None,
            optimizer,
            self.model.trainable_variables,
        )
        self.optimizer = optimizer
        self.task.compile(self.model, optimizer, self.config, self.num_classes)
        if self.cache_phase:
            if self.split is None:
                self.split = cached.split(self.built)
            self.fit_model = self.split[1]
            self.task.compile(
                self.fit_model, optimizer, self.config, self.num_classes
            )
        return phase

    def _features(self):
        """(training Epochs, validation data) of cached features, computed
        on the first epoch of the phase (after any restore: the backbone's
        weights are the checkpoint's then)."""
        if self.fit_data is None:
            self.fit_data = cached.features(
                self.split[0],
                self.train_epochs,
                self.validation_data,
                self.config.data.eval_batch_size,
                self.log,
            )
        return self.fit_data

    def stop_if_signalled(self):
        """After SIGTERM or Ctrl-C on this or (multi-worker) any worker:
        a checkpoint, then `Interrupted`; every worker stops at the same
        step, as tf.distribute's PreemptionCheckpointHandler would."""
        received = self.signals.received
        if distribute.any_worker(self.strategy, received):
            self.save()
            raise Interrupted(
                received or signal.SIGTERM, self.state.global_step
            )

    def current_rate(self):
        return float(np.asarray(self.schedule(self.optimizer.iterations)))

    # --- checkpoints ---

    def save(self):
        self.average.raw_back()
        for variable in self.model.trainable_variables:
            if not bool(tf.reduce_all(tf.math.is_finite(variable))):
                raise step_hooks.NonFinite(self.state, self.current_rate())
        checkpoint.save(
            self.model_dir,
            self.state,
            self.model,
            self.optimizer,
            self.config.checkpoint.keep,
            metrics=self.fit_model.metrics_variables,
        )

    def restore(self):
        """Restores the newest good checkpoint; False where there is none.

        Learning-rate cuts and retries made since it was written (after a
        NaN) still count.
        """
        current = self.state

        def optimizer_for(saved):
            self.state = saved
            saved.lr_scales = [
                min(a, b) for a, b in zip(current.lr_scales, saved.lr_scales)
            ]
            saved.nan_retries = max(current.nan_retries, saved.nan_retries)
            self.setup_phase(saved.phase, carry=False)
            return self.optimizer

        restored = checkpoint.restore(
            self.shared_dir, self.model, optimizer_for, warn=self.log
        )
        if restored is None:
            self.state = current
            return False
        return True

    # --- the run ---

    def run(self, resume):
        fresh = not (resume and self.restore())
        if not fresh:
            s = self.state
            self.log(
                f"resuming from the checkpoint at step {s.global_step}: "
                f"phase {self.phases[s.phase].name}, epoch {s.epoch + 1}, "
                f"step {s.step} of {self.steps}"
            )
        history.truncate(self.model_dir, self.state.epoch)
        with self.signals:
            while True:
                try:
                    self._train(fresh)
                    break
                except step_hooks.NonFinite as bad:
                    self._retry(bad)
                    if not self.restore():
                        raise Diverged(
                            "the loss became NaN or Inf and no checkpoint "
                            "could be restored"
                        ) from None
                    fresh = False
                    history.truncate(self.model_dir, self.state.epoch)
        self.tensorboard.close()
        if self.signals.received:  # came after the last step: stop anyway
            raise Interrupted(self.signals.received, self.state.global_step)
        return self._finish()

    def _retry(self, bad):
        state = bad.state
        phase = self.phases[state.phase]
        where = (
            f"phase {phase.name}, epoch {state.epoch + 1}, step {state.step} "
            f"(optimizer step {state.global_step}), learning rate "
            f"{bad.rate:.3g}"
        )
        if self.state.nan_retries >= self.config.checkpoint.nan_retries:
            raise Diverged(
                f"the loss became NaN or Inf at {where}, after "
                f"{self.state.nan_retries} retries at lower rates; lower "
                "--config.learning_rate (or head_learning_rate), or look "
                "for bad inputs"
            )
        self.state.nan_retries += 1
        self.state.lr_scales[state.phase] *= (
            self.config.checkpoint.nan_lr_factor
        )
        self.log(
            f"warning: the loss became NaN or Inf at {where}; restoring the "
            f"last good checkpoint and retrying phase {phase.name} at "
            f"{self.state.lr_scales[state.phase]:g} times its rate "
            f"(retry {self.state.nan_retries} of "
            f"{self.config.checkpoint.nan_retries})"
        )

    def _train(self, fresh):
        state = self.state
        if state.training_done:
            return
        first = state.phase
        for index in range(first, len(self.phases)):
            phase = self.phases[index]
            if index != first:
                state.phase, state.phase_done = index, False
                state.phase_first_epoch = state.epoch
                state.phase_first_step = state.global_step
                state.phase_best, state.wait = None, 0
            if index != first or fresh:
                self.setup_phase(index, carry=index != first)
                self._announce(phase)
            if fresh and index == first:
                self.save()  # the starting point a NaN can go back to
            while len(state.phase_seconds) <= index:
                state.phase_seconds.append(0.0)
            last_epoch = state.phase_first_epoch + phase.epochs
            while not state.phase_done and state.epoch < last_epoch:
                self.epoch_started = time.time()
                self._epoch(phase, last_epoch)
        state.training_done = True
        self.save()

    def _announce(self, phase):
        trainable = sum(
            int(np.prod(v.shape)) for v in self.model.trainable_variables
        )
        self.log(
            f"phase {phase.name}: {phase.epochs} epoch(s), peak lr "
            f"{phase.learning_rate * self.state.lr_scales[self.state.phase]:g}"
            f", {trainable:,} trainable parameters"
        )

    def _epoch(self, phase, last_epoch):
        state = self.state
        verbose = _verbosity(self.config.verbose)
        if verbose:
            print(f"Epoch {state.epoch + 1}/{self.total_epochs}", flush=True)
        train_epochs, validation_data = self.train_epochs, self.validation_data
        if self.cache_phase:
            train_epochs, validation_data = self._features()
        if state.train_logs is None:
            skip = state.step
            dataset = distribute.shard(
                train_epochs.dataset(state.epoch, state.epoch + 1, skip=skip)
            )
            fitted = self.fit_model.fit(
                dataset,
                steps_per_epoch=self.steps - skip,
                epochs=1,
                callbacks=[step_hooks.StepHooks(self, skip)],
                class_weight=self.class_weight,
                verbose=verbose,
            )
            state.train_logs = {
                k: float(v[-1]) for k, v in fitted.history.items()
            }
        logs = dict(state.train_logs)
        if validation_data is not None:
            self.average.average_in(self.optimizer)
            results = self.fit_model.evaluate(
                validation_data,
                verbose=0,
                return_dict=True,
                callbacks=[step_hooks.StepHooks(self, state.step)],
            )
            logs.update({f"val_{k}": float(v) for k, v in results.items()})
            if verbose:
                shown = " - ".join(
                    f"{k}: {v:.4f}" for k, v in logs.items() if "val_" in k
                )
                print(f"  {shown}", flush=True)
        self._end_epoch(phase, logs, last_epoch)

    def _end_epoch(self, phase, logs, last_epoch):
        state = self.state
        row = summaries.epoch_row(self.model, phase.name, state.epoch, logs)
        history.append(self.model_dir, row)
        self.tensorboard.end_epoch(
            row,
            state.epoch == state.phase_first_epoch,
            self.schedule,
            state.phase_first_step,
            int(keras.ops.convert_to_numpy(self.optimizer.iterations)),
            self.steps,
        )
        value = logs.get(self.monitor.name)
        if value is not None:
            value = float(value)
            if self.monitor.better(value, state.best_value):
                state.best_value, state.best_epoch = value, state.epoch + 1
                state.best_file = checkpoint.save_best(
                    self.model_dir, self.model, state
                )
            patience = self.config.early_stopping_patience
            if self.monitor.better(value, state.phase_best):
                state.phase_best, state.wait = value, 0
            else:
                state.wait += 1
                if patience and state.wait >= patience:
                    self.log(
                        f"early stopping: {self.monitor.name} has not "
                        f"improved for {patience} epoch(s)"
                    )
                    state.phase_done = True
        seconds = time.time() - self.epoch_started
        state.phase_seconds[state.phase] += seconds
        state.epoch += 1
        left = state.phase_first_epoch + phase.epochs - state.epoch
        later = sum(p.epochs for p in self.phases[state.phase + 1 :])
        left *= not state.phase_done
        line = progress.epoch_line(
            state.epoch, self.total_epochs, seconds, left, later, phase.name
        )
        self.log(line)
        state.step = 0
        state.train_logs = None
        if state.epoch >= last_epoch:
            state.phase_done = True
        self.save()

    def _finish(self):
        state = self.state
        # A worker restarted mid-run finds the best weights the chief wrote.
        folders = (self.model_dir, self.shared_dir)
        if any(
            checkpoint.load_best(folder, self.model, state.best_file)
            for folder in folders
        ):
            self.log(
                f"restored the best weights: epoch {state.best_epoch}, "
                f"{self.monitor.name} {state.best_value:.4f}"
            )
        elif self.optimizer is not None and self.optimizer.use_ema:
            self.average.average_in(self.optimizer)
            self.log(
                "no validation data: keeping the moving average of the "
                "weights at the last epoch"
            )
        else:
            self.log("no validation data: keeping the last epoch's weights")
        epochs = history.epochs_per_phase(self.model_dir)
        return {
            "phases": [
                {
                    "phase": phase.name,
                    "epochs": epochs.get(phase.name, 0),
                    "seconds": round(state.phase_seconds[i], 1)
                    if i < len(state.phase_seconds)
                    else 0.0,
                }
                for i, phase in enumerate(self.phases)
            ],
            "best_epoch": state.best_epoch,
            "best_value": state.best_value,
            "optimizer_steps": state.global_step,
            "checkpoint_seconds": round(state.checkpoint_seconds, 2),
            "nan_retries": state.nan_retries,
        }
