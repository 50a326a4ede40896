"""Checkpoints a run resumes from: written atomically, checked on load.

In MODEL_DIR/checkpoints/:

    run.json            what the run was asked to do: the config as given
                        (before kft resolved it), the labels, the phases;
                        a resumed run must ask for the same
    ckpt-<step>.index   the model's and optimizer's variables after optimizer
    ckpt-<step>.data-*  step <step> (tf.train.Checkpoint, TensorFlow's own
                        format: no pickle, CRC-checked on read)
    ckpt-<step>.json    the trainer's position and state; written last
    best-<step>.*       the weights of the best epoch so far

A finished run keeps none of the ckpt-* and best-* files
(`remove_resume_state`): the run folder's best.weights.h5 is what every
command reads, and a finished run is never resumed.

Every file is written under a temporary name and renamed, and a checkpoint
counts only once its .json is there, so a kill at any moment leaves the
previous checkpoint whole. Loading checks each candidate, newest first, and
falls back past one that is truncated or corrupt with a warning. A
checkpoint whose variables do not fit the model (another backbone, head
size or label set) is a UserError naming the difference, never a partial
restore. All I/O is tf.io.gfile, so gs:// and ram:// folders work.
"""

import dataclasses
import json
import os
import re
import time

import keras
import numpy as np
import tensorflow as tf

from kft.core import files
from kft.core.errors import UserError

FOLDER = "checkpoints"
RUN_FILE = "run.json"
_CKPT = re.compile(r"^ckpt-(\d+)\.json$")
_DATA_SUFFIXES = (".index", ".data-00000-of-00001")
# Config keys a resumed run may change: they do not touch training.
# What a resumed run may change: output and reporting, the LiteRT file
# written after training (a failed check is redone with another
# quantization, no retraining), and `trained_on`, a result, not a request.
RESUMABLE_CHANGES = (
    "verbose",
    "export",
    "resume",
    "checkpoint.",
    "eval.",
    "litert.",
    "trained_on",
)


@dataclasses.dataclass
class State:
    """Where training is and what it has decided so far.

    `epoch` counts epochs over the whole run (0-based) and `step` the
    batches of that epoch already trained; `phase_done` says the phase's
    last epoch has ended (the optimizer saved is still that phase's).
    """

    phase: int = 0
    phase_first_epoch: int = 0
    phase_done: bool = False
    epoch: int = 0
    step: int = 0
    global_step: int = 0
    phase_first_step: int = 0
    lr_scales: list = dataclasses.field(default_factory=list)
    nan_retries: int = 0
    best_value: float | None = None
    best_epoch: int | None = None
    best_file: str = ""
    phase_best: float | None = None
    wait: int = 0
    train_logs: dict | None = None  # an epoch trained, not yet validated
    metrics: list = dataclasses.field(default_factory=list)
    phase_seconds: list = dataclasses.field(default_factory=list)
    checkpoint_seconds: float = 0.0
    training_done: bool = False

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def folder_of(model_dir):
    return os.path.join(model_dir, FOLDER)


# === The run's request: config, labels, phases ===


def read_run(model_dir):
    """checkpoints/run.json as a dict, or None where there is none."""
    path = os.path.join(folder_of(model_dir), RUN_FILE)
    if not files.exists(path):
        return None
    try:
        return json.loads(files.read_text(path))
    except (ValueError, tf.errors.OpError):
        return None


def write_run(model_dir, record):
    files.makedirs(folder_of(model_dir))
    path = os.path.join(folder_of(model_dir), RUN_FILE)
    files.write_text(path, json.dumps(record, indent=2, sort_keys=True))


def config_differences(saved, requested):
    """The keys whose values differ, as "key: saved -> requested" lines."""
    flat_saved, flat_requested = _flatten(saved), _flatten(requested)
    lines = []
    for key in sorted(set(flat_saved) | set(flat_requested)):
        if key.startswith(RESUMABLE_CHANGES) or key in RESUMABLE_CHANGES:
            continue
        before = flat_saved.get(key, "<absent>")
        after = flat_requested.get(key, "<absent>")
        if before != after:
            lines.append(f"{key}: {before!r} there, {after!r} here")
    return lines


