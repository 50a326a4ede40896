"""The device a run gets and the settings resolved for it
(kft/core/accelerator.py): a GPU's resolution is checked on this CPU
machine through a described device, as a test fakes one."""

import json

import pytest

from kft import config as config_lib
from kft.core import accelerator, distribute, run_folder
from kft.core.accelerator import Device
from kft.core.errors import UserError

A100 = Device("GPU", "NVIDIA A100-SXM4-40GB", (8, 0))
V100 = Device("GPU", "Tesla V100-SXM2-16GB", (7, 0))
P100 = Device("GPU", "Tesla P100-PCIE-16GB", (6, 0))

TABLE = [
    # device, precision, jit_compile, steps_per_execution, text_shapes
    (Device(), "float32", False, 1, "dynamic"),
    (Device(amx=True), "mixed_bfloat16", False, 1, "dynamic"),
    (A100, "mixed_bfloat16", True, 8, "fixed"),
    (V100, "mixed_float16", True, 8, "fixed"),
    (P100, "float32", True, 8, "fixed"),
    (Device("GPU", "unknown"), "float32", True, 8, "fixed"),
    (Device("TPU"), "mixed_bfloat16", False, 32, "fixed"),
]


@pytest.mark.parametrize("device,precision,jit,per_call,shapes", TABLE)
def test_auto_settings_follow_the_device(
    device, precision, jit, per_call, shapes
):
    config = config_lib.default_config()
    line = distribute.resolve(config, device)
    assert config.precision == precision
    assert config.jit_compile is jit
    assert accelerator.jit(config) is jit
    assert config.steps_per_execution == per_call
    assert config.data.text_shapes == shapes
    assert config.trained_on == device.describe()
    assert line.startswith(f"{device.describe()}: precision {precision}, ")
    assert "(auto for this device)" in line


@pytest.fixture
def cpu_only(monkeypatch):
    """This machine as a CPU, wherever the suite runs (a GPU host too)."""
    monkeypatch.setattr(accelerator, "probe", lambda strategy: Device())


def test_a_cpu_run_resolves_as_before(cpu_only):
    """No GPU and no TPU: float32, no XLA, one step per call, trimmed text
    batches, as kft did before it looked at the device."""
    config = config_lib.default_config()
    line = distribute.resolve(config)
    assert config.trained_on == "CPU"
    assert (config.precision, config.jit_compile) == ("float32", False)
    assert config.steps_per_execution == 1
    assert config.data.text_shapes == "dynamic"
    assert line == (
        "CPU: precision float32, jit_compile off, steps_per_execution 1, "
        "text shapes dynamic (auto for this device)"
    )


def test_what_the_user_set_wins_on_a_gpu():
    config = config_lib.default_config()
    config_lib.apply_overrides(
        config,
        [
            ("precision", "float32"),
            ("jit_compile", "false"),
            ("steps_per_execution", "2"),
        ],
    )
    line = distribute.resolve(config, A100)
    assert (config.precision, config.jit_compile) == ("float32", False)
    assert config.steps_per_execution == 2
    # text_shapes stays auto's rule, following the resolved jit_compile.
    assert config.data.text_shapes == "dynamic"
    assert "you set precision, jit_compile, steps_per_execution" in line
    shapes = config_lib.default_config()
    shapes.data.text_shapes = "dynamic"
    shapes.jit_compile = True  # as an experiment file sets it
    distribute.resolve(shapes, Device())
    assert shapes.jit_compile is True and shapes.data.text_shapes == "dynamic"


def test_probe_reads_tensorflows_gpus(monkeypatch):
    import tensorflow as tf

    gpus = ["GPU:0", "GPU:1"]
    details = {
        "GPU:0": {"device_name": "NVIDIA A100", "compute_capability": (8, 0)},
        "GPU:1": {"device_name": "Tesla T4", "compute_capability": (7, 5)},
    }
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind: gpus)
    monkeypatch.setattr(
        tf.config.experimental, "get_device_details", details.__getitem__
    )
    found = accelerator.probe("mirrored")
    # Both GPUs run the policy: the lower compute capability decides.
    assert found == Device("GPU", "NVIDIA A100", (7, 5), 2)
    assert found.describe() == "2 GPUs NVIDIA A100 (compute 7.5)"
    assert accelerator.auto_precision(found) == "mixed_float16"
    details["GPU:1"] = {"device_name": "Tesla T4"}  # no capability given
    assert accelerator.probe("mirrored").compute == ()
    assert accelerator.probe("tpu") == Device("TPU")
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind: [])
    monkeypatch.setattr(accelerator, "cpu_flags", lambda: ("", set()))
    assert accelerator.probe("default") == Device()


CPUINFO = """processor\t: 0
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_bf16 amx_tile
processor\t: 1
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_bf16 amx_tile
"""


def test_probe_reads_the_cpus_amx_flag(monkeypatch, tmp_path):
    """A CPU with AMX's bfloat16 tiles is told apart (its runs record
    "CPU with AMX") from one without (AVX512_BF16 alone included)."""
    import tensorflow as tf

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(CPUINFO)
    model, flags = accelerator.cpu_flags(str(cpuinfo))
    assert model == "Intel(R) Xeon(R) Processor"
    assert {"amx_bf16", "avx512_bf16"} <= flags
    assert accelerator.cpu_flags(str(tmp_path / "none")) == ("", set())
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind: [])
    found = {}
    monkeypatch.setattr(accelerator, "cpu_flags", lambda: found["flags"])
    found["flags"] = (model, flags)
    assert accelerator.probe("default") == Device(amx=True)
    assert accelerator.probe("default").describe() == "CPU with AMX"
    found["flags"] = ("AMD EPYC", {"avx2", "avx512f", "avx512_bf16"})
    assert accelerator.probe("default") == Device()
    assert accelerator.auto_precision(Device()) == "float32"


