"""Distributed runs on one CPU machine: two logical devices, two workers.

`mirrored` runs on two logical CPUs, which must be configured before
TensorFlow starts, so in a subprocess. `multi_worker` runs as two real
kft-train processes on 127.0.0.1 with TF_CONFIG; one is killed mid-run and
the job restarted, as a cluster manager would.
"""

import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import make_texts, run_cli, write_csv

_MIRRORED = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)
from kft import config as config_lib, run
results = {}
for strategy in ("default", "mirrored"):
    config = config_lib.from_json(sys.argv[1])
    config.strategy = strategy
    report = run.train(config, f"{sys.argv[2]}/{strategy}")
    with open(f"{sys.argv[2]}/{strategy}/history.csv") as file:
        results[strategy] = {"history": file.read(), "metrics": report}
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    """48 training texts: 6 full batches of 8, so every step splits evenly
    across two replicas."""
    folder = tmp_path_factory.mktemp("texts")
    return (
        write_csv(folder / "train.csv", make_texts(48, seed=1)),
        write_csv(folder / "validation.csv", make_texts(12, seed=3)),
        write_csv(folder / "test.csv", make_texts(21, seed=2)),
    )


def _flags(bert, texts):
    train, validation, test = texts
    return {
        "backbone": bert,
        "data.train": train,
        "data.validation": validation,
        "data.test": test,
        "data.batch_size": "8",
        "data.sequence_length": "16",
        "plan": "linear_probe",
        "epochs": "1",
        "export": "false",
        "verbose": "0",
    }


def _rows(history):
    lines = history.strip().splitlines()
    header = lines[0].split(",")
    return [dict(zip(header, line.split(","))) for line in lines[1:]]


@pytest.fixture(scope="module")
def bert_without_dropout(tmp_path_factory):
    """The tiny BERT of conftest with dropout 0: two replicas would draw
    other dropout masks than one device."""
    import keras_hub
    from conftest import VOCAB

    folder = str(tmp_path_factory.mktemp("bert_without_dropout"))
    keras_hub.models.BertBackbone(
        vocabulary_size=len(VOCAB),
        num_layers=2,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=32,
        dropout=0.0,
    ).save_to_preset(folder)
    keras_hub.models.BertTokenizer(vocabulary=VOCAB).save_to_preset(folder)
    return folder


def test_mirrored_matches_one_device(tmp_path, bert_without_dropout, texts):
    from kft import config as config_lib

    config = config_lib.default_config()
    flags = _flags(bert_without_dropout, texts) | {
        "plan": "full",
        "head.dropout": "0",
        # Keras clips each replica's gradients before they are summed
        # (0.4% off the one-device loss here with clipnorm 1).
        "optimizer.clipnorm": "0",
    }
    config_lib.apply_overrides(config, flags.items())
    result = subprocess.run(
        [sys.executable, "-c", _MIRRORED, config_lib.to_json(config), tmp_path],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "strategy mirrored: 2 replica(s), global batch 8" in result.stdout
    runs = json.loads(result.stdout.strip().splitlines()[-1])
    one, two = (_rows(runs[s]["history"]) for s in ("default", "mirrored"))
    assert len(one) == len(two) == 1, runs
    for row_one, row_two in zip(one, two):
        for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
            assert float(row_two[key]) == pytest.approx(
                float(row_one[key]), rel=1e-4, abs=1e-5
            ), (key, runs)
    for strategy in ("default", "mirrored"):
        metrics = runs[strategy]["metrics"]
        assert metrics["evaluated_examples"] == metrics["num_examples"] == 21
    assert runs["mirrored"]["metrics"]["accuracy"] == pytest.approx(
        runs["default"]["metrics"]["accuracy"]
    )


# === Two workers ===


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for item in sockets:
        item.bind(("127.0.0.1", 0))
    ports = [item.getsockname()[1] for item in sockets]
    for item in sockets:
        item.close()
    return ports


def _start_workers(model_dir, flags, temporary, log_dir, attempt):
    """Starts worker 0 (the chief) and worker 1; returns the processes."""
    addresses = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    script = pathlib.Path(sys.executable).parent / "kft-train"
    processes = []
    for index in range(2):
        tf_config = {
            "cluster": {"worker": addresses},
            "task": {"type": "worker", "index": index},
        }
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "TF_CONFIG": json.dumps(tf_config),
            # Where each worker's temporary folder goes, to check it is gone.
            "TMPDIR": str(temporary[index]),
        }
        log = open(log_dir / f"worker{index}-{attempt}.log", "w")
        command = [
            str(script),
            "--experiment=text_classifier",
            f"--model_dir={model_dir}",
            "--config.strategy=multi_worker",
            *(f"--config.{key}={value}" for key, value in flags.items()),
        ]
        processes.append(
            subprocess.Popen(command, stdout=log, stderr=log, env=env)
        )
    return processes


