"""The machine a benchmark ran on, recorded with every table: a speed
change can pay on one CPU kind and cost on another (AVX2-only against
AVX-512 with bfloat16), so a figure without its CPU means little."""

import datetime
import importlib.metadata
import os
import platform

from kft.core import accelerator

# The vector extensions that decide which kernels TensorFlow (oneDNN) and
# PyTorch pick on x86.
EXTENSIONS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
)
PACKAGES = ("tensorflow", "keras", "keras-hub", "torch", "transformers")


def cpu(cpuinfo="/proc/cpuinfo"):
    """(model name, [the EXTENSIONS it has]) from /proc/cpuinfo; the
    platform's processor string and [] where there is no such file."""
    model, flags = accelerator.cpu_flags(cpuinfo)
    model = model or platform.processor() or platform.machine()
    return model, [e for e in EXTENSIONS if e in flags]


def onednn():
    """TensorFlow's oneDNN switch as this process sees it: on by default
    on x86 Linux since TF 2.9, off with TF_ENABLE_ONEDNN_OPTS=0."""
    value = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    if value is None:
        return "default (on)"
    return "off" if value.strip() in ("0", "false", "False") else "on"


def describe():
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    model, extensions = cpu()
    return {
        "cpus": os.cpu_count(),
        "processor": model,
        "extensions": extensions,
        "onednn": onednn(),
        "python": platform.python_version(),
        "versions": versions,
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "load_average_start": os.getloadavg()[0],
    }


def one_line(machine):
    """ "CPU: <model>, N cores, <extensions>; oneDNN <state>"."""
    extensions = ", ".join(machine.get("extensions") or []) or "none listed"
    return (
        f"CPU: {machine['processor']}, {machine['cpus']} cores "
        f"({extensions}); oneDNN {machine.get('onednn', '?')}"
    )
