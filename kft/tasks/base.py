"""The task interface: what the one run flow (kft/run.py) and the commands
on a finished run (kft/commands.py) ask of a task.

Each task is a `Task` subclass in kft/tasks/<name>/ with one instance,
`TASK`, listed in kft/tasks/registry.py. The flow calls these methods in
this order; the defaults are what most tasks share.

    check          the task's own options, before any data is read
    prepare        read the data, build the model, pick the text length
    describe       the log line that counts the data
    before_training  fit what training needs from the data
    class_weight   Keras class weights, or None
    batches        the tf.data pipeline of a split (Epochs for training)
    compile        `model.compile` with the task's loss and metrics
    decide         tune the decision on validation and save it
    summarize      metrics.json of the run (and predictions.jsonl)
    export_sample  the raw inputs the export check serves
    export         write, check in a fresh process and publish a SavedModel
    export_litert  the same for a .tflite (classification only)
    format_table   the table printed after training and kft-evaluate
    write_report   report.html

kft-evaluate and kft-export use `load`, `load_decision`,
`evaluation_split`, `evaluate`, `serve`, `read_sample` and `export`.
"""

import dataclasses

from kft.core import run_folder
from kft.core.errors import UserError
from kft.core.monitor import Monitor
from kft.model import builder

# Features a task may lack; `refuse_unsupported` refuses them in one line.
FEATURES = {
    "lr_find": lambda config: bool(config.lr_find),
    "class_weight": lambda config: bool(config.class_weight),
    "label_smoothing": lambda config: bool(config.label_smoothing),
    "mixup": lambda config: bool(config.data.mixup or config.data.cutmix),
    "augment": lambda config: bool(config.data.augment),
    "litert": lambda config: bool(config.litert.quantization),
    "ensemble": lambda config: config.ensemble > 1,
}
# What tasks on token sequences (tokens, qa, causal_lm) do not support.
SEQUENCE_TASKS_LACK = frozenset(
    {
        "lr_find",
        "class_weight",
        "label_smoothing",
        "mixup",
        "augment",
        "litert",
        "ensemble",
    }
)
# The config key a user sets for each feature (for the refusal line).
_KEYS = {
    "lr_find": "lr_find",
    "class_weight": "class_weight",
    "label_smoothing": "label_smoothing",
    "mixup": "data.mixup / data.cutmix",
    "augment": "data.augment",
    "litert": "litert.quantization",
    "ensemble": "ensemble",
}
# Refusals that name more than a config key.
_WHAT = {
    "litert": "LiteRT export (kft-export --format=litert, "
    "--config.litert.quantization)",
}


class Examples(list):
    """A split of examples as a list, with its name and where it came from
    (`source`: the file or spec, or "test" for a held-out one)."""

    def __init__(self, items=(), name="", source=""):
        super().__init__(items)
        self.name = name
        self.source = source or name


@dataclasses.dataclass
class Splits:
    """One run's data; examples are the task's own type."""

    train: object
    validation: object  # None without a validation split
    test: object
    labels: tuple = ()  # the model's output names; () for qa and causal_lm


class Task:
    """The interface, with the defaults shared by most tasks."""

    name = ""
    # What `model.fit` reports; --config.monitor picks val_<m> or <m>.
    metrics = ("loss",)
    # Of FEATURES; refused in one line before any data is read.
    unsupported = frozenset()
    # Whether runs on several workers (MultiWorkerMirroredStrategy) work.
    multi_worker = False

    def check_common(self, config):
        """One line for a feature this task lacks or a monitor it does not
        report; then the task's own `check`."""
        self.refuse_unsupported(config)
        Monitor.of(config.monitor, self.metrics, self.name)
        self.check(config)

    def refuse_unsupported(self, config):
        """One line for the first feature `config` asks that the task
        lacks."""
        for feature in sorted(self.unsupported):
            if FEATURES[feature](config):
                what = _WHAT.get(feature, f"--config.{_KEYS[feature]}")
                raise UserError(
                    f"{what} is not supported for task {self.name}; leave "
                    "it at its default"
                )

    def check(self, config):
        """Raises UserError for a setting of the task's own options."""

    def prepare(self, config):
        """Reads the data, builds the model for it and sets
        `config.data.sequence_length`; returns (built, splits)."""
        raise NotImplementedError

    def describe(self, splits):
        """The log line that counts the run's data."""
        return (
            f"{_size(splits.train)} training, {_size(splits.validation)} "
            f"validation, {_size(splits.test)} test examples"
        )

    def before_training(self, built, splits, config, folder):
        """Fits and saves what training needs from the training data."""

    def class_weight(self, splits, config):
        return None

    def batches(self, built, split, labels, config, training):
        """`data.Epochs` of `split` for training, else a tf.data.Dataset."""
        raise NotImplementedError

    def compile(self, model, optimizer, config, num_outputs):
        """`model.compile` with the task's loss and metrics (the trainer
        calls it at every phase)."""
        raise NotImplementedError

    def decide(self, built, splits, config, folder):
        """Tunes the decision on validation, saves it, returns it."""
        return None

    def load_decision(self, config, folder, labels):
        """The decision a finished run saved."""
        return None

    def evaluate(self, built, split, labels, config, decision, folder=""):
        """The metrics.json dict of `split`; with `folder`, writes its
        predictions.jsonl there."""
        raise NotImplementedError

    def summarize(self, built, splits, config, decision, folder):
        """The run's metrics.json dict: the test split, evaluated."""
        return self.evaluate(
            built, splits.test, splits.labels, config, decision, folder
        )

    def evaluation_split(self, config, labels, folder):
        """kft-evaluate's split: --config.data.test, else the run's own."""
        raise NotImplementedError

    def serve(
        self, built, saved_model, split, labels, config, decision, folder
    ):
        """kft-evaluate --saved_model: the export's answers, scored."""
        raise UserError(
            f"kft-evaluate --saved_model is not supported for task "
            f"{self.name}; leave --saved_model out to evaluate the run's "
            "weights"
        )

    def export_sample(self, built, splits, config):
        """The raw inputs the export check serves (JSON-able)."""
        raise NotImplementedError

    def write_sample(self, sample, folder):
        run_folder.write_export_sample(folder, sample)

    def read_sample(self, folder):
        return run_folder.read_export_sample(folder)

    def export(
        self, built, labels, base_dir, sample, decision, config, weights
    ):
        """Writes, checks in a fresh process and publishes BASE_DIR/<N>/;
        returns (path, figures). `weights`: the run's weights file."""
        raise NotImplementedError

    def export_litert(
        self, built, labels, model_dir, split, decision, config, train=None
    ):
        """Writes MODEL_DIR/litert/model_<mode>.tflite as `config.litert`
        says, checked on `split` in a fresh process; returns (path,
        figures). `train`: the training split (int8 calibration), read
        again where None. Tasks without it list "litert" in
        `unsupported`."""
        raise NotImplementedError

    def load(self, model_dir, config):
        """(labels, built) of a finished run, with its best weights."""
        labels = run_folder.read_labels(model_dir)
        weights = run_folder.weights_path(model_dir)
        return labels, builder.rebuild(config, len(labels), weights)

    def format_table(self, report):
        raise NotImplementedError

    def write_report(self, folder, run_config=None):
        """Writes folder/report.html; returns its path."""
        raise NotImplementedError


def _size(split):
    return 0 if split is None else len(split)
