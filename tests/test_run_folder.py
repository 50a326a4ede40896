"""Where the commands may write: a new or empty folder or a kft run folder,
and only inside it; a folder they cannot use is one line, never a trace."""

import hashlib
import json
import os
import pathlib
import subprocess

import pytest
from conftest import (
    TINY_IMAGE_FLAGS,
    assert_user_error,
    run_cli,
    write_run_files,
)

from kft.core import checkpoint, run_folder
from kft.core.errors import UserError


def _image_flags(data):
    return (
        *TINY_IMAGE_FLAGS,
        f"--config.data.train={data}",
        "--config.plan=full",
        "--config.epochs=1",
        "--config.data.validation_fraction=0.25",
        "--config.data.test_fraction=0.25",
        "--config.export=false",
    )


def _train_images(model_dir, data, *more, **options):
    return run_cli(
        "kft-train",
        "--experiment=image_classifier",
        f"--model_dir={model_dir}",
        "--config.verbose=0",
        *_image_flags(data),
        *more,
        **options,
    )


def _checksums(folder):
    """{relative path: sha256} of every file under `folder`."""
    sums = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            data = pathlib.Path(path).read_bytes()
            sums[os.path.relpath(path, folder)] = hashlib.sha256(data).digest()
    return sums


def _can_mount():
    """Whether this machine lets a test mount a read-only file system in a
    mount namespace of its own (root in a container usually may)."""
    try:
        result = subprocess.run(
            ["unshare", "-m", "true"], capture_output=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0


needs_mount = pytest.mark.skipif(
    not _can_mount(), reason="unshare -m (a mount namespace) not permitted"
)


def _read_only(folder, bind=False):
    """A command prefix that runs the command with `folder` read-only: an
    empty read-only tmpfs over it, or (`bind`) its own files, read-only."""
    if bind:
        mount = f"mount --bind {folder} {folder} && "
        mount += f"mount -o remount,bind,ro {folder}"
    else:
        mount = f"mount -t tmpfs -o ro tmpfs {folder}"
    return ("unshare", "-m", "sh", "-c", f'{mount} && exec "$@"', "sh")


@pytest.fixture(scope="module")
def image_run(image_folder, tmp_path_factory):
    """A finished tiny image run whose first command failed before
    training (missing data); returns (run folder, first, second result)."""
    model_dir = tmp_path_factory.mktemp("runs") / "run"
    failed = _train_images(model_dir, "/no/such/photos")
    result = _train_images(model_dir, image_folder)
    assert result.returncode == 0, result.stderr[-3000:]
    return model_dir, failed, result


def test_a_run_that_failed_before_training_takes_the_corrected_command(
    image_run,
):
    _, failed, result = image_run
    assert_user_error(failed, "data not found")
    assert "stopped before training: emptied" in result.stdout


def test_a_relative_data_path_reruns_the_same_run(image_run, image_folder):
    model_dir, _, _ = image_run
    parent, name = os.path.split(image_folder)
    result = _train_images(model_dir, name, cwd=parent)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "finished; nothing to do" in result.stdout


def _hugging_face_folder(folder):
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "bert"}')
    (folder / "model.safetensors").write_bytes(b"\0" * 64)
    (folder / "vocab.txt").write_text("[PAD]\n")
    return folder


def _user_folder(folder):
    folder.mkdir()
    (folder / "notes.txt").write_text("my notes")
    (folder / "thesis").mkdir()
    (folder / "thesis" / "draft.tex").write_text("\\section{}")
    return folder


@pytest.mark.parametrize(
    "make,overwrite,words",
    [
        (_hugging_face_folder, False, ["not empty", "no kft run"]),
        (_hugging_face_folder, True, ["not empty", "--overwrite included"]),
        (_user_folder, True, ["not empty", "notes.txt"]),
    ],
)
def test_a_folder_that_holds_no_run_is_refused_and_unchanged(
    make, overwrite, words, image_folder, tmp_path
):
    folder = make(tmp_path / "folder")
    before = _checksums(folder)
    more = ["--overwrite"] if overwrite else []
    assert_user_error(_train_images(folder, image_folder, *more), *words)
    assert _checksums(folder) == before


def test_a_model_dir_that_is_a_file_is_refused(image_folder, tmp_path):
    path = tmp_path / "results.txt"
    path.write_text("mine")
    assert_user_error(_train_images(path, image_folder), "is a file")
    assert path.read_text() == "mine"