def _checkpoint_steps(model_dir):
    names = os.listdir(model_dir / "checkpoints")
    return [
        int(m.group(1))
        for m in map(re.compile(r"ckpt-(\d+)\.json").match, names)
        if m
    ]


def _worker_folders(folder):
    # (TMPDIR also holds TensorFlow's autograph files.)
    return [name for name in os.listdir(folder) if name.startswith("kft-")]


def test_multi_worker_killed_worker_resumes_and_only_chief_writes(
    tmp_path, tiny_bert, texts
):
    model_dir = tmp_path / "run"
    temporary = [tmp_path / "tmp0", tmp_path / "tmp1"]
    for folder in temporary:
        folder.mkdir()
    flags = _flags(tiny_bert, texts) | {"checkpoint.every_steps": "1"}
    processes = _start_workers(model_dir, flags, temporary, tmp_path, 0)
    deadline = time.time() + 300
    while time.time() < deadline and all(p.poll() is None for p in processes):
        if (model_dir / "checkpoints").is_dir() and any(
            step >= 3 for step in _checkpoint_steps(model_dir)
        ):
            break
        time.sleep(0.05)
    assert all(p.poll() is None for p in processes), "a worker ended early"
    processes[1].send_signal(signal.SIGKILL)  # the worker dies mid-run
    try:
        processes[0].wait(timeout=60)  # the chief fails too, or ...
    except subprocess.TimeoutExpired:
        processes[0].send_signal(signal.SIGKILL)  # ... the manager stops it
        processes[0].wait()
    processes[1].wait()
    killed_at = max(_checkpoint_steps(model_dir))
    assert _worker_folders(temporary[1]), "worker 1 wrote nothing"
    # The cluster manager restarts the job: the same command on each.
    processes = _start_workers(model_dir, flags, temporary, tmp_path, 1)
    for index, process in enumerate(processes):
        assert process.wait(timeout=600) == 0, (
            tmp_path / f"worker{index}-1.log"
        ).read_text()[-3000:]
    for index in range(2):
        log = (tmp_path / f"worker{index}-1.log").read_text()
        assert "resuming from the checkpoint at step" in log, log[-2000:]
    print(f"killed at step {killed_at} of {max(_checkpoint_steps(model_dir))}")
    assert killed_at < max(_checkpoint_steps(model_dir))
    # Only the chief left files; the worker's temporary folder is gone.
    assert not _worker_folders(temporary[1])
    names = set(os.listdir(model_dir))
    assert {"config.json", "history.csv", "metrics.json"} <= names
    history = _rows((model_dir / "history.csv").read_text())
    assert [row["epoch"] for row in history] == ["1"]
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["evaluated_examples"] == metrics["num_examples"] == 21


# === Strategy and TPU checks ===


def _one_line_error(result, *words):
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_strategy_errors(tmp_path, monkeypatch):
    from kft import config as config_lib
    from kft import run
    from kft.core.errors import UserError

    config = config_lib.default_config()
    config.strategy = "gpu"
    with pytest.raises(UserError, match="valid: default, mirrored"):
        run.make_strategy(config, str(tmp_path))
    config.strategy = "multi_worker"
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(UserError, match="needs TF_CONFIG"):
        run.make_strategy(config, str(tmp_path))
    # The TPU preflight fails on the command line, before any TPU is
    # looked for, with one line.
    remote = run_cli(
        "kft-train",
        "--experiment=text_classifier",
        f"--model_dir={tmp_path}/run",
        "--config.strategy=tpu",
        "--config.tpu=grpc://10.0.0.2:8470",
    )
    assert remote.returncode == 2, remote.stderr[-2000:]
    lines = remote.stderr.strip().splitlines()
    assert len(lines) == 1 and "is local" in lines[0], remote.stderr
