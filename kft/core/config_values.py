"""What each config value must be: the checks every run, kft-evaluate and
the Python API apply before anything runs (a value outside is a UserError
naming the key). kft.config re-exports `check_values`."""

from kft.core.errors import UserError

# Numeric fields and what each must be: a value outside is a UserError
# before anything runs (a batch of 0 would fail deep inside tf.data).
RANGES = (
    ("data.batch_size", lambda v: v >= 1, ">= 1"),
    ("data.eval_batch_size", lambda v: v >= 1, ">= 1"),
    ("data.validation_fraction", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("data.test_fraction", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("data.max_bad_fraction", lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("data.length_percentile", lambda v: 0 < v <= 100, "in (0, 100]"),
    ("data.sequence_length", lambda v: v >= 0, ">= 0 (0 picks it)"),
    ("data.image_size", lambda v: v >= 0, ">= 0 (0 picks it)"),
    ("epochs", lambda v: v >= 1, ">= 1"),
    ("ensemble", lambda v: v >= 1, ">= 1 (1 is one model)"),
    ("head_epochs", lambda v: v >= 0, ">= 0"),
    ("learning_rate", lambda v: v > 0, "> 0"),
    ("head_learning_rate", lambda v: v > 0, "> 0"),
    ("layer_decay", lambda v: v > 0, "> 0"),
    ("label_smoothing", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("head.dropout", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("optimizer.weight_decay", lambda v: v >= 0, ">= 0"),
    ("optimizer.clipnorm", lambda v: v >= 0, ">= 0 (0 is off)"),
    ("optimizer.ema_momentum", lambda v: 0 <= v < 1, "in [0, 1) (0 is off)"),
    ("schedule.warmup_fraction", lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("checkpoint.keep", lambda v: v >= 1, ">= 1"),
    ("checkpoint.every_steps", lambda v: v >= 0, ">= 0 (0: epoch ends)"),
)


def check_values(config):
    """Raises UserError for a value no run can use, naming the key."""
    for key, valid, wanted in RANGES:
        value = _get(config, key)
        if not valid(value):
            raise UserError(
                f"bad value {value!r} for --config.{key}; it must be {wanted}"
            )
    litert = ("", "none", "float16", "dynamic", "int8")
    if config.litert.quantization not in litert:
        raise UserError(
            f"bad value {config.litert.quantization!r} for "
            "--config.litert.quantization; valid: "
            + ", ".join(repr(x) for x in litert)
        )
    data = config.data
    held_out = data.validation_fraction * (not data.validation)
    held_out += data.test_fraction * (not data.test)
    if held_out >= 1:
        raise UserError(
            "--config.data.validation_fraction and test_fraction hold out "
            f"{held_out:.0%} of the training data; they must add up to "
            "less than 1"
        )
    columns = [data.text_column, data.text_pair_column, data.label_column]
    named = [column for column in columns if column]
    if len(set(named)) < len(named):
        raise UserError(
            "--config.data.text_column, text_pair_column and label_column "
            f"must name different columns (got {', '.join(named)})"
        )


def _get(config, key):
    node = config
    for part in key.split("."):
        node = node[part]
    return node
