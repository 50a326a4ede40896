"""kft from Python (kft/api.py): what `import kft` gives without training;
kft.load(...).predict against kft-predict is in test_metrics (the tuned
threshold) and test_qa (named inputs)."""

import subprocess
import sys

import pytest

import kft


def test_import_kft_loads_no_tensorflow():
    script = (
        "import sys, kft; "
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_config_applies_python_values_as_flags_do():
    config = kft.configure(
        "text_classifier",
        {"epochs": 3, "export": False, "data.train": "x.csv", "plan": "full"},
    )
    assert config.epochs == 3 and config.export is False
    assert config.data.train == "x.csv" and config.plan == "full"
    # None is "not set", as a flag left out.
    assert kft.configure("", {"data.validation": None}).data.validation == ""
    assert kft.configure().task == "classification"
    # (key, value) pairs, as the commands apply them, work too.
    assert kft.configure("text_classifier", [("epochs", "2")]).epochs == 2
    assert kft.__all__ == ["Model", "UserError", "configure", "load", "train"]


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: kft.configure("", {"epoch": 3}), "unknown config key 'epoch'"),
        (lambda: kft.configure("", {"epochs": "many"}), "bad value 'many'"),
        (lambda: kft.configure("text_clasifier"), "text_classifier"),
        (lambda: kft.train("text_classifier"), "model_dir is required"),
        (lambda: kft.load("/no/such/run"), "not found: /no/such/run"),
    ],
)
def test_user_errors_raise_one_line(call, words):
    with pytest.raises(kft.UserError) as caught:
        call()
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_a_run_without_export_names_the_command(tmp_path):
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "1").mkdir()  # no check file: incomplete
    (tmp_path / "checkpoints").mkdir()  # but training finished
    (tmp_path / "checkpoints" / "best.weights.h5").write_bytes(b"")
    with pytest.raises(kft.UserError) as caught:
        kft.load(str(tmp_path))
    # The whole command: kft-export requires --export_dir, and the export
    # must land where kft.load looks.
    assert (
        f"run kft-export --model_dir={tmp_path} "
        f"--export_dir={tmp_path / 'export'}"
    ) in str(caught.value)


def test_load_finds_the_newest_version_under_an_export_base(tmp_path):
    from kft.serving import publish

    for version in ("1", "2"):
        (tmp_path / "base" / version).mkdir(parents=True)
        (tmp_path / "base" / version / publish.CHECK_FILE).write_text("{}")
    assert publish.newest_in(str(tmp_path / "base")).endswith("base/2")
    with pytest.raises(kft.UserError, match="with kft-predict"):
        kft.load(str(tmp_path / "model.tflite"))
    (tmp_path / "other").mkdir()
    with pytest.raises(kft.UserError, match="expected a run folder, an export"):
        kft.load(str(tmp_path / "other"))


def test_load_takes_path_objects_and_refuses_other_types(tmp_path):
    import pathlib

    with pytest.raises(kft.UserError, match="not found"):
        kft.load(pathlib.Path(tmp_path / "no_run"))
    with pytest.raises(kft.UserError, match="expected a run folder"):
        kft.load(pathlib.Path(tmp_path))
    for wrong in (3, None, ["a"]):
        with pytest.raises(kft.UserError, match="takes a path"):
            kft.load(wrong)


def _model_of(inputs):
    """A kft.Model's input mapping alone (no SavedModel behind it)."""
    model = object.__new__(kft.Model)
    model.inputs = inputs
    return model


@pytest.mark.parametrize(
    "inputs, value, expected",
    [
        (["text"], "a film", "a film"),
        (["text"], ["a film", "more"], "holds 2 texts; this export takes text"),
        (["text"], ("a film",), "a film"),
        (["text", "text_pair"], ("a", "b"), ("a", "b")),
        (["text", "text_pair"], ["a", "b"], ("a", "b")),
        (["text", "text_pair"], "a", "holds 1 text; this export takes text, "),
        (["text", "text_pair"], ("a", "b", "c"), "holds 3 texts"),
        (["text", "text_pair"], {"text_pair": "b", "text": "a"}, ("a", "b")),
        # Questions and contexts are named: a tuple's order is no guess.
        (
            ["context", "question"],
            {"question": "q", "context": "c"},
            ("c", "q"),
        ),
        (["context", "question"], ("q", "c"), "as dicts with keys context, "),
        (["context", "question"], "q", "as dicts with keys context, question"),
    ],
)
def test_predict_maps_each_input_onto_the_exports_inputs(
    inputs, value, expected
):
    model = _model_of(inputs)
    if isinstance(expected, str) and expected.startswith(("holds", "as ")):
        with pytest.raises(kft.UserError, match=expected):
            model._value(value, 0)
    else:
        assert model._value(value, 0) == expected


@pytest.mark.parametrize("experiment", ["qa_extractive", "drug_reviews_minilm"])
def test_own_training_data_is_not_tested_on_the_experiments_test_split(
    experiment, capsys
):
    """An experiment's test (and validation) file goes with its own
    training data: a user's training file gets a held-out split of its
    own, unless they name a test file too."""
    own = kft.configure(experiment, {"data.train": "mine.jsonl"})
    assert own.data.test == "" and own.data.validation == ""
    assert "holding out" in capsys.readouterr().out
    given = kft.configure(
        experiment, {"data.train": "mine.jsonl", "data.test": "t.jsonl"}
    )
    assert given.data.test == "t.jsonl"
    assert kft.configure(experiment).data.test  # the experiment's own


def test_load_on_an_unfinished_run_says_to_finish_it(tmp_path):
    """kft-export needs a finished run: for one without its best weights,
    kft.load says to finish training, not to export."""
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(kft.UserError, match="did not finish") as caught:
        kft.load(str(tmp_path))
    assert "kft-export" not in str(caught.value)