@pytest.mark.parametrize(
    "overrides,words",
    [
        (["--config.data.batch_size=0"], ["data.batch_size", ">= 1"]),
        (["--config.data.eval_batch_size=-1"], ["data.eval_batch_size"]),
        (["--config.learning_rate=-0.001"], ["learning_rate", "> 0"]),
        (
            [
                "--config.data.validation_fraction=0.6",
                "--config.data.test_fraction=0.5",
            ],
            ["hold out 110%", "less than 1"],
        ),
        (
            ["--config.data.text_column=label"],
            ["text_column", "different columns"],
        ),
    ],
)
def test_a_bad_value_fails_before_the_folder_is_made(
    overrides, words, image_folder, tmp_path
):
    result = _train_images(tmp_path / "run", image_folder, *overrides)
    assert_user_error(result, *words)
    assert not (tmp_path / "run").exists()


@needs_mount
def test_a_read_only_model_dir_is_one_line(image_folder, tmp_path):
    folder = tmp_path / "read_only"
    folder.mkdir()
    result = _train_images(folder, image_folder, prefix=_read_only(folder))
    assert_user_error(result, "cannot write to --model_dir", "Read-only")


def test_evaluate_from_a_class_folder_writes_inside_eval(
    image_run, image_folder
):
    model_dir, _, _ = image_run
    before = _checksums(model_dir)
    result = run_cli(
        "kft-evaluate",
        f"--model_dir={model_dir}",
        "--config.data.test=..",
        cwd=os.path.join(image_folder, "dark"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    written = model_dir / "eval" / os.path.basename(image_folder)
    assert (
        json.loads((written / "metrics.json").read_text())["num_examples"] == 16
    )
    after = _checksums(model_dir)
    assert {k: v for k, v in after.items() if k in before} == before


@needs_mount
def test_evaluate_on_a_read_only_run_is_one_line(image_run):
    model_dir, _, _ = image_run
    result = run_cli(
        "kft-evaluate",
        f"--model_dir={model_dir}",
        prefix=_read_only(model_dir, bind=True),
    )
    assert_user_error(result, "cannot write to", "kft-evaluate writes")


def test_export_to_a_file_is_one_line(image_run, tmp_path):
    model_dir, _, _ = image_run
    path = tmp_path / "models"
    path.write_text("mine")
    result = run_cli(
        "kft-export", f"--model_dir={model_dir}", f"--export_dir={path}"
    )
    assert_user_error(result, "is a file")
    assert path.read_text() == "mine"
    # An empty flag, and a base that cannot be made: one line each too.
    result = run_cli("kft-export", f"--model_dir={model_dir}", "--export_dir=")
    assert_user_error(result, "--export_dir is required")
    result = run_cli(
        "kft-export", f"--model_dir={model_dir}", "--export_dir=/proc/nope"
    )
    assert_user_error(result, "cannot write to /proc/nope")


def test_compare_refuses_cut_off_files_and_a_folder_output(tmp_path):
    write_run_files(tmp_path / "a", [])
    write_run_files(tmp_path / "b", [])
    metrics = tmp_path / "b" / "metrics.json"
    metrics.write_text(metrics.read_text()[:40])
    cut = run_cli("kft-compare", str(tmp_path / "a"), str(tmp_path / "b"))
    assert_user_error(cut, "metrics.json is not valid JSON")
    (tmp_path / "out").mkdir()
    folder = run_cli(
        "kft-compare", str(tmp_path / "a"), f"--output={tmp_path / 'out'}"
    )
    assert_user_error(folder, "is a folder")
    assert os.listdir(tmp_path / "out") == []
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n]


@pytest.mark.parametrize(
    "source,name",
    [
        ("..", None),
        (".", None),
        ("../../.hidden.csv", "hidden"),
        ("data/test.csv", "test"),
        ("gs://bucket/../x y.jsonl", "x_y"),
        ("tfds:imdb_reviews:test", "tfds_imdb_reviews_test"),
    ],
)
def test_eval_names_stay_inside_eval(source, name):
    resolved = os.path.basename(os.path.abspath(source))
    expected = name or resolved
    got = run_folder.eval_name(source)
    assert got == expected
    assert got and not got.startswith(".") and "/" not in got


def test_paths_are_compared_resolved(tmp_path, monkeypatch):
    (tmp_path / "train.csv").write_text("text,label\n")
    monkeypatch.chdir(tmp_path)
    saved = {"data": {"train": str(tmp_path / "train.csv")}, "seed": 0}
    asked = {"data": {"train": "train.csv"}, "seed": 0}
    assert run_folder.config_differences(saved, asked) == []
    asked["data"]["train"] = "other.csv"
    assert run_folder.config_differences(saved, asked)


def test_check_target_takes_new_empty_and_run_folders(tmp_path):
    run_folder.check_target(str(tmp_path / "new"))
    run_folder.check_target(str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "run.json").write_text('{"config": {}}')
    run_folder.check_target(str(tmp_path))
    (tmp_path / "checkpoints" / "run.json").write_text('["not a run"]')
    with pytest.raises(UserError, match="no kft run"):
        run_folder.check_target(str(tmp_path))


def _start(model_dir, **changes):
    """What kft-train does with `model_dir` before it reads data: opens the
    folder and writes config.json; returns (config, record)."""
    from kft import config as config_lib

    config = config_lib.default_config()
    config.backbone = "MobileNetV3Small"
    for key, value in changes.items():
        config_lib.override(config, key, str(value))
    requested = json.loads(config_lib.to_json(config))
    record = run_folder.open_folder(config, requested, str(model_dir), False)
    run_folder.write_config(config, str(model_dir))
    return config, record


def _fake_checkpoint(model_dir):
    """A finished checkpoint's marker file, as training writes it."""
    (model_dir / "checkpoints" / "ckpt-5.json").write_text("{}")


def test_a_start_without_data_takes_the_corrected_command(tmp_path):
    """The issue's `kft-train --model_dir=r3` without data, then with it."""
    model_dir = tmp_path / "r3"
    _start(model_dir)  # failed: "no training data; set --config.data.train"
    _, record = _start(model_dir, **{"data.train": "reviews.csv"})
    assert record["config"]["data"]["train"] == "reviews.csv"
    saved = json.loads((model_dir / "config.json").read_text())
    assert saved["data"]["train"] == "reviews.csv"


def test_resume_false_takes_the_corrected_command(tmp_path):
    """A first attempt with resume=false that failed before training does
    not refuse the corrected one."""
    model_dir = tmp_path / "run"
    _start(model_dir, resume="false")
    _, record = _start(model_dir, resume="false", **{"data.train": "a.csv"})
    assert record["config"]["data"]["train"] == "a.csv"
    # Once a run has trained, resume=false refuses the folder.
    _fake_checkpoint(model_dir)
    with pytest.raises(UserError, match="already holds a run"):
        _start(model_dir, resume="false", **{"data.train": "a.csv"})


def test_data_fixed_in_place_before_training_is_taken(tmp_path):
    """A start that read its data and failed before the first checkpoint
    (a one-class file, a batch too large) may be rerun after fixing the
    file at the same path; once trained, changed data is refused."""
    model_dir = tmp_path / "run"
    _, record = _start(model_dir, **{"data.train": "a.csv"})
    run_folder.check_seen(
        record, {"labels": ["pos"], "train_examples": 9}, str(model_dir)
    )
    _, record = _start(model_dir, **{"data.train": "a.csv"})
    fixed = {"labels": ["neg", "pos"], "train_examples": 12}
    run_folder.check_seen(record, fixed, str(model_dir))
    assert run_folder.read_record(str(model_dir))["labels"] == ["neg", "pos"]
    _fake_checkpoint(model_dir)
    _, record = _start(model_dir, **{"data.train": "a.csv"})
    with pytest.raises(UserError, match="the data changed"):
        run_folder.check_seen(
            record, {"labels": ["neg", "pos", "x"]}, str(model_dir)
        )


@pytest.mark.parametrize("how", ["overwrite", "stopped_before_training"])
def test_starting_over_keeps_files_kft_did_not_write(tmp_path, how):
    """--overwrite and the start-over of a run that never trained remove
    kft's own files only: a user's file in the folder (their data, which
    the new run may read) makes kft refuse, and nothing is removed."""
    from kft import config as config_lib

    model_dir = tmp_path / "run"
    _start(model_dir)
    (model_dir / "history.csv").write_text("phase,epoch\n")
    (model_dir / "mydata.csv").write_text("text,label\n")
    config = config_lib.default_config()
    config.backbone = "MobileNetV3Small"
    if how == "stopped_before_training":
        config_lib.override(config, "data.train", "other.csv")
    requested = json.loads(config_lib.to_json(config))
    with pytest.raises(UserError, match="did not write.*mydata.csv"):
        run_folder.open_folder(
            config, requested, str(model_dir), how == "overwrite"
        )
    assert (model_dir / "mydata.csv").is_file()
    assert (model_dir / "history.csv").is_file()
    (model_dir / "mydata.csv").unlink()
    run_folder.open_folder(config, requested, str(model_dir), True)
    assert not (model_dir / "history.csv").exists()


@pytest.mark.parametrize("command", ["evaluate", "export"])
def test_commands_on_a_run_that_never_trained_say_so(tmp_path, command):
    """kft-evaluate and kft-export on a folder whose kft-train stopped
    before training (its data was missing): one line, no traceback."""
    from kft import commands

    model_dir = tmp_path / "run"
    _start(model_dir)
    with pytest.raises(UserError, match="did not finish"):
        if command == "evaluate":
            commands.evaluate_run(str(model_dir))
        else:
            commands.export_run(str(model_dir), str(tmp_path / "export"))


def _run_of_two_rows(tmp_path):
    """A started run on a two-row train.csv whose data digests are
    recorded: (train file, run folder, config, record, splits)."""
    import types

    train = tmp_path / "train.csv"
    train.write_text("text,label\na,x\nb,y\n")
    model_dir = tmp_path / "run"
    config, record = _start(model_dir, **{"data.train": str(train)})
    splits = types.SimpleNamespace(labels=["x", "y"], train=[0, 1])
    run_folder.check_same_data(record, splits, config, str(model_dir))
    return train, model_dir, config, record, splits


def test_a_finished_run_refuses_data_changed_since(tmp_path):
    """Rerunning a finished run's command says "nothing to do"; after its
    data file changed, its results are stale: one line, not old figures."""
    train, model_dir, config, record, splits = _run_of_two_rows(tmp_path)
    record["finished"] = True
    checkpoint.write_run(str(model_dir), record)
    run_folder.check_finished_data(record, config, str(model_dir))
    train.write_text("text,label\na,x\nb,x\n")
    with pytest.raises(UserError, match="changed since the run .* finished"):
        run_folder.check_finished_data(record, config, str(model_dir))


def test_a_finished_run_refuses_or_names_overrides_it_cannot_use(tmp_path):
    """kft-evaluate on a finished run: a key the weights were trained for
    is refused, one that only steers training is named as ignored, and
    the ones an evaluation uses apply quietly."""
    from kft import commands
    from kft import config as config_lib

    (tmp_path / "config.json").write_text(
        config_lib.to_json(config_lib.default_config())
    )
    said = []
    for key, value in (
        ("backbone", "other"),
        ("head.hidden_units", "8"),
        ("ensemble", "3"),
        ("data.split_seed", "5"),
    ):
        with pytest.raises(UserError, match=f"--config.{key} .*fixed"):
            commands.read_run_config(str(tmp_path), [(key, value)], said.append)
    config = commands.read_run_config(
        str(tmp_path),
        [
            ("epochs", "9"),
            ("optimizer.weight_decay", "0.1"),
            ("data.test", "other.csv"),
            ("eval.threshold", "argmax"),
        ],
        said.append,
    )
    assert config.data.test == "other.csv" and config.epochs == 9
    with pytest.raises(UserError, match="bad value 'abc'"):
        commands.read_run_config(
            str(tmp_path), [("epochs", "abc")], said.append
        )
    assert said == [
        "ignored: --config.epochs, --config.optimizer.weight_decay (they "
        "steer training; the run has trained)"
    ], said


def test_the_lists_of_fixed_and_training_only_keys_name_real_keys():
    from kft import commands
    from kft import config as config_lib

    keys = config_lib.default_config().to_dict()
    flat = set()

    def walk(node, prefix):
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                flat.add(prefix + key)

    walk(keys, "")
    for name in commands.FIXED + commands.TRAINING_ONLY:
        assert name in flat or any(k.startswith(name) for k in flat), name
    assert not set(commands.FIXED) & set(commands.TRAINING_ONLY)


def test_a_run_that_trained_refuses_data_changed_before_its_resume(tmp_path):
    """An interrupted run resumed on an edited data file would finish on
    other data than it started with, and record the new file as its own:
    refused once it has a checkpoint; before one, the new data is taken."""
    train, model_dir, config, record, splits = _run_of_two_rows(tmp_path)
    train.write_text("text,label\na,y\nb,x\n")  # same size and labels
    run_folder.check_same_data(record, splits, config, str(model_dir))
    folder = checkpoint.folder_of(str(model_dir))
    (tmp_path / "run" / "checkpoints" / "ckpt-10.json").write_text("{}")
    assert checkpoint.has_checkpoint(str(model_dir)), folder
    train.write_text("text,label\na,x\nb,x\n")
    with pytest.raises(UserError, match="changed since the run .* started"):
        run_folder.check_same_data(record, splits, config, str(model_dir))
