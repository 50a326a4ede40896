"""Every experiment file loads; each builds with a tiny stand-in backbone."""

import pytest

from kft.core import experiments, freeze
from kft.core.errors import UserError
from kft.model import builder
from kft.tasks import registry

NAMES = experiments.available()


def test_all_experiments_are_listed():
    assert {
        "drug_reviews_minilm",
        "text_classifier",
        "image_classifier",
        "digits_pretrain",
        "digits_transfer",
        "cifar10_resnet50",
        "flowers_resnet50",
        "sst2_bert_base",
        "pair_classifier",
        "multilabel_classifier",
        "text_regressor",
    } <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_experiment_documents_its_command(name):
    path = experiments.find(name)
    source = path.read_text()
    assert f"--experiment={name}" in source, "docstring gives the command"
    config = experiments.load(name)
    assert config.backbone
    assert freeze.plan_from_config(config)


@pytest.mark.parametrize("name", NAMES)
def test_experiment_builds_with_tiny_stand_in(name, tiny_bert, tiny_gpt2):
    """The experiment's own config, with the backbone swapped for a tiny one
    of the same modality, builds a model through the real builder."""
    config = experiments.load(name)
    task = registry.get(config.task)
    if config.task == "causal_lm":
        config.backbone = tiny_gpt2
        built = task.build(config, 0)
        assert (
            built.model.output.shape[-1]
            == built.generator.backbone.vocabulary_size
        )
        return
    if builder.backbones.TABLE.get(config.backbone) is None and (
        "minilm" in config.backbone or "bert" in config.backbone
    ):
        config.backbone = tiny_bert
    else:
        config.weights = "none"
        config.data.image_size = 32
    outputs = 1 if config.task == "regression" else 3
    built = task.build(config, outputs)
    if config.task == "qa":
        assert sorted(built.model.output) == ["end", "start"]
        return
    expected = {"regression": (None,), "tokens": (None, None, 3)}
    assert tuple(built.model.outputs[0].shape) == expected.get(
        config.task, (None, 3)
    )


def test_unknown_experiment_suggests_names():
    with pytest.raises(UserError, match="text_classifier"):
        experiments.find("text_clasifier")


def test_experiments_are_found_from_any_folder(tmp_path, monkeypatch):
    """By name from outside the checkout, as the Colab notebook runs them."""
    from kft.core import experiments

    monkeypatch.chdir(tmp_path)
    assert {"text_classifier", "sst2_bert_base"} <= set(experiments.available())


def test_digits_transfer_names_its_pretrained_run(tmp_path, monkeypatch):
    """digits_transfer reads no path relative to where it is started: the
    mnist_pretrain run is named with --config.weights, and leaving it out
    is one line that says so."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "mnist_pretrain").mkdir(parents=True)
    config = experiments.load("digits_transfer")
    with pytest.raises(UserError, match=r"--config\.weights=.*mnist_pretrain"):
        builder.build(config, 5)


@pytest.mark.parametrize(
    "name", ["rotten_tomatoes_minilm", "trec_minilm", "reuters_r8_minilm"]
)
def test_data_set_experiments_train_with_text_classifiers_recipe(name):
    """The accuracy benchmark's data sets measure text_classifier's
    defaults: only the backbone and the data differ."""
    recipe = experiments.load("text_classifier").to_dict()
    config = experiments.load(name).to_dict()
    for tree in (recipe, config):
        del tree["backbone"]
        for key in ("train", "test", "text_column", "label_column"):
            del tree["data"][key]
    assert config == recipe
