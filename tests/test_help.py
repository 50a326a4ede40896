"""Every command explains itself: --help prints its own docstring and
flags and exits 0; kft-train lists the valid values of its settings and
prints a resolved config without training."""

import json
import pathlib

import pytest
from absl import flags
from conftest import assert_user_error, run_cli

from kft import config as config_lib

# kft-predict's flags defined too, as in a test worker that ran
# test_files.py: its required flags must not stop kft-train's parse.
from kft.cli import common, predict, train  # noqa: F401
from kft.core import config_docs, experiments, freeze

# Each command and flags of its own that its help must show.
COMMANDS = {
    "kft-train": ["--experiment", "--model_dir", "--list", "--print_config"],
    "kft-evaluate": ["--model_dir", "--saved_model"],
    "kft-export": ["--model_dir", "--export_dir"],
    "kft-predict": ["--saved_model", "--input", "--text_column"],
    "kft-compare": ["--output"],
    "kft-generate": ["--model_dir", "--prompt", "--sampler"],
    "kft-fetch": [],
    "kft-benchmark": ["--experiment", "--suite", "--peers"],
}


@pytest.mark.parametrize("command", COMMANDS)
def test_help_prints_the_command_docstring_and_flags(command):
    """Starts no TensorFlow: a fraction of a second each."""
    result = run_cli(command, "--help")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith(f"{command}: "), result.stdout[:300]
    for flag in COMMANDS[command]:
        assert f"\n  {flag}:" in result.stdout or f"[no]{flag[2:]}:" in (
            result.stdout
        ), flag
    assert "--list=experiments|backbones|plans|keys" in result.stdout
    assert "Try --helpfull" not in result.stdout


def test_helpfull_exits_0_with_absl_flags_too():
    result = run_cli("kft-evaluate", "--helpfull")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("kft-evaluate: ")
    assert "--flagfile" in result.stdout and "--model_dir" in result.stdout


def test_help_text_is_the_module_docstring_and_its_flags():
    text = common.help_text("kft.cli.train")
    assert text.startswith(train.__doc__.strip("\n"))
    assert "--print_config" in text and "--flagfile" not in text
    assert "--flagfile" in common.help_text("kft.cli.train", full=True)


@pytest.mark.parametrize(
    "argv,asked",
    [
        (["kft-train", "--help"], "short"),
        (["kft-train", "-h"], "short"),
        (["kft-train", "--experiment=x", "-?"], "short"),
        (["kft-train", "--helpfull"], "full"),
        (["kft-train", "--experiment=x"], None),
        (["kft-train", "--", "--help"], None),
    ],
)
def test_help_is_recognized(argv, asked):
    assert common._help_asked(argv) == asked


def test_list_experiments_and_plans_are_whole():
    assert train.listing("experiments").splitlines() == (
        experiments.available()
    )
    assert train.listing("plans").splitlines() == list(freeze.PLANS)


def test_list_backbones_is_every_name():
    from kft.model import backbones

    applications, presets = backbones.known_names()
    lines = train.listing("backbones").splitlines()
    assert lines == applications + presets
    assert len(lines) > 40 and "ResNet50" in lines
    assert "bert_base_en_uncased" in lines


def test_every_config_key_is_listed_once_with_its_comment():
    documented = dict(config_docs.documented_keys())
    flat = json.loads(config_lib.to_json(config_lib.default_config()))

    def keys(node, prefix=""):
        for key, value in node.items():
            if isinstance(value, dict):
                yield from keys(value, f"{prefix}{key}.")
            else:
                yield prefix + key

    assert len(config_docs.documented_keys()) == len(documented)
    assert sorted(documented) == sorted(keys(flat))
    assert documented["monitor"].startswith("Model selection")
    # A block that ends in a blank line adds to the key above it.
    assert (
        "task=multilabel uses the same setting"
        in (documented["eval.threshold"])
    )
    # The sub-config's line passes its block on to the keys under it.
    assert documented["regression.loss"].startswith("task=regression")
    text = config_docs.keys_text()
    assert '\ndata.train = ""\n' in text and "\nepochs = 3\n" in text
    assert "# Model selection: the best epoch" in text
    assert all(len(line) <= 79 for line in text.splitlines())


