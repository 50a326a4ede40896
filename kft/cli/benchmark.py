"""kft-benchmark: speed measurements, one mode per first argument.

    kft-benchmark data --experiment=NAME_OR_FILE [--config.KEY=VALUE ...]
    kft-benchmark compare [--suite=text_fixed,text_epoch,images,utilization]
        [--peers=kft,keras,torch] [--repeats=N --steps=N --warmup=N]
        [--tiny] [--output=FILE] [--experiment=...] [--config.KEY=VALUE ...]

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

`compare` times kft's training path against plain keras-hub /
keras.applications `fit` and PyTorch + transformers on the same model,
data, batch and optimizer, each case in its own process, and prints median
samples/s, peak memory, kft's ratio, achieved FLOP/s against a measured
matmul peak, and the speed targets (kft/bench/benchmark.py says what each suite
measures). Text uses the experiment's backbone and training data
(default drug_reviews_minilm: MiniLM and the drug reviews, `kft-fetch`);
--config overrides change kft's side only (e.g. --config.jit_compile=true).
The PyTorch peer needs the bench extra (`pip install -e .[bench]`).
--tiny is a smoke test: tiny sizes and few steps (pass a tiny
--config.backbone and --config.data.train too).

    kft-benchmark accuracy --experiment=NAME_OR_FILE [--seeds=5]
        [--first_seed=0] [--on=test|validation] [--holdout=0.2]
        [--peers=kft,trainer,tfidf] [--work_dir=DIR] [--tiny]
        [--output=FILE] [--config.KEY=VALUE ...]

`accuracy` runs the experiment once per seed as kft-train does (its own
process; --config overrides apply to kft's runs), and beside it the
Hugging Face Trainer at its defaults (the bench extra) and TF-IDF +
logistic regression, on the same examples; it prints the mean, standard
deviation, min and max of accuracy and macro-F1 and the seconds per run.
--on=validation never reads the test split: each seed holds out
--holdout of the training data and everyone is scored there; compare
recipes that way, and read the test split once at the end
(kft/bench/accuracy.py). --work_dir keeps every run folder; by default
they go to a temporary folder, removed at the end. --tiny: the Trainer
trains 1 epoch on rows cut to 32 tokens (pass a tiny experiment too).
"""

import dataclasses
import json
import sys

from absl import flags

from kft.cli import common

_EXPERIMENT = flags.DEFINE_string(
    "experiment",
    None,
    "Experiment name (a file in experiments/) or path; compare defaults to "
    "drug_reviews_minilm.",
)
_PIPELINE_BATCHES = flags.DEFINE_integer(
    "pipeline_batches", 50, "data: batches timed on the warm (cached) pass."
)
_TRAIN_BATCHES = flags.DEFINE_integer(
    "train_batches", 5, "data: batches timed through the train step."
)
_SUITE = flags.DEFINE_list(
    "suite",
    "text_fixed,text_epoch,images,utilization",
    "compare: suites to run.",
)
_PEERS = flags.DEFINE_list(
    "peers",
    None,
    "Peers: compare [kft,keras,torch]; accuracy [kft,trainer,tfidf].",
)
_SEEDS = flags.DEFINE_integer("seeds", 5, "accuracy: seeds (runs per peer).")
_FIRST_SEED = flags.DEFINE_integer("first_seed", 0, "accuracy: first seed.")
_ON = flags.DEFINE_enum(
    "on",
    "test",
    ["test", "validation"],
    "accuracy: score the test split, or a held-out share of training.",
)
_HOLDOUT = flags.DEFINE_float(
    "holdout", 0.2, "accuracy --on=validation: the share held out."
)
_WORK_DIR = common.define_path(
    "work_dir", "", "accuracy: keep the run folders here (default: removed)."
)
_REPEATS = flags.DEFINE_integer(
    "repeats", None, "compare: timed repeats (epochs in text_epoch) [3]."
)
_STEPS = flags.DEFINE_integer("steps", None, "compare: steps per repeat [5].")
_WARMUP = flags.DEFINE_integer(
    "warmup", None, "compare: untimed warm-up steps [3]."
)
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", None, "compare: batch size of every peer [32]."
)
_LENGTHS = flags.DEFINE_list(
    "lengths", None, "compare: text_fixed sequence lengths [64,128]."
)
_IMAGE_BACKBONE = flags.DEFINE_string(
    "image_backbone", None, "compare: keras.applications model [ResNet50]."
)
_IMAGE_SIZE = flags.DEFINE_integer(
    "image_size", None, "compare: image size in pixels [224]."
)
_TORCH_MODEL = flags.DEFINE_string(
    "torch_model",
    "",
    "compare: Hugging Face folder for the PyTorch peer (default: the "
    "backbone folder).",
)
_TINY = flags.DEFINE_bool(
    "tiny",
    False,
    "compare/accuracy: smoke-test sizes (batch 4, lengths 16,32, ...).",
)
_ISOLATE = flags.DEFINE_bool(
    "isolate",
    True,
    "compare: run each case in its own process (peak memory per peer).",
)
_THREADS = flags.DEFINE_integer(
    "threads",
    0,
    "compare: threads of every framework in every case; 0 keeps their "
    "defaults (all cores). 1 is steadier on a busy machine.",
)
_OUTPUT = common.define_path(
    "output", "", "compare/accuracy: write the JSON here."
)

