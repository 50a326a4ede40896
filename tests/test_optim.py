import keras
import numpy as np
import pytest

from kft import config as config_lib
from kft import optim


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
