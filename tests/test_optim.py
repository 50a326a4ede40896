import keras
import numpy as np
import pytest

from kft import config as config_lib
from kft.core import optim


@pytest.mark.parametrize("decay", optim.SCHEDULES)
def test_schedule_warms_up_then_decays(decay):
    config = config_lib.default_config().schedule
    config.name = decay
    schedule = optim.make_schedule(config, 1.0, total_steps=100, start=50)
    rates = [float(schedule(step)) for step in range(50, 150)]
    assert rates[0] == pytest.approx(0.1)  # warmup: 10 steps
    assert rates[9] == pytest.approx(1.0)
    assert max(rates) == pytest.approx(1.0)
    if decay == "constant":
        assert rates[-1] == pytest.approx(1.0)
    else:
        assert rates[-1] < 0.2
        assert all(a >= b - 1e-6 for a, b in zip(rates[10:], rates[11:]))


def test_weight_decay_skips_biases_and_norms():
    config = config_lib.default_config().optimizer
    config.weight_decay = 0.5
    config.clipnorm = 0.0
    kernel = keras.Variable(np.ones((2, 2), "float32"), name="kernel")
    bias = keras.Variable(np.ones((2,), "float32"), name="bias")
    optimizer = optim.make_optimizer(config, 0.1)
    optimizer.apply(
        [np.zeros((2, 2), "float32"), np.zeros(2, "float32")], [kernel, bias]
    )
    np.testing.assert_allclose(keras.ops.convert_to_numpy(kernel), 0.95)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bias), 1.0)


def test_carry_state_keeps_moments_of_variables_still_trained():
    config = config_lib.default_config().optimizer
    head = keras.Variable(np.ones((2, 2), "float32"), name="head")
    body = keras.Variable(np.ones((2, 2), "float32"), name="body")
    first = optim.make_optimizer(config, 0.1)
    first.apply([np.full((2, 2), 0.3, "float32")], [head])
    second = optim.make_optimizer(config, 0.1)
    optim.carry_state(first, second, [head, body])
    old = {v.name: keras.ops.convert_to_numpy(v) for v in first.variables}
    new = {v.name: keras.ops.convert_to_numpy(v) for v in second.variables}
    moved = [n for n in old if "head" in n]
    assert moved and all(np.array_equal(old[n], new[n]) for n in moved)
    assert all(not new[n].any() for n in new if "body" in n)
    assert int(second.iterations) == 0  # Adam's bias correction restarts


STEPS = 6


def _adam_run(fused, monkeypatch):
    """Six AdamW steps (multipliers, decay, an embedding's sparse gradient)
    inside a tf.function, as fit runs them; returns weights and moments."""
    import tensorflow as tf

    monkeypatch.setattr(optim, "FUSED_ADAM", fused)
    keras.utils.set_random_seed(0)
    embedding = keras.layers.Embedding(50, 4)
    dense = keras.layers.Dense(3)
    model = keras.Sequential([keras.Input((5,), dtype="int32"), embedding])
    model.add(keras.layers.GlobalAveragePooling1D())
    model.add(dense)
    config = config_lib.default_config().optimizer
    config.weight_decay = 0.1
    schedule = optim.WarmupDecay(1e-2, 6, warmup_steps=2)
    multipliers = {dense.kernel.path: 0.5}
    optimizer = optim.make_optimizer(config, schedule, multipliers)
    ids = np.random.default_rng(1).integers(0, 50, (STEPS, 8, 5))
    labels = np.random.default_rng(2).integers(0, 3, (STEPS, 8))
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return grads[0]

    for x, y in zip(ids, labels):
        sparse = step(tf.constant(x), tf.constant(y))
    assert isinstance(sparse, tf.IndexedSlices)  # the embedding's gradient
    return [keras.ops.convert_to_numpy(v) for v in model.weights] + [
        keras.ops.convert_to_numpy(v) for v in optimizer.variables
    ]


def test_fused_adam_matches_keras_adam(monkeypatch):
    """Equal up to rounding: Keras rounds 1 - beta_2 from float64 for the
    second moment but from float32 in the bias correction, TensorFlow's
    kernel from float32 in both, so steps differ by up to 2.3e-5
    relative; a wrong term would differ by far more."""
    fused = _adam_run(True, monkeypatch)
    plain = _adam_run(False, monkeypatch)
    assert len(fused) == len(plain)
    for a, b in zip(fused, plain):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-4 * np.abs(b).max())
    assert not np.allclose(fused[0], _initial_embedding())


def _initial_embedding():
    keras.utils.set_random_seed(0)
    layer = keras.layers.Embedding(50, 4)
    layer.build((None, 5))
    return keras.ops.convert_to_numpy(layer.embeddings)


def test_weight_average_warms_up_and_fit_keeps_training_the_raw_weights():
    """optimizer.ema_momentum: an average of the weights, kept beside them,
    whose momentum grows as min(m, (1 + t) / (10 + t)) from the phase's
    first step, so a short phase's average does not hold on to where the
    phase started, taken every `AVERAGE_EVERY` steps at that momentum to
    the power `AVERAGE_EVERY`; Keras' end-of-fit overwrite is off (kft
    swaps the average in itself)."""
    config = config_lib.default_config().optimizer
    config.weight_decay = 0.0
    config.clipnorm = 0.0
    config.ema_momentum = 0.9
    optimizer = optim.make_optimizer(config, 0.1)
    variable = keras.Variable(np.zeros(3, "float32"), name="w")
    expected, average = [], None
    for step in range(30):
        gradient = np.full(3, -1.0, "float32")  # Adam: w rises by 0.1 a step
        optimizer.apply([gradient], [variable])
        value = keras.ops.convert_to_numpy(variable)
        if step % optim.AVERAGE_EVERY:
            continue
        momentum = 0.0 if step == 0 else min(0.9, (1 + step) / (10 + step))
        momentum **= optim.AVERAGE_EVERY
        average = value if average is None else average
        average = momentum * average + (1 - momentum) * value
        expected.append(average.copy())
    assert optim.AVERAGE_EVERY > 1 and len(expected) > 3
    (held,) = [v for v in optimizer.variables if "average" in v.name]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(held), expected[-1], rtol=1e-5
    )
    optimizer.finalize_variable_values([variable])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(variable), 3.0, rtol=1e-4
    )
    assert not optim.make_optimizer(
        config_lib.default_config().optimizer, 0.1
    ).use_ema  # off by default
