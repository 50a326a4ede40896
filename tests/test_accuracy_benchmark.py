"""`kft-benchmark accuracy` on tiny data: kft's runs through kft-train,
scored as their own metrics.json scores them; the peers on the same
examples; --on=validation never scoring the test split; one-line errors.
The Trainer peer runs where the bench extra is installed."""

import json
import pathlib

import pytest
from conftest import make_texts, run_cli, tiny_image_config, write_csv

from kft import config as config_lib
from kft.bench import accuracy, seed_data
from kft.bench.peers import tfidf_peer
from kft.core.errors import UserError


def _data(tmp_path):
    train = write_csv(tmp_path / "train.csv", make_texts(45, seed=1))
    test = write_csv(tmp_path / "test.csv", make_texts(18, seed=2))
    return train, test


def _run(tmp_path, backbone, *extra):
    train, test = _data(tmp_path)
    output = tmp_path / "accuracy.json"
    result = run_cli(
        "kft-benchmark",
        "accuracy",
        "--tiny",
        "--experiment=text_classifier",
        f"--work_dir={tmp_path / 'work'}",
        f"--output={output}",
        f"--config.backbone={backbone}",
        f"--config.data.train={train}",
        f"--config.data.test={test}",
        "--config.epochs=1",
        "--config.export=false",
        *extra,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result, json.loads(output.read_text())


def test_accuracy_cli_kft_and_tfidf(tiny_bert, tmp_path):
    result, report = _run(
        tmp_path, tiny_bert, "--seeds=2", "--first_seed=3", "--peers=kft,tfidf"
    )
    assert [s["seed"] for s in report["seeds"]] == [3, 4]
    for seed in report["seeds"]:
        assert seed["examples"] == 18
        # kft's figure is its run's own metrics.json figure, rescored here.
        run = tmp_path / "work" / f"seed_{seed['seed']}" / "kft"
        metrics = json.loads((run / "metrics.json").read_text())
        assert seed["peers"]["kft"]["accuracy"] == pytest.approx(
            metrics["accuracy"]
        )
        assert seed["peers"]["kft"]["macro_f1"] == pytest.approx(
            metrics["macro_f1"]
        )
        assert (
            json.loads((run / "config.json").read_text())["seed"]
            == (seed["seed"])
        )
        phases = metrics["timing"]["phases"]
        assert seed["peers"]["kft"]["fit_seconds"] == pytest.approx(
            sum(phase["seconds"] for phase in phases), abs=0.1
        )
        # The cue words separate the classes: the linear peer finds them.
        assert seed["peers"]["tfidf"]["accuracy"] > 0.9
    summary = report["summary"]["tfidf"]["accuracy"]
    values = [s["peers"]["tfidf"]["accuracy"] for s in report["seeds"]]
    assert summary["mean"] == pytest.approx(sum(values) / 2)
    assert summary["min"] == min(values) and summary["max"] == max(values)
    assert "kft - tfidf: accuracy" in result.stdout
    # The run's export is off here: the line must not say it is included.
    assert "kft's s/run is its whole kft-train run" in result.stdout
    assert "training alone" in result.stdout
    assert "CPU: " in result.stdout
    assert "test split (18 examples)" in result.stdout
    assert report["machine"]["processor"]


def test_validation_holds_out_training_data_only(tmp_path):
    """--on=validation: the scored rows are a stratified share of the
    training data, disjoint from what kft trains on; the test file's rows
    appear nowhere, and kft's run is pointed at the two new files."""
    config = config_lib.default_config()
    train, _ = _data(tmp_path)
    rows = [r | {"text": "held " + r["text"]} for r in make_texts(18, seed=2)]
    config.data.train = train
    config.data.test = write_csv(tmp_path / "test_only.csv", rows)
    learn, scored, labels, overrides = seed_data.examples(
        config, 7, "validation", 0.2, tmp_path
    )
    assert len(scored) == 9 and len(learn) == 36  # 20% of each class of 45
    assert sorted(labels) == ["negative", "neutral", "positive"]
    for name in labels:
        assert sum(row["label"] == name for row in scored) == 3
    key = lambda rows: [(r["text"], r["label"]) for r in rows]  # noqa: E731
    assert sorted(key(learn + scored)) == sorted(key(make_texts(45, seed=1)))
    assert not any(r["text"].startswith("held") for r in learn + scored)
    written = [
        json.loads(line)
        for line in (tmp_path / "validation.jsonl").read_text().splitlines()
    ]
    assert key(written) == key(scored)
    assert f"--config.data.test={tmp_path / 'validation.jsonl'}" in overrides
    assert f"--config.data.train={tmp_path / 'train.jsonl'}" in overrides
    # Another seed holds out other rows.
    _, other, _, _ = seed_data.examples(config, 8, "validation", 0.2, tmp_path)
    assert key(other) != key(scored)


def test_validation_of_images_copies_class_folders(image_folder, tmp_path):
    """Images have no table to write: the held-out share and the rest are
    copied into class folders under the seed's folder, which kft's run
    reads as it reads a user's folder; the originals stay as they were."""
    config = tiny_image_config(image_folder)
    config.data.test_fraction = 0.25  # 4 of 16 kept out of the pool
    before = sorted(p.name for p in pathlib.Path(image_folder).rglob("*"))
    learn, scored, labels, overrides = seed_data.examples(
        config, 0, "validation", 0.25, tmp_path
    )
    assert len(learn) + len(scored) == 12 and len(scored) == 4
    for name, rows in (("train", learn), ("validation", scored)):
        for row in rows:
            path = pathlib.Path(row["text"])
            assert path.parent == tmp_path / name / row["label"]
            assert path.is_file()
    assert f"--config.data.test={tmp_path / 'validation'}" in overrides
    assert sorted(p.name for p in pathlib.Path(image_folder).rglob("*")) == (
        before
    )


def test_accuracy_rejects_bad_settings(tiny_bert):
    config = config_lib.default_config()
    config.backbone = tiny_bert
    for changes, message in (
        ({"peers": ()}, "--peers takes any of"),
        ({"peers": ("kft", "torch")}, "--peers takes any of"),
        ({"on": "train"}, "--on takes test or validation"),
        ({"seeds": 0}, "--seeds must be at least 1"),
        ({"holdout": 1.0}, "--holdout must be in"),
    ):
        settings = accuracy.Settings(peers=("kft", "tfidf"))
        settings = accuracy.dataclasses.replace(settings, **changes)
        with pytest.raises(UserError, match=message):
            accuracy.check(config, settings)
    config.task = "regression"
    with pytest.raises(UserError, match="classification experiments"):
        accuracy.check(config, accuracy.Settings(peers=("kft",)))
    config.task = "classification"
    config.backbone = "ResNet50"
    with pytest.raises(UserError, match="image experiments have no peers"):
        accuracy.check(config, accuracy.Settings(peers=("kft", "tfidf")))


def test_accuracy_cli_with_the_trainer(tmp_path):
    """The Trainer peer as a user gets it (its own process), on a tiny
    BERT from a transformers config that kft loads too."""
    pytest.importorskip("torch", reason="the bench extra is not installed")
    pytest.importorskip("accelerate", reason="the bench extra is missing")
    from test_benchmark import _tiny_hf_bert

    model = _tiny_hf_bert(tmp_path / "tiny_hf")
    result, report = _run(
        tmp_path, model, "--seeds=1", "--peers=kft,trainer", "--on=validation"
    )
    seed = report["seeds"][0]
    assert seed["examples"] == 9
    figures = seed["peers"]["trainer"]
    assert 0 <= figures["accuracy"] <= 1 and figures["seconds"] > 0
    assert "kft - trainer" in result.stdout
    assert "validation split (9 examples)" in result.stdout


def test_finished_seeds_are_reported_when_a_later_one_fails(monkeypatch):
    """A benchmark stopped at seed 2 still hands over seed 1's figures
    (the CLI writes them to --output after every seed)."""
    calls = []

    def one_seed(experiment, config, seed, folder, settings, log):
        if seed == 1:
            raise UserError("stopped")
        figures = {"accuracy": 0.5, "macro_f1": 0.4, "seconds": 1.0}
        return {"seed": seed, "examples": 2, "peers": {"kft": figures}}

    monkeypatch.setattr(accuracy, "_one_seed", one_seed)
    monkeypatch.setattr(accuracy, "check", lambda config, settings: None)
    settings = accuracy.Settings(seeds=3, peers=("kft",))
    with pytest.raises(UserError, match="stopped"):
        accuracy.run(
            "x",
            config_lib.default_config(),
            settings,
            after_seed=lambda report: calls.append(json.dumps(report)),
        )
    assert len(calls) == 1
    partial = json.loads(calls[0])
    assert [s["seed"] for s in partial["seeds"]] == [0]
    assert partial["summary"]["kft"]["accuracy"]["mean"] == 0.5


def test_peers_alone_run_without_kft(tiny_bert, tmp_path):
    """--peers=tfidf measures the peer alone (no kft run, no kft rows)."""
    config = config_lib.default_config()
    config.backbone = tiny_bert
    config.data.train, config.data.test = _data(tmp_path)
    settings = accuracy.Settings(seeds=1, peers=("tfidf",))
    report = accuracy.run("tiny", config, settings, log=lambda line: None)
    assert list(report["summary"]) == ["tfidf"]
    assert report["seeds"][0]["peers"]["tfidf"]["accuracy"] > 0.9
    assert "kft -" not in accuracy.format_report(report)


def test_peers_never_learn_the_scored_examples(tmp_path):
    """With no test data and test_fraction 0, kft scores the validation
    split: the peers must not learn from it."""
    config = config_lib.default_config()
    config.data.train, _ = _data(tmp_path)
    config.data.test_fraction = 0.0
    learn, scored, _, _ = seed_data.examples(config, 0, "test", 0.2, tmp_path)
    assert len(learn) + len(scored) == 45 and len(scored) == 6
    assert not any(row is other for row in scored for other in learn)


def test_validation_never_reads_the_test_file(tmp_path):
    """--on=validation scores a share of training data: a missing test
    file is not read, and a carved test split is the same for every
    seed (so no seed's pool holds another seed's test examples)."""
    config = config_lib.default_config()
    config.data.train, _ = _data(tmp_path)
    config.data.test = str(tmp_path / "no_such_test.csv")
    learn, scored, _, _ = seed_data.examples(
        config, 1, "validation", 0.2, tmp_path
    )
    assert len(learn) + len(scored) == 45
    config.data.test = ""  # 15% carved out as test, then never seen
    pools = []
    for seed in (0, 1, 2):
        (tmp_path / str(seed)).mkdir()
        learn, scored, _, _ = seed_data.examples(
            config, seed, "validation", 0.2, tmp_path / str(seed)
        )
        pools.append(sorted(r["text"] + r["label"] for r in learn + scored))
    assert pools[0] == pools[1] == pools[2]
    assert len(pools[0]) < 45


def test_validation_of_a_recipe_without_validation_data(tmp_path):
    """An experiment that trains on all its training data
    (validation_fraction 0, as the drug-review demo) still gets its pool:
    the whole training file, with the test file unread."""
    config = config_lib.default_config()
    config.data.train, config.data.test = _data(tmp_path)
    config.data.validation_fraction = 0.0
    learn, scored, _, overrides = seed_data.examples(
        config, 1, "validation", 0.2, tmp_path
    )
    assert len(learn) == 36 and len(scored) == 9
    key = sorted(r["text"] + r["label"] for r in learn + scored)
    assert key == sorted(r["text"] + r["label"] for r in make_texts(45, seed=1))
    assert f"--config.data.test={tmp_path / 'validation.jsonl'}" in overrides


def test_kft_command_keeps_the_benchmark_seed_and_starts_over(tmp_path):
    settings = accuracy.Settings(overrides=("--config.seed=7",))
    command = accuracy.kft_command("x", 3, tmp_path, ("--a=1",), settings)
    assert command[-1] == "--config.seed=3"
    assert "--overwrite" in command
    assert f"--model_dir={tmp_path / 'kft'}" in command


def test_peers_refuse_what_they_cannot_run(tiny_bert, tmp_path):
    """The Trainer needs a Hugging Face folder (checked before any run);
    peers refuse image data, however the backbone is named."""
    config = config_lib.default_config()
    config.backbone = tiny_bert  # a keras-hub preset folder, not HF
    with pytest.raises(UserError, match="Hugging Face"):
        accuracy.check(config, accuracy.Settings(peers=("kft", "trainer")))
    config.backbone = "bert_base_en_uncased"
    with pytest.raises(UserError, match="Hugging Face"):
        accuracy.check(config, accuracy.Settings(peers=("kft", "trainer")))


def test_image_rows_need_files(image_folder, tmp_path):
    config = tiny_image_config(image_folder)
    config.backbone = "MobileNetV3Small"
    with pytest.raises(UserError, match="no peers"):
        seed_data.examples(
            config, 0, "test", 0.2, tmp_path, peers=("kft", "tfidf")
        )


def test_tfidf_on_two_classes():
    """scikit-learn's "f1_macro" scoring string fails in
    LogisticRegressionCV on two string classes (pos_label given twice):
    the peer scores its folds with its own scorer."""
    import warnings

    rows = [r for r in make_texts(60) if r["label"] != "neutral"]
    with warnings.catch_warnings():  # nothing printed per fold either
        warnings.simplefilter("error")
        predicted = tfidf_peer.classify(rows[:30], rows[30:], 0)
    assert len(predicted) == len(rows[30:])
    right = [p == r["label"] for p, r in zip(predicted, rows[30:])]
    assert sum(right) / len(right) >= 0.8


def test_fit_seconds_count_every_member_of_an_ensemble(tmp_path):
    from kft.bench import accuracy

    timing = {
        "phases": [{"seconds": 1.5}, {"seconds": 2.0}],
        "members": [{"phases": [{"seconds": 4.0}]}],
    }
    (tmp_path / "metrics.json").write_text(json.dumps({"timing": timing}))
    assert accuracy._fit_seconds(tmp_path) == 7.5
