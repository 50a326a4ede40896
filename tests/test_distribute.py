"""Distributed runs on one CPU machine: two logical devices, two workers.

`mirrored` runs on two logical CPUs, which must be configured before
TensorFlow starts, so in a subprocess. `multi_worker` runs as two real
kft-train processes on 127.0.0.1 with TF_CONFIG; one is killed mid-run and
the job restarted, as a cluster manager would, or sent SIGTERM. The splits
do not divide by the batch sizes, so replicas get unequal shares of the
last batches; both strategies must give one device's figures.
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
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)
from kft import config as config_lib, run
config = config_lib.from_json(sys.argv[1])
config.strategy = "mirrored"
run.train(config, sys.argv[2])
"""


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    """Splits that do not divide by the batch sizes: 45 training texts are
    5 batches of 8 and one of 5, split 3/2 across two replicas; 11
    validation texts are batches of 5, 5 and 1, which leaves one replica
    nothing."""
    folder = tmp_path_factory.mktemp("texts")
    return (
        write_csv(folder / "train.csv", make_texts(45, seed=1)),
        write_csv(folder / "validation.csv", make_texts(11, seed=3)),
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
        "data.eval_batch_size": "5",
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


def _exact_flags(bert, texts):
    """Flags under which two replicas must train as one device does."""
    return _flags(bert, texts) | {
        "plan": "full",
        "head.dropout": "0",
        # Keras clips each replica's gradients before they are summed
        # (0.4% off the one-device loss here with clipnorm 1).
        "optimizer.clipnorm": "0",
        # Fast enough that a replica's share of a batch weighed wrongly
        # shows (0.4% off the one-device loss).
        "learning_rate": "0.003",
        # Agreement to 1e-4 is float32's: in bfloat16 (auto on a CPU with
        # AMX) halves of a batch round otherwise than the whole.
        "precision": "float32",
        # Weight averaging on: the averages, which are validated, must
        # agree across replicas and survive a worker's restart too.
        "optimizer.ema_momentum": "0.9",
    }


def _command_flags(flags):
    return [f"--config.{key}={value}" for key, value in flags.items()]


def _result(model_dir):
    """(history rows, metrics.json) of a finished run."""
    history = _rows((model_dir / "history.csv").read_text())
    return history, json.loads((model_dir / "metrics.json").read_text())


# The figures two replicas must share with one device, every epoch.
_COMPARED = (
    "loss",
    "accuracy",
    "macro_f1",
    "val_loss",
    "val_accuracy",
    "val_macro_f1",
)


def _assert_same_figures(one, two):
    """Runs `one` and `two` (`_result`s) agree: history within 1e-4 and
    test metrics exactly, every test example counted once."""
    (history_one, metrics_one), (history_two, metrics_two) = one, two
    assert len(history_one) == len(history_two) == 1, (one, two)
    for row_one, row_two in zip(history_one, history_two):
        for key in _COMPARED:
            assert float(row_two[key]) == pytest.approx(
                float(row_one[key]), rel=1e-4, abs=1e-5
            ), (key, row_one, row_two)
    for metrics in (metrics_one, metrics_two):
        assert metrics["evaluated_examples"] == metrics["num_examples"] == 21
    for key in ("accuracy", "macro_f1"):
        assert metrics_two[key] == pytest.approx(metrics_one[key]), key


@pytest.fixture(scope="module")
def one_device(tmp_path_factory, bert_without_dropout, texts):
    """The `_result` of the default strategy's run of `_exact_flags`."""
    model_dir = tmp_path_factory.mktemp("one_device") / "run"
    result = run_cli(
        "kft-train",
        "--experiment=text_classifier",
        f"--model_dir={model_dir}",
        *_command_flags(_exact_flags(bert_without_dropout, texts)),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return _result(model_dir)


def test_mirrored_matches_one_device(
    tmp_path, bert_without_dropout, texts, one_device
):
    from kft import config as config_lib
    from kft.core import experiments

    config = experiments.load("text_classifier")  # as one_device's run
    flags = _exact_flags(bert_without_dropout, texts)
    config_lib.apply_overrides(config, flags.items())
    model_dir = tmp_path / "mirrored"
    result = subprocess.run(
        [sys.executable, "-c", _MIRRORED, config_lib.to_json(config)]
        + [str(model_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "strategy mirrored: 2 replica(s), global batch 8" in result.stdout
    _assert_same_figures(one_device, _result(model_dir))


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
            *_command_flags(flags),
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


def _wait_for_checkpoint(model_dir, processes, step, timeout=300):
    """Waits until the checkpoint of `step` (or a later one) is written;
    fails if a worker ends first."""
    deadline = time.time() + timeout
    while time.time() < deadline and all(p.poll() is None for p in processes):
        if (model_dir / "checkpoints").is_dir() and any(
            done >= step for done in _checkpoint_steps(model_dir)
        ):
            break
        time.sleep(0.05)
    assert all(p.poll() is None for p in processes), "a worker ended early"


def _exit_codes(processes, timeout):
    """Each process's exit status; one still running after `timeout`
    seconds is killed and counts as None."""
    deadline = time.time() + timeout
    codes = []
    for process in processes:
        try:
            codes.append(process.wait(max(deadline - time.time(), 1)))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            codes.append(None)
    return codes


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
    _wait_for_checkpoint(model_dir, processes, 3)
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
    metrics = json.loads((model_dir / "metrics.json").read_text())
    final = metrics["timing"]["optimizer_steps"]
    print(f"killed at step {killed_at} of {final}")
    assert killed_at < final
    # Only the chief left files; the worker's temporary folder is gone.
    assert not _worker_folders(temporary[1])
    names = set(os.listdir(model_dir))
    assert {"config.json", "history.csv", "metrics.json"} <= names
    history = _rows((model_dir / "history.csv").read_text())
    assert [row["epoch"] for row in history] == ["1"]
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["evaluated_examples"] == metrics["num_examples"] == 21


@pytest.mark.slow  # about 70 s: four kft-train processes
def test_multi_worker_sigterm_stops_both_and_resumes_as_one_device(
    tmp_path, bert_without_dropout, texts, one_device
):
    model_dir = tmp_path / "run"
    temporary = [tmp_path / "tmp0", tmp_path / "tmp1"]
    for folder in temporary:
        folder.mkdir()
    flags = _exact_flags(bert_without_dropout, texts)
    flags["checkpoint.every_steps"] = "1"  # (a resumable change)
    processes = _start_workers(model_dir, flags, temporary, tmp_path, 0)
    _wait_for_checkpoint(model_dir, processes, 2)
    processes[1].send_signal(signal.SIGTERM)  # as a preempted machine gets
    codes = _exit_codes(processes, timeout=120)
    logs = [(tmp_path / f"worker{i}-0.log").read_text() for i in range(2)]
    assert codes == [143, 143], (codes, logs[0][-2000:], logs[1][-2000:])
    # Both stop at the same step, mid-epoch, the chief's checkpoint there.
    written = re.compile(r"by SIGTERM, checkpoint written at step (\d+)")
    steps = [int(written.search(log).group(1)) for log in logs]
    assert steps[0] == steps[1] < 6, steps
    assert max(_checkpoint_steps(model_dir)) == steps[0]
    assert not _worker_folders(temporary[1])
    # The same command resumes both, and the run ends as one device's.
    processes = _start_workers(model_dir, flags, temporary, tmp_path, 1)
    codes = _exit_codes(processes, timeout=300)
    logs = [(tmp_path / f"worker{i}-1.log").read_text() for i in range(2)]
    assert codes == [0, 0], (codes, logs[0][-2000:], logs[1][-2000:])
    for log in logs:
        assert f"resuming from the checkpoint at step {steps[0]}" in log, log
    _assert_same_figures(one_device, _result(model_dir))


# === Strategy and TPU checks ===


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
