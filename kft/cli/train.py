"""kft-train: fine-tune, evaluate on the test split, fill the run folder.

    kft-train --experiment=NAME_OR_FILE --model_dir=DIR [--config.KEY=VALUE]
    kft-train --list=experiments|backbones|plans|keys
    kft-train --experiment=NAME_OR_FILE --print_config [--config.KEY=VALUE]

NAME is a file in experiments/ (without .py), or give a path to any .py
file that defines get_config(). Every config field can be overridden with
--config.KEY=VALUE, nested keys dotted (--config.data.train=reviews.csv).

--list prints every valid value of one setting, one a line, and exits:
experiment names, backbone names (keras.applications models, then
keras-hub presets; a local preset or Hugging Face folder works too),
freeze plans, or config keys (`keys`: each --config.KEY with its default
and what it does). --print_config prints the config an experiment and the
overrides resolve to, as JSON (what config.json would hold before the data
is read and the auto settings are resolved for the device), and exits
without training.

Rerunning the same command on the same --model_dir resumes an unfinished
run from its last checkpoint; SIGTERM or Ctrl-C writes one and exits with
128 + the signal number (143, 130) and the line to resume with.
"""

from absl import flags

from kft.cli import common

LISTS = ("experiments", "backbones", "plans", "keys")

_EXPERIMENT = flags.DEFINE_string(
    "experiment", None, "Experiment name (a file in experiments/) or path."
)
_MODEL_DIR = common.define_path(
    "model_dir", None, "Run folder: config, history, metrics, checkpoints."
)
_OVERWRITE = flags.DEFINE_bool(
    "overwrite",
    False,
    "Empty a --model_dir that holds a run and start over (by default the "
    "same command resumes it).",
)
_LIST = flags.DEFINE_enum(
    "list",
    None,
    LISTS,
    "Print every valid value of one setting and exit (keys: the config "
    "keys with their defaults and docs).",
)
_PRINT_CONFIG = flags.DEFINE_bool(
    "print_config",
    False,
    "Print the resolved config (the experiment with the --config overrides) "
    "as JSON and exit without training.",
)


def listing(what):
    """The text `--list=what` prints: every valid value, one a line."""
    if what == "experiments":
        from kft.core import experiments

        return "\n".join(experiments.available())
    if what == "keys":
        from kft.core import config_docs

        return config_docs.keys_text()
    common.import_tensorflow_quietly(modules=("keras_hub",))
    if what == "plans":
        from kft.core import freeze

        return "\n".join(freeze.PLANS)
    from kft.model import backbones

    applications, presets = backbones.known_names()
    return "\n".join([*applications, *presets])


def main(argv):
    if len(argv) > 1:
        common.fail(f"unexpected arguments: {' '.join(argv[1:])}")
    if _LIST.value:
        print(listing(_LIST.value), flush=True)
        return
    if not _EXPERIMENT.value:
        common.fail(
            "--experiment is required (kft-train --list=experiments lists "
            "the names)"
        )
    from kft import config as config_lib
    from kft.core import experiments

    config = experiments.load(_EXPERIMENT.value)
    experiment_config = config.copy_and_resolve_references()
    overrides = common.config_overrides()
    config_lib.apply_overrides(config, overrides)
    notes = config_lib.unpair_held_out(experiment_config, config, overrides)
    if not _PRINT_CONFIG.value:  # that prints JSON alone
        for note in notes:
            print(f"kft: {note}", flush=True)
    if _PRINT_CONFIG.value:
        print(config_lib.to_json(config), flush=True)
        return
    if not _MODEL_DIR.value:
        common.fail("--model_dir is required: the run folder to write")
    common.import_tensorflow_quietly()
    from kft import run

    # Multi-worker and TPU strategies must exist before TensorFlow runs.
    strategy = run.make_strategy(config, _MODEL_DIR.value)
    run.train(
        config, _MODEL_DIR.value, overwrite=_OVERWRITE.value, strategy=strategy
    )


def run():
    common.run_main(main, resumable=True)


if __name__ == "__main__":
    run()
