"""One fine-tuning run, of any task, from a resolved config to a filled
run folder.

The steps, in order (`_train` reads top to bottom): the cheap checks,
open the run folder (start, resume, refuse, or "nothing to do"), read the
data and build the model (the task's `prepare`), record what a resume must
see again (config.json, labels.txt), the learning-rate range test, train
through the freeze plan with `model.fit` (kft/core/training.py), save the
best weights (after mixed-precision training, rebuilt in a float32
model for the rest), tune the task's decision on validation, evaluate the
test split (metrics.json, predictions.jsonl), keep the export check's sample,
export a checked SavedModel for TF Serving, write report.html, and mark
the run finished.

What varies by task is the task's (kft/tasks/base.py, one per
`--config.task`, listed in kft/tasks/registry.py); kft-evaluate and
kft-export on a finished run are kft/commands.py.
"""

import contextlib
import dataclasses
import json
import os
import time

import keras
import tensorflow as tf

from kft import config as config_lib
from kft import data, fit
from kft.core import (
    checkpoint,
    config_paths,
    distribute,
    files,
    freeze,
    lr_find,
    optim,
    preflight,
    run_folder,
)
from kft.core.errors import UserError
from kft.core.run_folder import (
    EXPORT_DIR,
    METRICS,
    WEIGHTS_FILE,
    write_config,
    write_labels,
)
from kft.core.run_folder import log as _log
from kft.model import backbones
from kft.serving import litert, publish
from kft.tasks import registry


def set_seed(seed):
    keras.utils.set_random_seed(seed)


