"""Kill kft-train anywhere, resume, lose nothing: the real console script.

A deterministic two_phase run on a tiny BERT is the reference. The same
command is then killed with SIGKILL at steps a seeded generator picks in
each phase (and once after training, during evaluation), with the newest
checkpoint truncated or corrupted after two of the kills, stopped once with
SIGTERM, and rerun until it finishes: its final weights must equal the
reference's bit for bit, and its history.csv line for line.
"""

import glob
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import make_texts, run_cli, write_csv

SEED = 20261128


def _command(model_dir, data, bert, *extra):
    train, test = data
    return [
        str(pathlib.Path(sys.executable).parent / "kft-train"),
        "--experiment=text_classifier",
        f"--model_dir={model_dir}",
        f"--config.backbone={bert}",
        f"--config.data.train={train}",
        f"--config.data.test={test}",
        "--config.data.batch_size=8",
        "--config.plan=two_phase",
        "--config.checkpoint.every_steps=2",
        "--config.deterministic=true",
        "--config.export=false",
        "--config.verbose=0",
        *extra,
    ]


def _env():
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _checkpoint_steps(model_dir):
    steps = []
    for path in glob.glob(f"{model_dir}/checkpoints/ckpt-*.json"):
        steps.append(int(re.search(r"ckpt-(\d+)\.json", path).group(1)))
    return sorted(steps)


def _weights(model_dir):
    import h5py

    arrays = {}
    with h5py.File(f"{model_dir}/checkpoints/best.weights.h5") as file:
        file.visititems(
            lambda name, item: (
                arrays.__setitem__(name, item[()])
                if isinstance(item, h5py.Dataset)
                else None
            )
        )
    return arrays


def _start(command):
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )


def _wait_for_step(process, model_dir, step, timeout=300):
    """Polls until a checkpoint at `step` or later exists."""
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if any(s >= step for s in _checkpoint_steps(model_dir)):
            return True
        time.sleep(0.01)
    return False


@pytest.fixture(scope="module")
def reference(tmp_path_factory, text_csv, tiny_bert):
    """The uninterrupted run's folder."""
    model_dir = tmp_path_factory.mktemp("reference") / "run"
    result = subprocess.run(
        _command(model_dir, text_csv, tiny_bert),
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return model_dir


def _newest_data_file(model_dir):
    step = _checkpoint_steps(model_dir)[-1]
    return pathlib.Path(
        f"{model_dir}/checkpoints/ckpt-{step:09d}.data-00000-of-00001"
    )


def test_killed_anywhere_resumes_bitwise_equal(
    tmp_path, text_csv, tiny_bert, reference
):
    metrics = json.loads(pathlib.Path(f"{reference}/metrics.json").read_text())
    total = metrics["timing"]["optimizer_steps"]
    per_epoch = total // 4  # head: 1 epoch, full: 3 (text_classifier)
    rng = np.random.default_rng(SEED)
    # One kill in the head phase, two in the full one (each a restart of
    # TensorFlow); the last few steps are left for the SIGTERM below.
    head = [int(rng.integers(1, per_epoch))]
    full = rng.choice(np.arange(per_epoch + 1, total - 6), 2, replace=False)
    full = sorted(full)
    kill_points = [int(s) for s in head + full]
    model_dir = tmp_path / "run"
    command = _command(model_dir, text_csv, tiny_bert)
    outputs = []
    for index, step in enumerate(kill_points):
        process = _start(command)
        assert _wait_for_step(process, model_dir, step), process.communicate()
        process.send_signal(signal.SIGKILL)
        outputs.append(process.communicate())
        assert process.returncode == -signal.SIGKILL
        if index == 0:  # a checkpoint cut short
            data = _newest_data_file(model_dir)
            data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
        if index == 1:  # a checkpoint with a flipped byte, same size
            data = _newest_data_file(model_dir)
            content = bytearray(data.read_bytes())
            content[len(content) // 2] ^= 0xFF
            data.write_bytes(bytes(content))
    # SIGTERM: finishes the step, writes a checkpoint, exits in seconds.
    process = _start(command)
    assert _wait_for_step(process, model_dir, kill_points[-1] + 2)
    sent = time.time()
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    seconds = time.time() - sent
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert "to resume, run the same command" in stderr
    assert seconds < 15, f"{seconds:.1f} s from SIGTERM to exit"
    print(f"SIGTERM to exit: {seconds:.2f} s")
    # Killed after training, during evaluation.
    process = _start(command)
    assert _wait_for_step(process, model_dir, total)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    finished = subprocess.run(
        command, capture_output=True, text=True, env=_env()
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    logs = "".join(out for out, _ in outputs) + stdout + finished.stdout
    assert "unreadable" in logs and "is corrupt" in logs
    assert logs.count("resuming from the checkpoint") >= len(kill_points)
    print("kill points (optimizer steps):", kill_points, "of", total)
    expected, got = _weights(reference), _weights(model_dir)
    assert expected.keys() == got.keys()
    for name in expected:
        assert np.array_equal(expected[name], got[name]), name
    assert (model_dir / "history.csv").read_text() == (
        reference / "history.csv"
    ).read_text()
    metrics = json.loads((model_dir / "metrics.json").read_text())
    reference_metrics = json.loads((reference / "metrics.json").read_text())
    assert metrics["accuracy"] == reference_metrics["accuracy"]


def test_rerun_refuses_another_config_and_respects_overwrite(
    tmp_path, text_csv, tiny_bert, reference
):
    command = _command(reference, text_csv, tiny_bert)
    # The same command on a finished run: nothing to do.
    result = run_cli(*[os.path.basename(command[0]), *command[1:]])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "finished; nothing to do" in result.stdout
    changed = run_cli(
        *[os.path.basename(command[0]), *command[1:]],
        "--config.head.hidden_units=16",
    )
    assert changed.returncode == 2
    assert changed.stderr.count("\n") == 1, changed.stderr
    assert "head.hidden_units: 0 there, 16 here" in changed.stderr
    refused = run_cli(
        *[os.path.basename(command[0]), *command[1:]], "--config.resume=false"
    )
    assert refused.returncode == 2 and "--overwrite" in refused.stderr
    # Same config, other labels: found after the data is read.
    other = tmp_path / "other"
    model_dir = tmp_path / "run"
    os.makedirs(other)
    paths = (other / "train.csv", other / "test.csv")
    data = (make_texts(96, seed=1), make_texts(21, seed=2))
    for path, rows in zip(paths, data):
        write_csv(path, rows)
    command = _command(model_dir, [str(p) for p in paths], tiny_bert)
    process = _start(command)
    assert _wait_for_step(process, model_dir, 1)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    for path, rows in zip(paths, data):
        rename = {"neutral": "meh"}
        write_csv(
            path,
            [dict(r, label=rename.get(r["label"], r["label"])) for r in rows],
        )
    result = subprocess.run(command, capture_output=True, text=True, env=_env())
    assert result.returncode == 2
    assert "labels" in result.stderr and "meh" in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
