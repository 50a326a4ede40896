"""Finds an experiment by name or path and returns its config.

An experiment is a plain Python file with `get_config()` returning a config
built from `kft.config.default_config()`. Names are files in `experiments/`
of the working directory, then kft's own: the package `kft.experiments` of
an installed kft (setup.py ships the checkout's experiments/ as it), or the
experiments/ folder of a source checkout.
"""

import importlib.util
import pathlib

from kft import config as config_lib
from kft.core.errors import UserError, close_matches

# kft/core/experiments.py: a checkout holds kft/, experiments/ and setup.py.
_CHECKOUT = pathlib.Path(__file__).resolve().parents[2]


def search_dirs():
    """The folders names are looked up in, first match first."""
    folders = [pathlib.Path.cwd() / "experiments"]
    spec = importlib.util.find_spec("kft.experiments")
    if spec is not None and spec.submodule_search_locations:
        folders += [pathlib.Path(p) for p in spec.submodule_search_locations]
    if (_CHECKOUT / "setup.py").is_file():
        folders.append(_CHECKOUT / "experiments")
    return folders


def available():
    """Returns the names of the experiments that can be given by name."""
    names = set()
    for folder in search_dirs():
        if folder.is_dir():
            names |= {p.stem for p in folder.glob("*.py") if p.stem[0] != "_"}
    return sorted(names)


def find(name_or_file):
    """Returns the path of the experiment file, or raises UserError."""
    path = pathlib.Path(name_or_file)
    if name_or_file.endswith(".py"):
        if path.is_file():
            return path
        raise UserError(f"experiment file not found: {name_or_file}")
    for folder in search_dirs():
        candidate = folder / f"{name_or_file}.py"
        if candidate.is_file():
            return candidate
    hint = close_matches(name_or_file, available())
    raise UserError(
        f"unknown experiment '{name_or_file}'; {hint} (kft-train "
        "--list=experiments lists them)"
    )


def load(name_or_file):
    """Imports the experiment file and returns its `get_config()`."""
    path = find(name_or_file)
    spec = importlib.util.spec_from_file_location(f"kft_exp_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise UserError(f"{path} defines no get_config()")
    config = module.get_config()
    config_lib.check_complete(config)
    return config
