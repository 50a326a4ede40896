import pytest

from kft import config as config_lib
from kft.core.errors import UserError

GOOD = [
    ("epochs", "7", 7),
    ("learning_rate", "3e-5", 3e-5),
    ("jit_compile", "true", True),
    ("jit_compile", "0", False),
    ("data.train", "a.csv", "a.csv"),
    ("optimizer.weight_decay", "0", 0.0),
    ("head.hidden_units", "64", 64),
]


@pytest.mark.parametrize("key,text,expected", GOOD)
def test_override_parses_by_field_type(key, text, expected):
    config = config_lib.default_config()
    config_lib.override(config, key, text)
    node = config
    for part in key.split("."):
        node = node[part]
    assert node == expected


BAD = [
    ("epoch", "3", "did you mean: epochs"),
    ("data.trian", "x", "data.train"),
    ("epochs", "three", "expects int"),
    ("jit_compile", "maybe", "expects bool"),
    ("learning_rate", "fast", "expects float"),
]


@pytest.mark.parametrize("key,text,message", BAD)
def test_bad_override_is_a_user_error(key, text, message):
    with pytest.raises(UserError, match=message):
        config_lib.override(config_lib.default_config(), key, text)


def test_json_round_trip():
    config = config_lib.default_config()
    config.data.train = "x.csv"
    config.epochs = 9
    again = config_lib.from_json(config_lib.to_json(config))
    assert again.to_dict() == config.to_dict()


OUT_OF_RANGE = [
    ({"data.batch_size": "0"}, "data.batch_size; it must be >= 1"),
    ({"data.batch_size": "-4"}, "data.batch_size"),
    ({"data.eval_batch_size": "0"}, "data.eval_batch_size"),
    ({"learning_rate": "0"}, "learning_rate; it must be > 0"),
    ({"head_learning_rate": "-1e-3"}, "head_learning_rate"),
    ({"epochs": "0"}, "epochs"),
    ({"label_smoothing": "1"}, "label_smoothing"),
    ({"data.test_fraction": "1.5"}, "data.test_fraction"),
    (
        {"data.validation_fraction": "0.6", "data.test_fraction": "0.4"},
        "hold out 100%",
    ),
    (
        {"data.text_column": "label", "data.label_column": "label"},
        "different columns",
    ),
    (
        {"data.text_column": "q", "data.text_pair_column": "q"},
        "different columns",
    ),
]


@pytest.mark.parametrize("values,message", OUT_OF_RANGE)
def test_values_no_run_can_use_are_refused(values, message):
    config = config_lib.default_config()
    config_lib.apply_overrides(config, values.items())
    with pytest.raises(UserError, match=message):
        config_lib.check_values(config)


def test_fractions_of_given_splits_do_not_count():
    config = config_lib.default_config()
    overrides = {
        "data.validation_fraction": "0.6",
        "data.test_fraction": "0.6",
        "data.validation": "v.csv",
        "data.test": "t.csv",
    }
    config_lib.apply_overrides(config, overrides.items())
    config_lib.check_values(config)  # the fractions are not used


def test_every_experiment_passes_the_value_checks():
    from kft.core import experiments

    for name in experiments.available():
        config_lib.check_values(experiments.load(name))
