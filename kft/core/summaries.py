"""TensorBoard logs that hold what history.csv holds, phases end to end.

Keras's own TensorBoard callback counts its batch steps with the
optimizer's iterations, which restart at 0 in every phase (each phase makes
a fresh optimizer), so the phases were drawn on top of one another. The
trainer (kft/core/training.py) writes through this class at each epoch's end,
under MODEL_DIR/tensorboard/:

    train/       epoch_<metric> for each training metric of history.csv and
                 epoch_learning_rate, at step = history.csv's epoch column;
                 batch_learning_rate at every optimizer step, counted on
                 across phases; the phase's name (text, tag `phase`) at its
                 first epoch
    validation/  epoch_<metric> for each val_<metric> column

Train and validation share tag names, so TensorBoard draws them on one
chart, as with Keras's callback.
"""

import os

import numpy as np
import tensorflow as tf
from tensorboard.plugins.scalar import metadata

_SCALAR = metadata.create_summary_metadata(display_name=None, description=None)


def epoch_row(model, phase, epoch, logs):
    """history.csv's row for a finished epoch: phase, epoch, lr, metrics.

    `epoch` is Keras's 0-based epoch, counted on across phases.
    """
    rate = model.optimizer.learning_rate
    row = {
        "phase": phase,
        "epoch": epoch + 1,
        "learning_rate": float(np.asarray(rate)),
    }
    row.update({k: float(v) for k, v in sorted((logs or {}).items())})
    row.pop("loss_scale", None)
    return row


class TensorBoardScalars:
    """One writer per run folder, written at each epoch's end.

    Args:
        folder: the TensorBoard log folder (MODEL_DIR/tensorboard).
    """

    def __init__(self, folder):
        self.writers = {
            run: tf.summary.create_file_writer(os.path.join(folder, run))
            for run in ("train", "validation")
        }
        # Traced per instance: a traced summary op keeps the writer that was
        # the default when it was traced.
        self._write_series = tf.function(
            self._series,
            input_signature=[
                tf.TensorSpec([None], tf.float32),
                tf.TensorSpec([], tf.int64),
            ],
        )

    def end_epoch(self, row, new_phase, schedule, steps_before, done, steps):
        """Writes an epoch's `row` (and its phase's name where it is the
        phase's first) and the learning rates of its `steps` optimizer steps,
        `done` of them in the phase that came after `steps_before`; flushes."""
        if new_phase:
            self.write_phase(row["phase"], row["epoch"])
        self.write_epoch(row)
        self.write_rates(schedule, max(done - steps, 0), done, steps_before)
        self.flush()

    def write_epoch(self, row):
        step = row["epoch"]
        for key, value in row.items():
            if key in ("phase", "epoch"):
                continue
            run = "validation" if key.startswith("val_") else "train"
            tag = "epoch_" + key.removeprefix("val_")
            with self.writers[run].as_default(step=step):
                tf.summary.scalar(tag, value)

    def write_rates(self, schedule, first, last, steps_before=0):
        """batch_learning_rate of the phase's optimizer steps [first, last),
        the phase coming after `steps_before` steps of the run."""
        steps = np.arange(first, last)
        rates = np.broadcast_to(np.asarray(schedule(steps)), steps.shape)
        with self.writers["train"].as_default():
            self._write_series(
                tf.constant(rates, tf.float32),
                tf.constant(steps_before + first + 1, tf.int64),
            )

    def _series(self, values, first_step):
        # One graph call for an epoch's steps: 16 us a step against 500 us
        # for eager summaries, measured on the 2-core CPU. tf.summary.write
        # with the scalar plugin's metadata is what tf.summary.scalar
        # writes, without the loop's name scope ("while/") in the tag.
        for index in tf.range(tf.size(values)):
            tf.summary.write(
                "batch_learning_rate",
                values[index],
                step=first_step + tf.cast(index, tf.int64),
                metadata=_SCALAR,
            )

    def write_phase(self, phase, epoch):
        with self.writers["train"].as_default(step=epoch):
            tf.summary.text("phase", phase)

    def flush(self):
        for writer in self.writers.values():
            writer.flush()

    def close(self):
        for writer in self.writers.values():
            writer.close()
