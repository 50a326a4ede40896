"""kft-export: write a finished run's best weights as a TF Serving version.

    kft-export --model_dir=DIR --export_dir=BASE

Writes BASE/<next integer>/, checked against the Keras model on the run's
saved test sample in a fresh process before it appears (see
kft/serving/export.py): the same export, and the same check, as kft-train
writes for the run's task (tokens, qa and causal_lm runs export through
their task's `export_run`).
"""

from absl import flags

from kft.cli import common

_MODEL_DIR = flags.DEFINE_string("model_dir", None, "A kft-train run folder.")
_EXPORT_DIR = flags.DEFINE_string(
    "export_dir", None, "The base folder TF Serving polls."
)


def main(argv):
    if len(argv) > 1:
        common.fail(f"unexpected arguments: {' '.join(argv[1:])}")
    common.require(_MODEL_DIR, _EXPORT_DIR)
    common.import_tensorflow_quietly()
    from kft import commands

    print(commands.export_run(_MODEL_DIR.value, _EXPORT_DIR.value))


def run():
    common.run_main(main)