MODES = ("data", "compare", "accuracy")


def _settings():
    from kft.bench import benchmark

    settings = benchmark.Settings(**(benchmark.TINY if _TINY.value else {}))
    chosen = {
        "suites": tuple(_SUITE.value),
        "peers": tuple(_PEERS.value or ("kft", "keras", "torch")),
        "repeats": _REPEATS.value,
        "steps": _STEPS.value,
        "warmup": _WARMUP.value,
        "batch_size": _BATCH_SIZE.value,
        "image_backbone": _IMAGE_BACKBONE.value,
        "image_size": _IMAGE_SIZE.value,
        "torch_model": _TORCH_MODEL.value,
        "isolate": _ISOLATE.value,
        "threads": _THREADS.value,
    }
    if _LENGTHS.value is not None:
        try:
            chosen["lengths"] = tuple(int(v) for v in _LENGTHS.value)
        except ValueError:
            common.fail(f"--lengths takes integers, not {_LENGTHS.value}")
    chosen = {k: v for k, v in chosen.items() if v is not None}
    return dataclasses.replace(settings, **chosen)


def main(argv):
    if len(argv) != 2 or argv[1] not in MODES:
        common.fail(f"give one mode; valid: {', '.join(MODES)}")
    mode = argv[1]
    experiment = _EXPERIMENT.value
    if mode == "compare":
        experiment = experiment or "drug_reviews_minilm"
    if not experiment:
        common.fail("--experiment is required")
    from kft import config as config_lib
    from kft.core import experiments

    config = experiments.load(experiment)
    config_lib.apply_overrides(config, common.config_overrides())
    common.import_tensorflow_quietly()  # kft.benchmark imports it
    from kft.bench import benchmark
    from kft.bench.peers import table

    if mode == "accuracy":
        _accuracy(experiment, config)
        return
    if mode == "data":
        result = benchmark.data(
            config, _PIPELINE_BATCHES.value, _TRAIN_BATCHES.value
        )
        print(benchmark.format_data(experiment, result), flush=True)
        return
    report = benchmark.compare(
        config, _settings(), log=lambda line: print(f"kft: {line}", flush=True)
    )
    report["experiment"] = experiment
    print(table.format_compare(report), flush=True)
    _write(report)
    failed = [row for row in report["rows"] if _failed(row)]
    if failed:
        print(
            f"kft-benchmark: {len(failed)} case(s) failed; see the table",
            file=sys.stderr,
        )
        sys.exit(1)


def _accuracy(experiment, config):
    from kft.bench import accuracy

    settings = accuracy.Settings(
        **(accuracy.TINY if _TINY.value else {}),
        seeds=_SEEDS.value,
        first_seed=_FIRST_SEED.value,
        on=_ON.value,
        holdout=_HOLDOUT.value,
        work_dir=_WORK_DIR.value,
        overrides=tuple(
            f"--config.{key}={value}"
            for key, value in common.config_overrides()
        ),
    )
    if _PEERS.value:
        settings = dataclasses.replace(settings, peers=tuple(_PEERS.value))
    report = accuracy.run(
        experiment,
        config,
        settings,
        log=lambda line: print(f"kft: {line}", flush=True),
        after_seed=lambda partial: _write(partial, quiet=True),
    )
    print(accuracy.format_report(report), flush=True)
    _write(report)


def _write(report, quiet=False):
    if _OUTPUT.value:
        with open(_OUTPUT.value, "w") as file:
            json.dump(report, file, indent=2)
        if not quiet:
            print(f"kft: wrote {_OUTPUT.value}", flush=True)


def _failed(row):
    return row.get("error") not in (None, "not implemented")


def run():
    common.run_main(main)


if __name__ == "__main__":
    run()