def setting_changes(saved, requested, prefixes=("eval.", "litert.", "export")):
    """(key, saved, requested) of the keys under `prefixes` that differ:
    settings a resumed run takes, but a finished one has already used."""
    flat_saved, flat_requested = _flatten(saved), _flatten(requested)
    return [
        (key, flat_saved.get(key), flat_requested.get(key))
        for key in sorted(set(flat_saved) | set(flat_requested))
        if key.startswith(prefixes)
        and flat_saved.get(key) != flat_requested.get(key)
    ]


def _flatten(values, prefix=""):
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = (
                list(value) if isinstance(value, tuple) else value
            )
    return flat


# === Saving ===


def _objects(model, optimizer):
    """What a checkpoint holds, by position: model and optimizer variables.

    Variable names carry per-process layer numbering (dense_3 here,
    dense_7 in a test process), so matching is by position and shape; the
    names are kept in the .json for messages.
    """
    groups = {"model": list(model.variables)}
    if optimizer is not None:
        groups["optimizer"] = list(optimizer.variables)
    return groups


def _describe(groups):
    return {
        name: [[v.path, list(v.shape)] for v in variables]
        for name, variables in groups.items()
    }


def _write(prefix, groups):
    """Writes `groups` to `prefix` under a temporary name, then renames."""
    temporary = f"{prefix}.tmp-{os.getpid()}"
    tf.train.Checkpoint(**groups).write(temporary)
    for suffix in _DATA_SUFFIXES:
        files.gfile.rename(temporary + suffix, prefix + suffix, overwrite=True)
    return {suffix: files.size(prefix + suffix) for suffix in _DATA_SUFFIXES}


def save(model_dir, state, model, optimizer, keep, metrics=None):
    """Writes checkpoint `state.global_step`; keeps the last `keep`.

    `metrics` are the running metric variables of the model `fit` trains
    (the model's own by default). Returns the seconds it took.
    """
    started = time.time()
    folder = folder_of(model_dir)
    files.makedirs(folder)
    if metrics is None:
        metrics = model.metrics_variables
    state.metrics = [
        [v.path, keras.ops.convert_to_numpy(v).tolist()] for v in metrics
    ]
    name = f"ckpt-{state.global_step:09d}"
    groups = _objects(model, optimizer)
    sizes = _write(os.path.join(folder, name), groups)
    state.checkpoint_seconds += time.time() - started
    manifest = {
        "state": state.to_dict(),
        "sizes": sizes,
        "variables": _describe(groups),
        "written": time.time(),
    }
    files.write_text(os.path.join(folder, name + ".json"), json.dumps(manifest))
    _prune(folder, keep)
    return time.time() - started


def save_best(model_dir, model, state):
    """Writes the model's weights as the best so far; returns the name."""
    folder = folder_of(model_dir)
    files.makedirs(folder)
    name = f"best-{state.global_step:09d}"
    _write(os.path.join(folder, name), {"model": list(model.variables)})
    return name


def _checkpoints(folder):
    """(step, json name) of the finished checkpoints, newest first."""
    found = []
    for name in files.listdir(folder):
        match = _CKPT.match(name)
        if match:
            found.append((int(match.group(1)), name))
    return sorted(found, reverse=True)


def has_checkpoint(model_dir):
    """Whether training in `model_dir` has written a checkpoint yet."""
    return bool(_checkpoints(folder_of(model_dir)))


def _prune(folder, keep):
    """Deletes all but the newest `keep` checkpoints, and best weights no
    kept checkpoint refers to (json first, so none is left half there)."""
    kept = _checkpoints(folder)[: max(keep, 1)]
    for _, name in _checkpoints(folder)[max(keep, 1) :]:
        files.remove(os.path.join(folder, name))
        for suffix in _DATA_SUFFIXES:
            files.remove(os.path.join(folder, name[: -len(".json")] + suffix))
    wanted = set()
    for _, name in kept:
        try:
            manifest = json.loads(files.read_text(os.path.join(folder, name)))
            wanted.add(manifest["state"]["best_file"])
        except (ValueError, KeyError, tf.errors.OpError):
            continue
    newest_best = _newest_best(folder)
    for entry in files.listdir(folder):
        if entry.startswith("best-") and ".tmp-" not in entry:
            stem = entry.split(".")[0]
            if stem not in wanted and stem != newest_best:
                files.remove(os.path.join(folder, entry))


def _newest_best(folder):
    stems = sorted(
        {
            e.split(".")[0]
            for e in files.listdir(folder)
            if e.startswith("best-")
        }
    )
    return stems[-1] if stems else ""


