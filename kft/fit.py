"""The run's training step: one model, or a seed ensemble of several.

Each model trains through the freeze plan's phases with `model.fit`
(kft/core/training.py), resumably. With `config.ensemble` N > 1, member k
(k = 1 .. N-1) is built again from the pretrained backbone and trains with
seed `config.seed + k` (its own head, data order and dropout) on the same
splits, in MODEL_DIR/members/<k>/ (its history.csv and checkpoints; the
first member's are MODEL_DIR's own). The run goes on with one model that
averages the members' outputs (`builder.ensemble`), so tuning the
decision, the test figures and the export are the ensemble's. A resumed
run finds the finished members' checkpoints and trains only what is left.
"""

import os

import keras

from kft.core import files, preflight, training
from kft.core.run_folder import WEIGHTS_FILE, save_weights
from kft.core.run_folder import log as _log
from kft.model import builder

MEMBERS_DIR = "members"


def fit(state, phases):
    """Trains the run's model (or ensemble) and saves its weights and the
    fine-tuned backbone (the first member's); returns the timing, with
    `members` (the other members' timings) for an ensemble."""
    config, built = state.config, state.built
    if config.ensemble > 1:
        _log(f"ensemble: member 1 of {config.ensemble} (seed {config.seed})")
    timing = _train(state, built, config, state.output, state.model_dir, phases)
    others = []
    folders = zip(
        member_folders(state.output, config),
        member_folders(state.model_dir, config),
    )
    for member, (output, shared_dir) in enumerate(folders, 1):
        _log(
            f"ensemble: member {member + 1} of {config.ensemble} (seed "
            f"{config.seed + member}) in {MEMBERS_DIR}/{member}"
        )
        member_config = config.copy_and_resolve_references()
        member_config.seed = config.seed + member
        keras.utils.set_random_seed(member_config.seed)  # its head's start
        with state.strategy.scope():
            other = state.task.build(
                member_config, len(state.splits.labels), member
            )
        other.preprocessor = built.preprocessor  # its sequence length
        files.makedirs(output)
        # What the task fits on the training data (regression's scaling).
        state.task.before_training(other, state.splits, member_config, output)
        member_timing = _train(
            state,
            other,
            member_config,
            output,
            shared_dir,
            phases,
        )
        timing.setdefault("members", []).append(member_timing)
        others.append(other)
    builder.save_backbone(built, state.output)
    if others:
        with state.strategy.scope():
            state.built = builder.ensemble(built, others)
    save_weights(state.built.model, os.path.join(state.output, WEIGHTS_FILE))
    return timing


def member_folders(model_dir, config):
    """The run folders of an ensemble's members after the first."""
    return [
        os.path.join(model_dir, MEMBERS_DIR, str(member))
        for member in range(1, config.ensemble)
    ]


def _train(state, built, config, output, shared_dir, phases):
    """One model through the phases in `output`; returns its timing."""
    task, labels = state.task, state.splits.labels
    train_data = task.batches(built, state.splits.train, labels, config, True)
    validation_data = None
    if state.splits.validation is not None:
        validation_data = task.batches(
            built, state.splits.validation, labels, config, False
        )
    if config.strategy == "tpu":
        _preflight_data(train_data, validation_data, built.modality)
    with state.strategy.scope():
        timing = training.Trainer(
            built,
            phases,
            train_data,
            validation_data,
            config,
            output,
            len(labels),
            class_weight=state.class_weight,
            log=_log,
            shared_dir=shared_dir,
            strategy=state.strategy,
            task=task,
        ).run(config.resume)
    for entry, phase in zip(timing["phases"], phases):
        entry["learning_rate"] = phase.learning_rate
    return timing


def _preflight_data(train_data, validation_data, modality):
    """The TPU checks of the pipelines (kft/core/preflight.py)."""
    # Text batches come in a few fixed lengths; their batch size is fixed.
    static = "all" if modality == "image" else "batch"
    preflight.check_dataset(train_data.dataset(0, 1), "training", static)
    if validation_data is not None:
        preflight.check_dataset(validation_data, "validation", "none")
