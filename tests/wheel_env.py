"""A wheel of this source tree, installed into a fresh virtual environment.

What `pip install kft` gives a user, offline: the wheel is built from a
copy of the tree (so the checkout gets no build/ or egg-info), installed
into a new venv with its own pip, and the venv reaches the already
installed dependencies (TensorFlow, keras-hub, ...) through a .pth file
that names a folder of links to this environment's site-packages, every
entry but kft's own (its metadata and the editable-install hook), so that
neither pip nor `import kft` in the venv can find any kft but the wheel's.
"""

import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig

ROOT = pathlib.Path(__file__).resolve().parents[1]
# What the sdist of a checkout holds: enough to build the wheel.
SOURCES = ("setup.py", "setup.cfg", "pyproject.toml", "README.md")
PACKAGES = ("kft", "experiments")


def _run(*command, **options):
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, **options
    )
    assert result.returncode == 0, (command, result.stderr[-3000:])
    return result


def clean_env(venv, **more):
    """os.environ for a command of `venv`: its bin first on PATH, and no
    PYTHONPATH (which names the checkout during the tests), offline pip."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = str(venv / "bin") + os.pathsep + env["PATH"]
    env["VIRTUAL_ENV"] = str(venv)
    env["PIP_NO_INDEX"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env | more


def build_wheel(folder):
    """Builds kft's wheel from a copy of the tree; returns its path."""
    source = folder / "src"
    source.mkdir(parents=True)
    for name in SOURCES:
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in PACKAGES:
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    dist = folder / "dist"
    _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--quiet",
        "--wheel-dir",
        str(dist),
        str(source),
        env=clean_env(folder),
    )
    (wheel,) = dist.glob("kft-*.whl")
    return wheel


def _is_kft(name):
    return name.startswith(("kft-", "kft.", "__editable__")) or name == "kft"


def _dependency_links(folder):
    """A folder of links to this environment's site-packages entries but
    kft's own."""
    links = folder / "deps"
    links.mkdir()
    site = pathlib.Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        if not _is_kft(entry.name) and not entry.name.endswith(".pth"):
            (links / entry.name).symlink_to(entry)
    return links


def make_venv(folder, wheel):
    """A fresh venv (with pip) that has the dependencies but not kft;
    returns its folder. `wheel`, when given, is installed into it."""
    venv = folder / "venv"
    _run(sys.executable, "-m", "venv", str(venv))
    python = venv / "bin" / "python"
    site = _run(
        str(python),
        "-c",
        "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        env=clean_env(venv),
    ).stdout.strip()
    links = _dependency_links(folder)
    (pathlib.Path(site) / "kft_test_dependencies.pth").write_text(f"{links}\n")
    if wheel is not None:
        _run(
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            str(wheel),
            env=clean_env(venv),
        )
    return venv