def test_jit_compile_takes_auto_or_a_bool():
    config = config_lib.default_config()
    assert config.jit_compile == "auto"
    assert accelerator.jit(config) is False  # unresolved: off, as before
    config_lib.override(config, "jit_compile", "on")
    assert config.jit_compile is True
    config_lib.override(config, "jit_compile", "auto")
    assert config.jit_compile == "auto"
    with pytest.raises(UserError, match="expects bool or auto"):
        config_lib.override(config, "jit_compile", "maybe")
    config.jit_compile = "yes"  # as an experiment file could
    with pytest.raises(UserError, match="valid: auto, true, false"):
        distribute.resolve(config, Device())


def test_config_json_records_the_resolved_settings(tmp_path):
    config = config_lib.default_config()
    distribute.resolve(config, V100)
    run_folder.write_config(config, str(tmp_path))
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["precision"] == "mixed_float16"
    assert saved["jit_compile"] is True
    assert saved["steps_per_execution"] == 8
    assert saved["data"]["text_shapes"] == "fixed"
    assert saved["trained_on"] == "GPU Tesla V100-SXM2-16GB (compute 7.0)"
    again = run_folder.read_config(str(tmp_path))
    assert again.to_dict() == config.to_dict()
    # A config.json written before jit_compile took "auto" still reads.
    del saved["trained_on"]
    saved["jit_compile"] = False
    (tmp_path / "config.json").write_text(json.dumps(saved))
    older = run_folder.read_config(str(tmp_path))
    assert older.jit_compile is False and older.trained_on == ""


def test_mixed_float16_compiles_with_loss_scaling():
    """Keras wraps kft's own optimizer (layer multipliers, fused Adam) in a
    LossScaleOptimizer when the model's policy is mixed_float16; a step
    trains through it."""
    import keras
    import numpy as np

    from kft.core import optim
    from kft.tasks.classification.task import TASK as CLASSIFICATION

    config = config_lib.default_config()
    config.precision = "mixed_float16"
    config.jit_compile, config.steps_per_execution = False, 1
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = keras.Sequential(
            [
                keras.Input((4,)),
                keras.layers.Dense(8),
                keras.layers.Dense(2, activation="softmax", dtype="float32"),
            ]
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")
    schedule = optim.make_schedule(config.schedule, 1e-3, 10)
    optimizer = optim.make_optimizer(config.optimizer, schedule)
    CLASSIFICATION.compile(model, optimizer, config, 2)
    scaled = model.optimizer
    assert isinstance(scaled, keras.optimizers.LossScaleOptimizer)
    assert scaled.inner_optimizer is optimizer
    before = [keras.ops.convert_to_numpy(v) for v in model.weights]
    features = np.random.default_rng(0).normal(size=(8, 4))
    model.fit(features, np.arange(8) % 2, batch_size=8, verbose=0)
    assert int(optimizer.iterations) == 1
    after = [keras.ops.convert_to_numpy(v) for v in model.weights]
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))


def test_a_cpu_run_logs_and_records_what_it_resolved(
    image_folder, tmp_path, capsys, cpu_only
):
    from conftest import tiny_image_config

    from kft import run

    config = tiny_image_config(image_folder)
    config.epochs, config.export, config.verbose = 1, False, 0
    run.train(config, str(tmp_path))
    assert (
        "kft: CPU: precision float32, jit_compile off, steps_per_execution "
        "1, text shapes dynamic (auto for this device)"
    ) in capsys.readouterr().out
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["trained_on"] == "CPU"
    assert (saved["precision"], saved["jit_compile"]) == ("float32", False)
    assert saved["steps_per_execution"] == 1


def test_a_resolved_copy_of_the_config_resolves_too():
    """`copy_and_resolve_references()` (the Python API's and the tests'
    copy) types jit_compile as a string: resolving it to a bool must not
    fail."""
    config = config_lib.default_config().copy_and_resolve_references()
    distribute.resolve(config, Device())
    assert config.jit_compile is False
    config = config_lib.default_config().copy_and_resolve_references()
    distribute.resolve(config, Device(kind="GPU", name="A100", compute=(8, 0)))
    assert config.jit_compile is True


def test_a_run_leaves_the_processs_precision_policy_as_it_found_it(
    image_folder, tmp_path
):
    """The Python API: a mixed_bfloat16 run must not turn every model a
    notebook builds after it into a bfloat16 one."""
    import keras
    from conftest import tiny_image_config

    from kft import run

    config = tiny_image_config(image_folder)
    config.epochs, config.export, config.verbose = 1, False, 0
    config.precision = "mixed_bfloat16"
    run.train(config, str(tmp_path))
    assert json.loads((tmp_path / "config.json").read_text())["precision"] == (
        "mixed_bfloat16"
    )
    assert keras.mixed_precision.global_policy().name == "float32"