def remove_resume_state(model_dir):
    """Deletes the checkpoints a finished run no longer resumes from
    (ckpt-*, best-*: the model and optimizer several times over); the
    run's best.weights.h5 stays. Called once the run is marked finished."""
    folder = folder_of(model_dir)
    for name in files.listdir(folder):
        if name.startswith(("ckpt-", "best-")):
            files.remove(os.path.join(folder, name))


def remove_temporaries(model_dir):
    """Deletes what a killed save left under a temporary name."""
    folder = folder_of(model_dir)
    for name in files.listdir(folder):
        if ".tmp-" in name:
            files.remove(os.path.join(folder, name))


# === Loading ===


def _check_fits(manifest, groups, name):
    """UserError naming the first variable whose shape differs."""
    saved = manifest["variables"]
    for group, variables in groups.items():
        entries = saved.get(group, [])
        if group == "model" and len(entries) != len(variables):
            raise UserError(
                f"checkpoint {name} does not fit this model: it holds "
                f"{len(entries)} model variables, the model has "
                f"{len(variables)} (another backbone or head?); use another "
                "--model_dir, or --overwrite to start over"
            )
        for (path, shape), variable in zip(entries, variables):
            if list(shape) != list(variable.shape):
                raise UserError(
                    f"checkpoint {name} does not fit this model: {path} "
                    f"has shape {tuple(shape)} there and "
                    f"{tuple(variable.shape)} in the model (another backbone, "
                    "head size or label set?); use another --model_dir, or "
                    "--overwrite to start over"
                )
        if group != "model" and len(entries) != len(variables):
            raise UserError(
                f"checkpoint {name} does not fit this phase: {len(entries)} "
                f"{group} variables there, {len(variables)} here (another "
                "freeze plan?); use another --model_dir, or --overwrite"
            )


def restore(model_dir, model, optimizer_for, warn=print):
    """Restores the newest good checkpoint; returns its State or None.

    `optimizer_for(state)` returns the built optimizer of the checkpoint's
    phase (set up for `state.phase`), whose variables it restores.
    Candidates whose files are missing, truncated or corrupt are skipped
    with a warning; one that does not fit the model is a UserError.
    """
    folder = folder_of(model_dir)
    for step, name in _checkpoints(folder):
        prefix = os.path.join(folder, name[: -len(".json")])
        try:
            manifest = json.loads(files.read_text(prefix + ".json"))
            state = State.from_dict(manifest["state"])
            for suffix, expected in manifest["sizes"].items():
                actual = files.size(prefix + suffix)
                if actual != expected:
                    raise ValueError(
                        f"{suffix} holds {actual} bytes, {expected} written"
                    )
        except (ValueError, KeyError, TypeError, tf.errors.OpError) as error:
            warn(
                f"warning: checkpoint at step {step} unreadable ({error}); "
                "trying the one before"
            )
            continue
        groups = _objects(model, optimizer_for(state))
        _check_fits(manifest, groups, name)
        try:
            status = tf.train.Checkpoint(**groups).read(prefix)
            status.assert_consumed()
        except (tf.errors.OpError, ValueError, AssertionError, IndexError) as e:
            first = str(e).strip().splitlines()[0][:200] if str(e) else ""
            warn(
                f"warning: checkpoint at step {step} is corrupt "
                f"({type(e).__name__}: {first}); trying the one before"
            )
            continue
        return state
    return None


def load_best(model_dir, model, name):
    """Loads best weights `name` into `model`; False if they are not there."""
    if not name:
        return False
    prefix = os.path.join(folder_of(model_dir), name)
    if not files.exists(prefix + ".index"):
        return False
    tf.train.Checkpoint(model=list(model.variables)).read(
        prefix
    ).assert_consumed()
    return True


def add_metrics(model, state):
    """Adds an interrupted epoch's running metric states (by position).

    kft's compiled metrics keep sums (Mean totals and counts, a confusion
    matrix), so the saved state plus the resumed steps' is the state the
    uninterrupted epoch would have had.
    """
    variables = model.metrics_variables
    if len(variables) != len(state.metrics):
        return False
    for variable, (_, values) in zip(variables, state.metrics):
        values = np.asarray(values, dtype=variable.dtype)
        if values.shape != tuple(variable.shape):
            return False
        variable.assign(variable + values)
    return True
