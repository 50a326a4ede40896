"""kft-train: fine-tune, evaluate on the test split, fill the run folder.

    kft-train --experiment=NAME_OR_FILE --model_dir=DIR [--config.KEY=VALUE]

NAME is a file in experiments/ (without .py), or give a path to any .py
file that defines get_config(). Every config field can be overridden with
--config.KEY=VALUE, nested keys dotted (--config.data.train=reviews.csv).

Rerunning the same command on the same --model_dir resumes an unfinished
run from its last checkpoint; SIGTERM or Ctrl-C writes one and exits with
128 + the signal number (143, 130) and the line to resume with.
"""

from absl import flags

from kft.cli import common

_EXPERIMENT = flags.DEFINE_string(
    "experiment", None, "Experiment name (a file in experiments/) or path."
)
_MODEL_DIR = flags.DEFINE_string(
    "model_dir", None, "Run folder: config, history, metrics, checkpoints."
)
_OVERWRITE = flags.DEFINE_bool(
    "overwrite",
    False,
    "Empty a --model_dir that holds a run and start over (by default the "
    "same command resumes it).",
)
flags.mark_flags_as_required(["experiment", "model_dir"])


def main(argv):
    if len(argv) > 1:
        common.fail(f"unexpected arguments: {' '.join(argv[1:])}")
    from kft import config as config_lib
    from kft.core import experiments

    config = experiments.load(_EXPERIMENT.value)
    config_lib.apply_overrides(config, common.config_overrides())
    common.import_tensorflow_quietly()
    from kft import run

    # Multi-worker and TPU strategies must exist before TensorFlow runs.
    strategy = run.make_strategy(config, _MODEL_DIR.value)
    run.train(
        config, _MODEL_DIR.value, overwrite=_OVERWRITE.value, strategy=strategy
    )


def run():
    common.run_main(main)
