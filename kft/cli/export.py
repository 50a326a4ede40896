"""kft-export: write a finished run's best weights as a TF Serving version,
or as a LiteRT (.tflite) model.

    kft-export --model_dir=DIR --export_dir=BASE
    kft-export --model_dir=DIR --format=litert [--quantization=none|float16|
               dynamic|int8] [--integer_io]

SavedModel (the default): writes BASE/<next integer>/, checked against the
Keras model on the run's saved test sample in a fresh process before it
appears (see kft/serving/export.py): the same export, and the same check,
as kft-train writes for the run's task (tokens, qa and causal_lm runs
export through their task's `export_run`).

LiteRT (classifiers): writes DIR/litert/model_<mode>.tflite with
labels.txt (and a text model's vocabulary) beside it, and model_<mode>.json,
the figures of the run's test split run through it in a fresh process
that imports only the LiteRT interpreter (see docs/litert.md). float32,
float16 and dynamic files must score within 1 point of the Keras model's
accuracy, or are removed and refused; int8 ones are reported only.
"""

from absl import flags

from kft.cli import common

_MODEL_DIR = common.define_path("model_dir", None, "A kft-train run folder.")
_EXPORT_DIR = common.define_path(
    "export_dir", None, "The base folder TF Serving polls (saved_model)."
)
_FORMAT = flags.DEFINE_enum(
    "format", "saved_model", ["saved_model", "litert"], "What to write."
)
_QUANTIZATION = flags.DEFINE_enum(
    "quantization",
    "none",
    ["none", "float16", "dynamic", "int8"],
    "litert: none (float32), float16 weights, dynamic (int8 weights), or "
    "int8 (full integer, calibrated on training examples).",
)
_INTEGER_IO = flags.DEFINE_bool(
    "integer_io",
    False,
    "litert int8: int8 probabilities out (dequantize with the output's "
    "scale and zero point); inputs are uint8 pixels or int32 token ids.",
)


def main(argv):
    if len(argv) > 1:
        common.fail(f"unexpected arguments: {' '.join(argv[1:])}")
    if _FORMAT.value == "litert":
        common.require(_MODEL_DIR)
        if _EXPORT_DIR.value:
            common.fail(
                "--export_dir is for --format=saved_model; a LiteRT model "
                "goes into MODEL_DIR/litert/"
            )
    else:
        common.require(_MODEL_DIR, _EXPORT_DIR)
    common.import_tensorflow_quietly()
    from kft import commands

    if _FORMAT.value == "litert":
        print(
            commands.export_litert_run(
                _MODEL_DIR.value, _QUANTIZATION.value, _INTEGER_IO.value
            )
        )
        return
    print(commands.export_run(_MODEL_DIR.value, _EXPORT_DIR.value))


def run():
    common.run_main(main)
