import pytest

from kft import config as config_lib
from kft.errors import UserError

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
