"""The device a run trains on, and the speed settings left to it.

`probe` describes the device cheaply (no op runs on it): a TPU when the
strategy is "tpu", else the GPUs TensorFlow lists with their compute
capability, else the CPU. `resolve` fills the settings a config leaves
at their auto values from that description; tests pass a `Device` of
their own, so a GPU's resolution is checked on a machine without one.

    setting (its auto value)    CPU      GPU                  TPU
    precision ("auto")          see below                     mixed_bfloat16
    jit_compile ("auto")        off      on                   off
    steps_per_execution (0)     1        8                    32
    data.text_shapes ("auto")   dynamic  fixed                fixed

On a CPU, precision "auto" is float32, except on a CPU with AMX's
bfloat16 tiles (`amx_bf16` in /proc/cpuinfo: Intel Xeon from Sapphire
Rapids on; `trained_on` says "CPU with AMX"), where it is mixed_bfloat16:
it trained MiniLM 1.36x faster a step and a rotten_tomatoes run 1.6x
faster, at the same validation accuracy over 5 seeds (docs/benchmarks.md).
After training, a mixed-precision run scores and exports its weights in
float32 (kft/run.py), so its SavedModel serves on any CPU. On AMD EPYC
with AVX512_BF16 but no AMX, bfloat16 ran no faster than float32.

On a GPU, precision "auto" is mixed_bfloat16 from compute capability 8.0
(Ampere and newer), mixed_float16 on 7.x (Volta, Turing), float32 below
7.0 or where TensorFlow does not report the capability. text_shapes
"auto" is fixed wherever the resolved jit_compile is on, and on TPU
(whose steps are compiled by XLA whatever jit_compile says).

A value the user set is kept. On a CPU, XLA did not pay (docs/training.md;
with mixed_bfloat16 on the AMX Xeon it ran 0.64x-0.70x of without).

Why these: bfloat16 needs Ampere (compute capability 8.0) or newer and
keeps float32's range, so it needs no loss scaling; Volta and Turing
(7.x) have float16 tensor cores, and Keras wraps the optimizer of a
mixed_float16 model in a LossScaleOptimizer when it compiles; below 7.0
TensorFlow itself warns that mixed_float16 may run slower. XLA fuses the
element-wise ops a GPU would otherwise launch one by one; text batches
then come in a few fixed lengths so it compiles a bounded number of
shapes. Several steps per tf.function call save the host round trip of
each step but the first. None of the GPU choices is measured by kft: its
machines have no GPU with TensorFlow; the tests check the table on
described devices.
"""

import dataclasses

from kft.core.errors import UserError

# steps_per_execution when the config leaves it at 0. A TPU step is quick
# next to the host round trip that starts it. On a GPU, 8 steps a call
# share one round trip while the per-step work (NaN checks, checkpoints,
# Ctrl-C) still comes every 8 steps or sooner (unmeasured: no GPU here).
TPU_STEPS_PER_EXECUTION = 32
GPU_STEPS_PER_EXECUTION = 8
BFLOAT16_COMPUTE = (8, 0)
FLOAT16_COMPUTE = (7, 0)


@dataclasses.dataclass(frozen=True)
class Device:
    """What a run trains on: `kind` "CPU", "GPU" or "TPU"; for GPUs, the
    first one's `name`, the lowest `compute` capability of them all
    ((major, minor); () where TensorFlow does not say) and their `count`.
    """

    kind: str = "CPU"
    name: str = ""
    compute: tuple = ()
    count: int = 1
    # A CPU with AMX's bfloat16 matrix tiles.
    amx: bool = False

    def describe(self):
        """One phrase: "CPU", "CPU with AMX", "TPU", "GPU NVIDIA A100
        (compute 8.0)", "2 GPUs NVIDIA T4 (compute 7.5)"."""
        if self.kind == "CPU" and self.amx:
            return "CPU with AMX"
        if self.kind != "GPU":
            return self.kind
        text = "GPU" if self.count == 1 else f"{self.count} GPUs"
        if self.name:
            text += f" {self.name}"
        if self.compute:
            text += f" (compute {self.compute[0]}.{self.compute[1]})"
        return text


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """(model name, set of flags) of the first processor /proc/cpuinfo
    lists; ("", set()) where there is no such file (not Linux)."""
    try:
        with open(cpuinfo) as file:
            text = file.read()
    except OSError:
        return "", set()
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    return model, flags


def probe(strategy_name):
    """The `Device` of a run under the strategy `strategy_name`."""
    import tensorflow as tf

    if strategy_name == "tpu":
        return Device("TPU")
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return Device("CPU", amx="amx_bf16" in cpu_flags()[1])
    details = [tf.config.experimental.get_device_details(g) for g in gpus]
    computes = [d.get("compute_capability") for d in details]
    known = [tuple(c) for c in computes if c]
    return Device(
        "GPU",
        name=details[0].get("device_name", ""),
        # Every GPU must run the policy; unknown for one is unknown.
        compute=min(known) if len(known) == len(gpus) else (),
        count=len(gpus),
    )


def auto_precision(device):
    """The precision "auto" is on `device`."""
    if device.kind == "TPU" or device.amx:
        return "mixed_bfloat16"
    if device.kind != "GPU" or not device.compute:
        return "float32"
    if device.compute >= BFLOAT16_COMPUTE:
        return "mixed_bfloat16"
    if device.compute >= FLOAT16_COMPUTE:
        return "mixed_float16"
    return "float32"


def jit(config):
    """Whether models compile with XLA: the resolved `jit_compile`; an
    unresolved "auto" (a caller that skipped `resolve`) is off."""
    return config.jit_compile is True


def resolve(config, device):
    """Fills the auto settings of `config` for `device` (the table in the
    module docstring), records `device` in `config.trained_on`, and
    returns the line the run logs: what was resolved and why."""
    given = []
    if config.precision == "auto":
        config.precision = auto_precision(device)
    else:
        given.append("precision")
    if config.jit_compile == "auto":
        # A copy_and_resolve_references() copy types the field as a string.
        with config.ignore_type():
            config.jit_compile = device.kind == "GPU"
    elif isinstance(config.jit_compile, bool):
        given.append("jit_compile")
    else:
        raise UserError(
            f"bad value {config.jit_compile!r} for --config.jit_compile; "
            "valid: auto, true, false"
        )
    if config.steps_per_execution == 0:
        per_call = {"GPU": GPU_STEPS_PER_EXECUTION}
        per_call["TPU"] = TPU_STEPS_PER_EXECUTION
        config.steps_per_execution = per_call.get(device.kind, 1)
    else:
        given.append("steps_per_execution")
    if config.data.text_shapes == "auto":
        fixed = jit(config) or device.kind == "TPU"
        config.data.text_shapes = "fixed" if fixed else "dynamic"
    else:
        given.append("data.text_shapes")
    config.trained_on = device.describe()
    line = (
        f"{config.trained_on}: precision {config.precision}, jit_compile "
        f"{'on' if jit(config) else 'off'}, steps_per_execution "
        f"{config.steps_per_execution}, text shapes {config.data.text_shapes}"
    )
    if given:
        return f"{line} (you set {', '.join(given)}; the rest is auto)"
    return f"{line} (auto for this device)"
