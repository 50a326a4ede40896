"""Optimizers and learning-rate schedules for a fine-tuning phase.

Every optimizer kft makes takes per-variable learning-rate multipliers (for
layer-wise decay; Keras has none built in, keras-team/keras#21741) and
applies decoupled weight decay itself, scaled by the same multiplier and
skipping biases and normalization parameters (every variable of rank < 2).

On TensorFlow (not TPU), Adam's update of a float32 variable is
TensorFlow's fused `ResourceApplyAdam` kernel (one pass over the variable
and its moments) rather than Keras's dozen element-wise ops (a pass each):
Keras's `Adam.update_step` formula, equal up to float32 rounding; the
update 1.8x and kft's MiniLM train step 1.06x faster
(tools/profile_text_step.py --compare=adam).
"""

import math

import keras
from keras import ops

from kft.core import compat
from kft.core.errors import UserError

SCHEDULES = ("cosine", "linear", "step", "constant")
OPTIMIZERS = ("adamw", "adam", "sgd")


@keras.saving.register_keras_serializable(package="kft")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup to `peak`, then cosine, linear, step or constant.

    `start` is the optimizer step at which the schedule begins (0 for a
    fresh optimizer).
    """

    def __init__(
        self,
        peak,
        total_steps,
        warmup_steps=0,
        decay="cosine",
        start=0,
        step_factor=0.1,
        step_every=1,
    ):
        self.peak = float(peak)
        self.total_steps = max(int(total_steps), 1)
        self.warmup_steps = int(warmup_steps)
        self.decay = decay
        self.start = int(start)
        self.step_factor = float(step_factor)
        self.step_every = max(int(step_every), 1)

    def __call__(self, step):
        step = ops.cast(step, "float32") - float(self.start)
        warmup = float(max(self.warmup_steps, 1))
        warm = self.peak * ops.minimum((step + 1.0) / warmup, 1.0)
        decay_steps = float(max(self.total_steps - self.warmup_steps, 1))
        done = ops.clip((step - self.warmup_steps) / decay_steps, 0.0, 1.0)
        if self.decay == "cosine":
            after = self.peak * 0.5 * (1.0 + ops.cos(math.pi * done))
        elif self.decay == "linear":
            after = self.peak * (1.0 - done)
        elif self.decay == "step":
            drops = ops.floor((step - self.warmup_steps) / self.step_every)
            after = self.peak * ops.power(
                self.step_factor, ops.maximum(drops, 0.0)
            )
        else:
            after = ops.convert_to_tensor(self.peak)
        if self.warmup_steps <= 0:
            return after
        return ops.where(step < self.warmup_steps, warm, after)

    def get_config(self):
        return dict(
            peak=self.peak,
            total_steps=self.total_steps,
            warmup_steps=self.warmup_steps,
            decay=self.decay,
            start=self.start,
            step_factor=self.step_factor,
            step_every=self.step_every,
        )


def make_schedule(schedule_config, peak, total_steps, start=0):
    if schedule_config.name not in SCHEDULES:
        raise UserError(
            f"unknown schedule '{schedule_config.name}'; "
            f"valid: {', '.join(SCHEDULES)}"
        )
    warmup = int(round(schedule_config.warmup_fraction * total_steps))
    step_every = int(round(schedule_config.step_fraction * total_steps))
    return WarmupDecay(
        peak,
        total_steps,
        warmup_steps=warmup,
        decay=schedule_config.name,
        start=start,
        step_factor=schedule_config.step_factor,
        step_every=step_every,
    )


def _with_multipliers(base):
    """Subclasses the Keras optimizer `base` with multipliers and decay."""

    class Scaled(base):
        def __init__(self, multipliers=None, decay=0.0, **kwargs):
            super().__init__(**kwargs)
            self._kft_multipliers = dict(multipliers or {})
            self._kft_decay = float(decay)

        def build(self, variables):
            super().build(variables)
            self._kft_scale = [
                self._kft_multipliers.get(v.path, 1.0) for v in variables
            ]
            self._kft_decays = [len(v.shape) >= 2 for v in variables]

        def update_step(self, gradient, variable, learning_rate):
            index = self._get_variable_index(variable)
            scale = self._kft_scale[index]
            if scale != 1.0:
                learning_rate = learning_rate * scale
            if self._kft_decay and self._kft_decays[index]:
                rate = ops.cast(learning_rate * self._kft_decay, variable.dtype)
                variable.assign_sub(variable * rate)
            if _fuses(self, variable):
                return _fused_adam(self, gradient, variable, learning_rate)
            return super().update_step(gradient, variable, learning_rate)

        def _update_model_variables_moving_average(self, variables):
            # Keras' hook for `use_ema`, with a warm-up: momentum
            # min(m, (1 + t) / (10 + t)) at step t (0 at the first step),
            # as tf.train.ExponentialMovingAverage's `num_updates`, so that
            # a phase of a hundred steps averages its last tens of steps
            # rather than holding on to where it started.
            step = ops.cast(self.iterations, "float32")
            momentum = ops.minimum(
                self.ema_momentum, (1.0 + step) / (10.0 + step)
            )
            rate = 1.0 - ops.where(step > 0, momentum**AVERAGE_EVERY, 0.0)

            def update():
                for variable, average in zip(variables, compat.averages(self)):
                    if average is not None:
                        difference = average - variable
                        average.assign_sub(
                            ops.cast(rate, variable.dtype) * difference
                        )

            ops.cond(step % AVERAGE_EVERY == 0, update, lambda: None)

        def finalize_variable_values(self, var_list):
            """Leaves the weights as they are at the end of `fit`: kft
            calls fit once per epoch and trains on from the raw weights,
            swapping the average in itself (kft/core/training.py)."""

    Scaled.__name__ = f"Scaled{base.__name__}"
    return Scaled


# The weight average (ema_momentum) is updated every this many steps: a
# pass over every weight costs about 15% of a MiniLM step on a 2-core CPU.
AVERAGE_EVERY = 4

# Off only to measure what the fused kernel is worth.
FUSED_ADAM = True


def _fuses(optimizer, variable):
    """Whether `variable`'s Adam update can be TensorFlow's fused kernel."""
    if not (FUSED_ADAM and keras.backend.backend() == "tensorflow"):
        return False
    if not isinstance(optimizer, keras.optimizers.Adam) or optimizer.amsgrad:
        return False
    import tensorflow as tf

    # TPU replicas update through their own variables (untested here).
    on_tpu = isinstance(tf.distribute.get_strategy(), tf.distribute.TPUStrategy)
    return variable.dtype == "float32" and not on_tpu


def _fused_adam(optimizer, gradient, variable, learning_rate):
    """Keras's Adam step (bias-corrected rate, moments, update) as one
    `ResourceApplyAdam` op."""
    import tensorflow as tf

    momentum, velocity = compat.adam_slots(optimizer, variable)
    step = tf.cast(optimizer.iterations + 1, tf.float32)
    beta_1 = tf.cast(optimizer.beta_1, tf.float32)
    beta_2 = tf.cast(optimizer.beta_2, tf.float32)
    return tf.raw_ops.ResourceApplyAdam(
        var=variable.handle,
        m=momentum.handle,
        v=velocity.handle,
        beta1_power=tf.pow(beta_1, step),
        beta2_power=tf.pow(beta_2, step),
        lr=tf.cast(learning_rate, tf.float32),
        beta1=beta_1,
        beta2=beta_2,
        epsilon=tf.cast(optimizer.epsilon, tf.float32),
        grad=tf.convert_to_tensor(gradient, tf.float32),
    )


_ADAM = _with_multipliers(keras.optimizers.Adam)
_SGD = _with_multipliers(keras.optimizers.SGD)


def make_optimizer(optimizer_config, schedule, multipliers=None):
    """Returns the configured optimizer on `schedule` with `multipliers`."""
    name = optimizer_config.name.lower()
    common = dict(
        learning_rate=schedule,
        multipliers=multipliers,
        global_clipnorm=optimizer_config.clipnorm or None,
        use_ema=optimizer_config.ema_momentum > 0,
        ema_momentum=optimizer_config.ema_momentum,
    )
    if name == "adamw":
        return _ADAM(
            decay=optimizer_config.weight_decay,
            epsilon=optimizer_config.epsilon,
            **common,
        )
    if name == "adam":
        return _ADAM(epsilon=optimizer_config.epsilon, **common)
    if name == "sgd":
        return _SGD(
            decay=optimizer_config.weight_decay,
            momentum=optimizer_config.momentum,
            nesterov=optimizer_config.nesterov,
            **common,
        )
    raise UserError(
        f"unknown optimizer '{optimizer_config.name}'; "
        f"valid: {', '.join(OPTIMIZERS)}"
    )


def carry_state(old, new, variables):
    """Builds `new` on `variables` and copies `old`'s slots that still apply.

    Slots (Adam moments, SGD momentum) are named after the model variable,
    so a variable that stays trainable keeps its state across a recompile.
    The iteration count starts again at 0: Adam's bias correction uses it,
    and newly unfrozen variables start from zero moments, which a carried
    count would leave uncorrected (steps several times too large right when
    the backbone unfreezes). Carried moments get a stronger correction
    instead, which makes their first steps smaller, the safe side.
    """
    new.build(variables)
    if old is None or not old.built:
        return
    skip = {"iteration", "learning_rate"}
    old_values = {v.name: v for v in old.variables if v.name not in skip}
    for variable in new.variables:
        previous = old_values.get(variable.name)
        if previous is not None and previous.shape == variable.shape:
            variable.assign(previous)
