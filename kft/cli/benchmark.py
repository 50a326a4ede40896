"""kft-benchmark: speed measurements, one mode per first argument.

    kft-benchmark data --experiment=NAME_OR_FILE [--config.KEY=VALUE ...]

`data` times the training split's input pipeline alone (its first, cold
epoch and then warm, from the cache) next to the model's train step on the
same batches, and prints both in examples/s with their ratio; the pipeline
should be several times faster so that input never starves training.

Measured on the shared 2-core CPU (2026-11-24, --train_batches=5 for the
demo, 10 for digits), in examples/s:

    experiment                      cold   warm  train  warm/train
    drug_reviews_minilm             1675   3789   17.1      221x
    digits_pretrain                 5059  17609   16.5     1067x
    digits_pretrain, all augments   2071   2719   17.3      157x
      (augment=flip,crop,rotate,zoom,color, mixup=0.2, cutmix=1.0)
    digits_transfer, weights=none   1034   2925   15.6      187x

Each run takes 30-75 s. The demo's text batches take 23 shapes (14 lengths)
per epoch when trimmed, 9 (5 lengths) with data.text_shapes=fixed.
"""

from absl import flags

from kft.cli import common

_EXPERIMENT = flags.DEFINE_string(
    "experiment", None, "Experiment name (a file in experiments/) or path."
)
_PIPELINE_BATCHES = flags.DEFINE_integer(
    "pipeline_batches", 50, "Batches timed on the warm (cached) pass."
)
_TRAIN_BATCHES = flags.DEFINE_integer(
    "train_batches", 5, "Batches timed through the train step."
)

MODES = ("data",)


def main(argv):
    if len(argv) != 2 or argv[1] not in MODES:
        common.fail(f"give one mode; valid: {', '.join(MODES)}")
    if not _EXPERIMENT.value:
        common.fail("--experiment is required")
    from kft import config as config_lib
    from kft import experiments

    config = experiments.load(_EXPERIMENT.value)
    config_lib.apply_overrides(config, common.config_overrides())
    common.import_tensorflow_quietly()
    from kft import benchmark

    result = benchmark.data(
        config, _PIPELINE_BATCHES.value, _TRAIN_BATCHES.value
    )
    print(benchmark.format_data(_EXPERIMENT.value, result), flush=True)


def run():
    common.run_main(main)


if __name__ == "__main__":
    run()
