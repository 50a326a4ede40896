"""A seed ensemble (`--config.ensemble=N`): N members trained with seeds
seed .. seed + N - 1 on the same splits, one model averaging them that is
evaluated, exported and rebuilt by the commands on a finished run."""

import json
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
from conftest import assert_run_contract, run_cli, train_tiny


def test_an_ensemble_run_averages_its_members(tiny_bert, text_csv, tmp_path):
    from kft import commands

    train, test = text_csv
    run = train_tiny(
        tmp_path / "run",
        f"--config.backbone={tiny_bert}",
        f"--config.data.train={train}",
        f"--config.data.test={test}",
        "--config.ensemble=2",
        "--config.learning_rate=1e-3",
        experiment="text_classifier",
    )
    assert_run_contract(run)
    member = run / "members" / "1"
    assert (member / "history.csv").read_text().startswith("phase,epoch")
    resume = [p.name for p in (member / "checkpoints").glob("ckpt-*")]
    assert not resume, resume  # removed once the run finished
    config = commands.read_run_config(str(run))
    assert config.ensemble == 2
    _, _, built = commands.load_run(str(run), config)
    model = built.model
    assert model.name == "kft_ensemble"
    members = [
        layer for layer in model.layers if isinstance(layer, type(model))
    ]
    assert len(members) == 2
    batch = built.preprocessor(["a b c", "d e f g"])
    outputs = [np.asarray(m(batch, training=False)) for m in members]
    assert not np.allclose(outputs[0], outputs[1])  # seeds 0 and 1 differ
    np.testing.assert_allclose(
        np.asarray(model(batch, training=False)),
        np.mean(outputs, axis=0),
        rtol=1e-5,
        atol=1e-6,
    )
    # kft-evaluate rebuilds the ensemble and scores as the run did.
    result = run_cli("kft-evaluate", f"--model_dir={run}")
    assert result.returncode == 0, result.stderr[-3000:]
    again = json.loads((run / "eval" / "test" / "metrics.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert again["confusion_matrix"] == metrics["confusion_matrix"]
    assert len(metrics["timing"]["members"]) == 1
    # The report's curves are the first member's, and it says so.
    page = (run / "report.html").read_text()
    assert "member 1 of 2 (seed 0)" in page
    assert "members/1/history.csv" in page


def test_an_image_ensemble_trains_exports_and_rebuilds(image_folder, tmp_path):
    from conftest import TINY_IMAGE_FLAGS

    from kft import commands

    run = train_tiny(
        tmp_path / "run",
        *TINY_IMAGE_FLAGS,
        f"--config.data.train={image_folder}",
        "--config.data.batch_size=4",
        "--config.ensemble=2",
        experiment="image_classifier",
    )
    assert_run_contract(run)
    config = commands.read_run_config(str(run))
    _, _, built = commands.load_run(str(run), config)
    assert built.model.name == "kft_ensemble"


def _command(model_dir, data, bert):
    train, test = data
    return [
        str(pathlib.Path(sys.executable).parent / "kft-train"),
        "--experiment=text_classifier",
        f"--model_dir={model_dir}",
        f"--config.backbone={bert}",
        f"--config.data.train={train}",
        f"--config.data.test={test}",
        "--config.data.batch_size=8",
        "--config.plan=full",
        "--config.epochs=2",
        "--config.ensemble=2",
        "--config.checkpoint.every_steps=2",
        "--config.deterministic=true",
        "--config.export=false",
        "--config.verbose=0",
    ]


def test_an_ensemble_killed_in_its_second_member_resumes_equal(
    tiny_bert, text_csv, tmp_path
):
    """Killed while member 2 trains, rerun: the finished member is not
    trained again and the ensemble's weights equal an uninterrupted run's
    bit for bit."""
    from conftest import assert_bitwise_equal_runs

    reference = tmp_path / "reference"
    command = _command(reference, text_csv, tiny_bert)
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    model_dir = tmp_path / "run"
    process = subprocess.Popen(
        _command(model_dir, text_csv, tiny_bert),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    second = model_dir / "members" / "1" / "checkpoints"
    deadline = time.time() + 300
    while process.poll() is None and time.time() < deadline:
        if list(second.glob("ckpt-*.json")):
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert list(second.glob("ckpt-*.json")), "member 2 never checkpointed"
    rerun = subprocess.run(
        _command(model_dir, text_csv, tiny_bert), capture_output=True, text=True
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    first, second_log = rerun.stdout.split("member 2 of 2")
    assert "kft: epoch " not in first  # member 1 had finished
    assert "resuming from the checkpoint" in second_log
    assert "kft: epoch " in second_log
    assert_bitwise_equal_runs(reference, model_dir)


def test_every_member_of_a_regression_ensemble_undoes_the_scaling(
    tiny_bert, tmp_path
):
    """What a task fits on the training data before training (regression's
    target scaling, in the model's last layer) is fitted in every member."""
    from conftest import make_texts, write_csv

    from kft import commands

    score = {"negative": 1.0, "neutral": 3.0, "positive": 5.0}
    rows = [
        {"text": row["text"], "label": score[row["label"]] + 0.1 * (i % 3)}
        for i, row in enumerate(make_texts(60, seed=3))
    ]
    run = train_tiny(
        tmp_path / "run",
        f"--config.backbone={tiny_bert}",
        f"--config.data.train={write_csv(tmp_path / 'scores.csv', rows)}",
        "--config.ensemble=2",
        "--config.export=false",
        experiment="text_regressor",
    )
    mean = json.loads((run / "target_scaling.json").read_text())["mean"]
    assert mean > 2
    config = commands.read_run_config(str(run))
    _, _, built = commands.load_run(str(run), config)
    members = [
        layer
        for layer in built.model.layers
        if isinstance(layer, type(built.model))
    ]
    assert len(members) == 2
    for member in members:
        scale = member.get_layer("target_scale")
        assert float(scale.mean.numpy()) == np.float32(mean), member.name