@contextlib.contextmanager
def reproducible(config):
    """Seeds, op determinism and the precision policy, once, for every
    task: `deterministic` makes a repeated or resumed run bitwise equal.
    The process's policy comes back when the block ends (a notebook's
    next model is built under the policy it had)."""
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    set_seed(config.seed)
    policy = keras.mixed_precision.global_policy()
    if config.precision != "float32":
        keras.mixed_precision.set_global_policy(config.precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(policy)


CHOICES = {
    "class_weight": ("", "balanced", "sqrt"),
    "precision": ("auto", "float32", "mixed_float16", "mixed_bfloat16"),
    "optimizer.name": optim.OPTIMIZERS,
    "schedule.name": optim.SCHEDULES,
    "head.pooling": ("auto", "mean", "cls", "pooled", "avg", "max"),
    "data.on_error": ("skip", "raise"),
    "data.resize": data.RESIZE_MODES,
    "data.text_shapes": ("auto", "dynamic", "fixed"),
}


def check_choices(config):
    """Raises UserError for a config value outside its valid choices."""
    for key, valid in CHOICES.items():
        node = config
        for part in key.split("."):
            node = node[part]
        if node not in valid:
            raise UserError(
                f"bad value '{node}' for --config.{key}; valid: "
                + ", ".join(repr(v) if not v else v for v in valid)
            )
    data.parse_augment(config.data.augment)
    for key in ("mixup", "cutmix"):
        if config.data[key] < 0:
            raise UserError(
                f"bad value '{config.data[key]}' for --config.data.{key}; "
                "valid: 0 (off) or a positive Beta alpha such as 0.2"
            )


def make_strategy(config, model_dir):
    """The strategy of `config.strategy`, after the checks that need no
    TensorFlow (the TPU preflight); once per process, first thing."""
    distribute.check_name(config.strategy)
    if config.strategy == "tpu":
        preflight.check_config(config)
        preflight.check_paths(config, model_dir)
    return distribute.make_strategy(config.strategy, config.tpu)


def train(config, model_dir, overwrite=False, strategy=None):
    """Fine-tunes, evaluates and fills `model_dir`; returns the metrics.

    A `model_dir` that holds an unfinished run of the same config resumes
    it (kft/core/checkpoint.py); a finished one is left as it is. With
    `config.lr_find` and not `lr_find_options.apply`, it stops after the
    learning-rate range test and returns None. `strategy` is the one
    `config.strategy` names (`make_strategy`, called before TensorFlow
    runs anything), or made here. A worker that is not the
    chief does the same work, writing to a temporary folder it removes.
    """
    config_lib.check_values(config)
    config_paths.make_absolute(config)
    requested = json.loads(config_lib.to_json(config))
    task = registry.get(config.task)
    strategy = strategy or make_strategy(config, model_dir)
    resolved = distribute.resolve(config)
    check_choices(config)
    task.check_common(config)
    if distribute.is_multi_worker(strategy) and not task.multi_worker:
        raise UserError(
            f"task {config.task} does not run on several workers yet; use "
            "--config.strategy=mirrored for the GPUs of one machine"
        )
    with reproducible(config):
        _log(resolved)
        output = distribute.output_dir(model_dir, strategy)
        try:
            return _train(
                task, config, requested, model_dir, output, overwrite, strategy
            )
        finally:
            distribute.remove_output(output, model_dir)


@dataclasses.dataclass
class _Run:
    """What the steps of one run share. `output` is where this process
    writes: `model_dir`, or a non-chief worker's temporary folder; a
    resumed run reads `model_dir`."""

    task: object
    config: object
    model_dir: str
    output: str
    strategy: object
    record: dict
    built: object = None
    splits: object = None
    class_weight: object = None


def _train(task, config, requested, model_dir, output, overwrite, strategy):
    """`train` in the folder `output`. The steps read top to bottom; each
    is a function below."""
    started = time.time()
    phases = _check_cheaply(config)  # a typo fails before data is read
    chief = output == model_dir
    record = run_folder.open_folder(
        config, requested, model_dir, overwrite, chief
    )
    if record.get("finished"):
        run_folder.check_finished_data(record, config, model_dir)
        return _already_finished(model_dir, record, requested)
    distribute.barrier(strategy)  # the chief has opened model_dir
    state = _Run(task, config, model_dir, output, strategy, record)
    _prepare_run(state)
    prepare_seconds = round(time.time() - started, 1)
    state.class_weight = task.class_weight(state.splits, config)
    phases = _learning_rates(state, phases)
    if phases is None:
        return None  # lr_find alone: the suggestion is in the log
    timing = fit.fit(state, phases)
    _continue_in_float32(state)
    evaluate_started = time.time()
    _log("evaluating the test split (a decision to tune: on validation first)")
    decision = task.decide(state.built, state.splits, config, output)
    report = task.summarize(state.built, state.splits, config, decision, output)
    timing["evaluate_seconds"] = round(time.time() - evaluate_started, 1)
    timing["prepare_seconds"] = prepare_seconds
    _export(state, decision, report)
    _export_litert(state, decision, report)
    return _finish(state, report, timing, started)


def _check_cheaply(config):
    """The checks that need no data; returns the freeze plan's phases."""
    phases = freeze.plan_from_config(config)
    backbones.resolve(config.backbone)
    if config.lr_find:
        lr_find.check_options(config.lr_find_options)
    return phases


def _already_finished(model_dir, record, requested):
    _log(
        f"{model_dir} holds this run, finished; nothing to do "
        "(--overwrite starts it over)"
    )
    changes = checkpoint.setting_changes(record["config"], requested)
    if changes:
        shown = "; ".join(
            f"{k}: {a!r} there, {b!r} here" for k, a, b in changes
        )
        scoring = " ".join(
            f"--config.{k}={b}" for k, _, b in changes if k.startswith("eval.")
        )
        hint = "kft-export exports a finished run"
        if scoring:
            hint = (
                f"kft-evaluate --model_dir={model_dir} {scoring} scores it so"
            )
        _log(f"not applied to the finished run: {shown} ({hint})")
    return json.loads(files.read_text(os.path.join(model_dir, METRICS)))


def _prepare_run(state):
    """Reads the data and builds the model; records what a resume must
    see again, config.json, labels.txt and what the task fits on the
    training data (regression's target scaling)."""
    task, config, output = state.task, state.config, state.output
    # The held-out splits' seed, recorded in config.json for a rerun.
    config.data.split_seed = data.split_seed(config)
    write_config(config, output)
    _log(
        f"strategy {config.strategy}: {distribute.replicas(state.strategy)} "
        f"replica(s), global batch {config.data.batch_size}"
    )
    with state.strategy.scope():
        state.built, state.splits = task.prepare(config)
    run_folder.check_same_data(state.record, state.splits, config, output)
    write_config(config, output)  # now with the picked sequence length
    task.before_training(state.built, state.splits, config, output)
    if state.splits.labels:
        write_labels(state.splits.labels, output)
    _log(task.describe(state.splits))


def _learning_rates(state, phases):
    """The phases to train: as planned, or with the learning-rate range
    test's rate (found now, or by the run this one resumes); None when
    the range test alone was asked for."""
    config, record = state.config, state.record
    if config.lr_find and record.get("lr_find_rate") is not None:
        key = lr_find.apply(config, record["lr_find_rate"])
        _log(f"lr_find: resuming at {key}={record['lr_find_rate']:g}")
        write_config(config, state.output)
        return freeze.plan_from_config(config)
    if not config.lr_find:
        return phases
    with state.strategy.scope():
        return _lr_find(state)


def _export(state, decision, report):
    """Keeps the export check's sample, and (with `export`) writes the
    checked SavedModel to export/<N>/."""
    task, config, splits = state.task, state.config, state.splits
    sample = task.export_sample(state.built, splits, config)
    task.write_sample(sample, state.output)
    if not config.export:
        return
    _log("exporting the SavedModel and checking it in a fresh process")
    path, figures = task.export(
        state.built,
        splits.labels,
        os.path.join(state.output, EXPORT_DIR),
        sample,
        decision,
        config,
        os.path.join(state.output, WEIGHTS_FILE),
    )
    report["export"] = {"path": path, **publish.summary(figures)}


def _export_litert(state, decision, report):
    """With `litert.quantization`, writes the checked .tflite into
    litert/ (classifiers; other tasks refused it before training)."""
    config, splits = state.config, state.splits
    if not config.litert.quantization:
        return
    _log(
        f"converting to LiteRT ({config.litert.quantization}) and checking "
        "it in a fresh process"
    )
    path, figures = state.task.export_litert(
        state.built,
        splits.labels,
        state.output,
        splits.test,
        decision,
        config,
        splits.train,
    )
    report["litert"] = litert.summary(path, figures)
    _log(
        f"wrote {path}: accuracy {figures['accuracy']:.4f} (Keras "
        f"{figures['keras_accuracy']:.4f}), agreement "
        f"{figures['agreement']:.1%}, {figures['tflite_bytes'] / 2**20:.1f} "
        "MiB"
    )


def _continue_in_float32(state):
    """After a mixed-precision training, the run goes on in float32: the
    best weights (float32 in every policy) rebuilt in a float32 model
    tune the decision, score the test split and are exported. So
    metrics.json describes the model served, the SavedModel serves on
    any device (a CPU without bfloat16 instructions too), LiteRT (which
    has no bfloat16 kernels) converts it, and kft-evaluate and kft-export,
    which rebuild a run in float32, agree with the run's figures.
    `reproducible` puts the process's policy back at the end."""
    if keras.mixed_precision.global_policy().name == "float32":
        return
    _log("scoring and exporting the best weights in float32")
    keras.mixed_precision.set_global_policy("float32")
    with state.strategy.scope():
        # (A copy: a task's load may set what it needs, as QA's weights.)
        config = state.config.copy_and_resolve_references()
        state.built = state.task.load(state.output, config)[1]


def _finish(state, report, timing, started):
    """metrics.json, the table printed, report.html; the run finished."""
    output = state.output
    report["timing"] = timing | {"total_seconds": round(time.time() - started)}
    files.write_text(
        os.path.join(output, METRICS), json.dumps(report, indent=2)
    )
    print(state.task.format_table(report), flush=True)
    _log(f"report: {state.task.write_report(output)}")
    checkpoint.write_run(output, state.record | {"finished": True})
    if not state.config.checkpoint.keep_after_finish:
        for folder in [output, *fit.member_folders(output, state.config)]:
            checkpoint.remove_resume_state(folder)
    _log(f"run folder: {output} ({report['timing']['total_seconds']} s)")
    return report


def _lr_find(state):
    """Runs the range test; returns the phases to train, or None to stop.

    The sweep reads epoch 0's batches (repeated as needed); training
    shuffles each epoch by its own seed, so it sees the same batches as
    without the sweep. The applied rate goes into the run record, so a
    resumed run trains at it without sweeping again.
    """
    config, splits = state.config, state.splits
    phase = freeze.plan_from_config(config)[0]
    epochs = state.task.batches(
        state.built, splits.train, splits.labels, config, True
    )
    rate = lr_find.find(
        state.built,
        phase,
        epochs.dataset(0),
        config,
        state.output,
        len(splits.labels),
        class_weight=state.class_weight,
        log=_log,
        task=state.task,
    )
    if not config.lr_find_options.apply:
        key = lr_find.rate_key(config)
        _log(
            f"lr_find: sweep only; train with --config.{key} set from it, "
            "or add --config.lr_find_options.apply=true"
        )
        return None
    key = lr_find.apply(config, rate)
    state.record["lr_find_rate"] = float(rate)
    checkpoint.write_run(state.output, state.record)
    write_config(config, state.output)
    _log(f"lr_find: training phase {phase.name} at {key}={rate:g}")
    return freeze.plan_from_config(config)
