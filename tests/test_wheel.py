"""kft as `pip install kft` gives it: the wheel, in a fresh virtual
environment, run from a folder that is not the checkout (tests/wheel_env.py
says how it stays offline)."""

import json
import subprocess

import pytest
from conftest import TINY_IMAGE_FLAGS
from wheel_env import build_wheel, clean_env, make_venv


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wheel")
    return make_venv(folder, build_wheel(folder))


def _in_venv(venv, *command, cwd):
    return subprocess.run(
        [str(venv / "bin" / command[0]), *command[1:]],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=clean_env(venv),
    )


def test_the_wheel_is_what_the_venv_imports(venv, tmp_path):
    result = _in_venv(
        venv,
        "python",
        "-c",
        "import kft, kft.experiments; print(kft.__file__)",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().startswith(str(venv)), result.stdout


def test_the_wheel_lists_its_experiments(venv, tmp_path):
    result = _in_venv(venv, "kft-train", "--list=experiments", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    names = result.stdout.split()
    assert {"text_classifier", "image_classifier", "sst2_bert_base"} <= set(
        names
    )
    assert "__init__" not in names


def test_an_experiment_runs_by_name_from_the_wheel(
    venv, image_folder, tmp_path
):
    """kft-train from the wheel finds `image_classifier` by name from a
    folder with no experiments/ and trains a tiny run."""
    model_dir = tmp_path / "run"
    result = _in_venv(
        venv,
        "kft-train",
        "--experiment=image_classifier",
        f"--model_dir={model_dir}",
        "--config.verbose=0",
        *TINY_IMAGE_FLAGS,
        f"--config.data.train={image_folder}",
        "--config.plan=full",
        "--config.epochs=1",
        "--config.data.validation_fraction=0.25",
        "--config.data.test_fraction=0.25",
        "--config.export=false",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["split"] == "test"