@pytest.fixture
def parsed():
    """Parses a kft-train command line in-process; unparses after."""

    def parse(*args):
        rest = common.parse_flags(["kft-train", *args], "kft.cli.train")
        return rest

    yield parse
    flags.FLAGS.unparse_flags()


def test_print_config_applies_overrides_and_writes_nothing(
    parsed, capsys, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    parsed(
        "--experiment=text_classifier",
        "--print_config",
        "--config.epochs=7",
        "--config.data.train=reviews.csv",
    )
    train.main(["kft-train"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["epochs"] == 7
    assert printed["data"]["train"] == "reviews.csv"
    expected = experiments.load("text_classifier")
    assert printed["backbone"] == expected.backbone
    assert list(tmp_path.iterdir()) == []


def test_train_without_experiment_says_how_to_list_them(parsed, capsys):
    parsed("--model_dir=run")
    with pytest.raises(SystemExit) as exit_info:
        train.main(["kft-train"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert "--experiment is required" in error and "--list=experiments" in (
        error
    )


def test_print_config_command(tmp_path):
    result = run_cli(
        "kft-train",
        "--experiment=image_classifier",
        "--print_config",
        "--config.data.image_size=48",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    config = json.loads(result.stdout)
    assert config["data"]["image_size"] == 48
    assert config["data"]["augment"] == "flip,crop"
    bad = run_cli(
        "kft-train",
        "--experiment=image_classifier",
        "--print_config",
        "--config.data.image_sise=48",
    )
    assert_user_error(bad, "unknown config key", "--list=keys")


@pytest.mark.parametrize(
    "command, flag",
    [("kft-predict", "saved_model"), ("kft-export", "model_dir")],
)
def test_a_required_flag_left_out_is_one_line(command, flag):
    """Checked before TensorFlow starts: a fraction of a second."""
    assert_user_error(run_cli(command), f"--{flag} is required")


@pytest.mark.parametrize(
    "command, flag, said",
    [
        ("kft-evaluate", "--model_dir=~/run", "no config.json in {home}/run"),
        ("kft-export", "--model_dir=~/run", "no config.json in {home}/run"),
        ("kft-predict", "--input=~/in.txt", "no SavedModel at {home}/model"),
        ("kft-compare", "~/run", "{home}/run"),
    ],
)
def test_path_flags_expand_a_leading_tilde(tmp_path, command, flag, said):
    """bash leaves `~` as it is after `--flag=`; kft expands it in every
    path flag, as in the config's data paths (it made a folder named `~`)."""
    extra = {
        "kft-export": ["--export_dir=~/export"],
        "kft-predict": ["--saved_model=~/model"],
        "kft-compare": ["~/other"],
    }.get(command, [])
    result = run_cli(command, flag, *extra, env={"HOME": str(tmp_path)})
    assert result.returncode == 2, result.stderr[-2000:]
    assert said.format(home=tmp_path) in result.stderr, result.stderr[-500:]
    assert not (tmp_path / "~").exists() and not pathlib.Path("~").exists()


def test_ctrl_c_promises_a_resume_only_where_there_is_one():
    """kft-train resumes from its last checkpoint; kft-predict and
    kft-evaluate have none: the same command starts over."""
    assert "resumes from the last checkpoint" in common.interrupted_line(
        "kft-train", True
    )
    assert common.interrupted_line("kft-predict", False) == (
        "kft-predict: interrupted"
    )
    folder = pathlib.Path(common.__file__).parent
    for path in folder.glob("*.py"):
        source = path.read_text()
        if "run_main(" in source and path.name != "common.py":
            assert ("resumable=True" in source) == (path.name == "train.py")
