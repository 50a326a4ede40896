"""experiments/colab_tpu.ipynb runs, with stand-ins for the TPU and data.

The notebook's install cell installs kft from a wheel of this tree into a
fresh virtual environment (tests/wheel_env.py), offline: its `KFT` is set
to the wheel, and its TensorFlow TPU line, which downloads TensorFlow's TPU
build, is left out. The TPU cell is set to the default strategy, and the
data cell to a tiny BERT and CSV files; the training and export cells run
as written, with the venv first on PATH, and must be the commands the
README shows.
"""

import json
import pathlib

import pytest
from wheel_env import build_wheel, clean_env, make_venv

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = pathlib.Path(__file__).parent.parent / "experiments/colab_tpu.ipynb"
README = pathlib.Path(__file__).parent.parent / "README.md"


def _cells(notebook):
    return {cell.metadata.get("tags", [""])[0]: cell for cell in notebook.cells}


def test_notebook_commands_are_the_readme_commands():
    cells = _cells(nbformat.read(NOTEBOOK, as_version=4))
    readme = README.read_text()
    for tag in ("install", "tpu", "data", "train", "export"):
        for line in cells[tag].source.splitlines():
            if line.startswith("!") or "STRATEGY =" in line:
                assert line.lstrip("!") in readme, line


def test_notebook_runs_with_stand_ins(
    tmp_path, tiny_bert, text_csv, monkeypatch
):
    train, test = text_csv
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    cells = _cells(notebook)
    folder = tmp_path / "wheel"
    folder.mkdir()
    venv = make_venv(folder, None)
    install = cells["install"].source.splitlines()
    assert 'KFT = "kft"' in install and "!pip install -q {KFT}" in install
    cells["install"].source = "\n".join(
        f'KFT = "{build_wheel(folder)}"' if line == 'KFT = "kft"' else line
        for line in install
        if "tensorflow-tpu" not in line
    )
    cells["tpu"].source = 'STRATEGY = "--config.strategy=default"'
    flags = (
        f"--config.backbone={tiny_bert} --config.data.train={train} "
        f"--config.data.validation= --config.data.test={test} "
        "--config.data.sequence_length=16 --config.epochs=2 --config.verbose=0"
    )
    model_dir = tmp_path / "run"
    cells["data"].source = f'MODEL_DIR = "{model_dir}"\nDATA = "{flags}"'
    # The kernel's pip and kft-train are the venv's; kft is the wheel's.
    for name, value in clean_env(venv).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    client = nbclient.NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    outputs = "".join(
        output.get("text", "")
        for cell in notebook.cells
        for output in cell.get("outputs", [])
    )
    metrics_file = model_dir / "metrics.json"
    assert metrics_file.is_file(), outputs[-3000:]
    metrics = json.loads(metrics_file.read_text())
    assert metrics["evaluated_examples"] == metrics["num_examples"] == 21
    assert (model_dir / "export" / "1" / "saved_model.pb").is_file()
    assert "test 21 examples, accuracy" in outputs
    assert "export: ['1']" in outputs
    installed = list(venv.glob("lib/python*/site-packages/kft/experiments"))
    assert installed and (installed[0] / "sst2_bert_base.py").is_file()
