"""Which folders a run may write to, and how it opens, resumes or refuses one.

kft writes only into a `--model_dir` that is missing, empty, or marked as a
kft run by `checkpoints/run.json`, a file that kft alone writes
(kft/core/checkpoint.py). Anything else, a Hugging Face checkpoint with its own
config.json or a folder of the user's files, is refused with one line, and
`--overwrite` does not change that: it empties kft runs only, and of them
only what kft writes (`OWN_NAMES`); a user's file there is never removed.
"""

import hashlib
import json
import os

import keras

from kft import config as config_lib
from kft.core import checkpoint, config_paths, files
from kft.core.errors import UserError

WEIGHTS_FILE = "checkpoints/best.weights.h5"
# The backbone alone, loadable with --config.weights by a later run.
BACKBONE_FILE = "checkpoints/backbone.weights.h5"
# A keras-hub model's fine-tuned backbone (and tokenizer) as a preset
# folder, for `--config.backbone` (kft/model/builder.py: save_backbone).
BACKBONE_DIR = "backbone"
EXPORT_DIR = "export"
# LiteRT models of a classifier (kft-export --format=litert), their
# labels.txt, tokenizer files and check figures.
LITERT_DIR = "litert"
# Raw test inputs the export's parity check runs (kft-export reuses them).
SAMPLE_FILE = "checkpoints/export_sample.tensor"
# The raw test inputs a tokens, qa or causal_lm export's check serves, as
# JSON (kft-export reuses them).
EXPORT_SAMPLE_FILE = "checkpoints/export_sample.json"
# A test split held out of the training data, as kft-predict input.
TEST_SPLIT_FILE = "test_split.jsonl"
# One line per evaluated example: input, true and predicted label.
PREDICTIONS_FILE = "predictions.jsonl"
METRICS = "metrics.json"
# Everything kft writes at the top of a run folder (the tasks' and the
# report's files too; tests/conftest.py's assert_run_contract checks every
# task's run against it): what starting over may remove.
OWN_NAMES = frozenset(
    {
        "checkpoints",
        "config.json",
        "history.csv",
        METRICS,
        "labels.txt",
        PREDICTIONS_FILE,
        TEST_SPLIT_FILE,
        "report.html",
        "curves.png",
        "confusion_matrix.png",
        "confusion_matrix_normalized.png",
        "lr_find.json",
        "lr_find.png",
        "threshold.json",
        "thresholds.json",
        "target_scaling.json",
        "tensorboard",
        "eval",
        "members",
        BACKBONE_DIR,
        EXPORT_DIR,
        LITERT_DIR,
    }
)


def log(message):
    print(f"kft: {message}", flush=True)


def read_record(model_dir):
    """The run record of the kft run in `model_dir` (its
    checkpoints/run.json), or None where the folder holds none."""
    record = checkpoint.read_run(model_dir)
    return record if isinstance(record, dict) and "config" in record else None


def check_target(model_dir):
    """UserError unless kft may write into `model_dir`."""
    if files.exists(model_dir) and not files.isdir(model_dir):
        raise UserError(
            f"--model_dir {model_dir} is a file; give a folder (a new one, "
            "an empty one, or a kft run to resume)"
        )
    names = files.listdir(model_dir)
    if names and read_record(model_dir) is None:
        shown = ", ".join(names[:3])
        raise UserError(
            f"--model_dir {model_dir} is not empty ({shown}, ...) and holds "
            "no kft run (no checkpoints/run.json); kft writes only into a "
            "new or empty folder or one of its own runs, --overwrite "
            "included: give another --model_dir"
        )


def _empty(model_dir, why):
    """Removes the run's files; refuses, removing nothing, where the folder
    also holds files kft did not write (a user's data may be among them)."""
    names = files.listdir(model_dir)
    foreign = sorted(name for name in names if name not in OWN_NAMES)
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise UserError(
            f"{why}: {model_dir} also holds files kft did not write "
            f"({shown}); kft removes only its own, so move those out first, "
            "or use another --model_dir"
        )
    for name in names:
        files.remove(os.path.join(model_dir, name))
    log(f"{why}: emptied {model_dir}")


def _never_trained(model_dir, record):
    """A run that stopped before its first checkpoint has nothing to lose."""
    return not record.get("finished") and not checkpoint.has_checkpoint(
        model_dir
    )


def open_folder(config, requested, model_dir, overwrite, chief=True):
    """Starts, resumes or refuses `model_dir`; returns its run record.

    --overwrite empties a kft run; `resume=false` refuses one; otherwise
    the run must have been asked for with the same config (keys in
    checkpoint.RESUMABLE_CHANGES aside). A run that stopped before its
    first checkpoint (a typo, missing data) has nothing to lose and sets
    no trap: the corrected command starts it over, resume=false or not.
    Only the chief checks and changes the folder; other workers read it.
    """
    if chief:
        check_target(model_dir)
    record = read_record(model_dir)
    if record is not None and overwrite:
        if chief:
            _empty(model_dir, "--overwrite")
        record = None
    if record is not None and not config.resume:
        if not _never_trained(model_dir, record):
            raise UserError(
                f"{model_dir} already holds a run; add --overwrite to "
                "replace it, or leave resume on to resume it"
            )
        if chief:
            _empty(model_dir, "the run there stopped before training")
        record = None
    if record is not None:
        record = _resume(record, requested, model_dir, chief)
    if record is not None:
        return record
    record = {"config": requested, "finished": False}
    if chief:
        _write_first(model_dir, record)
    return record


def _resume(record, requested, model_dir, chief):
    """The record to resume, or None where the run starts over."""
    differences = config_differences(record["config"], requested)
    if differences and _never_trained(model_dir, record):
        if chief:
            _empty(model_dir, "the run there stopped before training")
        return None
    if differences:
        more = len(differences) - 1
        raise UserError(
            f"{model_dir} holds a run with another config "
            f"({differences[0]}{f', and {more} more' if more else ''}); "
            "rerun it as it was, or use another --model_dir, or add "
            "--overwrite to start over"
        )
    log(f"{model_dir} holds this run: resuming it")
    if chief:
        checkpoint.remove_temporaries(model_dir)
    return record


def _write_first(model_dir, record):
    """Creates the run's marker; a folder kft cannot write is a UserError."""
    try:
        files.makedirs(checkpoint.folder_of(model_dir))
        checkpoint.write_run(model_dir, record)
    except files.Error as error:
        raise UserError(
            f"cannot write to --model_dir {model_dir}: {error.message}; "
            "give a folder you can write to"
        ) from None


def config_differences(saved, requested):
    """checkpoint.config_differences, with local paths compared resolved
    (config_paths.resolve)."""
    return checkpoint.config_differences(
        config_paths.resolve(saved), config_paths.resolve(requested)
    )


def eval_folder(model_dir, source):
    """Makes and returns the folder kft-evaluate writes the split read
    from `source` to: eval/<its file or folder name> inside the run, with
    _2, _3, ... where another file of that name has results there."""
    name = eval_name(source)
    folder = os.path.join(model_dir, "eval", name)
    for number in range(2, 1000):
        if _eval_source(folder) in (None, _spelled(source)):
            break
        folder = os.path.join(model_dir, "eval", f"{name}_{number}")
    try:
        files.makedirs(folder)
    except files.Error as error:
        raise UserError(
            f"cannot write to {folder}: {error.message}; kft-evaluate "
            "writes its results inside the run folder"
        ) from None
    return folder


def _spelled(source):
    return (
        source
        if "://" in source
        else os.path.abspath(os.path.expanduser(source))
    )


def _eval_source(folder):
    """The source an eval folder's results are of, or None if it has none."""
    path = os.path.join(folder, METRICS)
    if not files.exists(path):
        return None
    try:
        return _spelled(json.loads(files.read_text(path)).get("source", ""))
    except (ValueError, AttributeError):
        return ""


def eval_name(source):
    """The folder name under eval/ for `source`: its file or folder name,
    resolved (`..` names the folder above), never one that leads out."""
    if "://" not in source:
        source = os.path.abspath(os.path.expanduser(source))
    name = os.path.splitext(os.path.basename(source.rstrip("/")))[0]
    return slug(name) or "test"


def slug(text):
    """`text` as a plain folder name: letters, digits, - _ . kept, others
    made _, and no leading dot (no "..", no hidden folder)."""
    kept = "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
    return kept.lstrip(".")


def check_same_data(record, splits, config, model_dir):
    """A resumed run must see the labels and data size it started with;
    records the data files' digests (`check_finished_data`)."""
    seen = {
        "labels": list(splits.labels),
        "train_examples": len(splits.train),
        "sequence_length": config.data.sequence_length,
    }
    digests = data_digests(config)
    then = record.get("data_sha256") or {}
    changed = [spec for spec in then if digests.get(spec) != then[spec]]
    if changed and not _never_trained(model_dir, record):
        if any(key in record and record[key] != seen[key] for key in seen):
            check_seen(record, seen, model_dir)  # its line is more specific
        raise UserError(
            f"{changed[0]} changed since the run in {model_dir} started "
            "(it has trained on the data as it was); resume it on that "
            "data, or add --overwrite to start over on this"
        )
    record["data_sha256"] = digests
    check_seen(record, seen, model_dir)


def data_digests(config):
    """{spec: sha256} of the run's local data files (not folders, TFDS or
    remote specs)."""
    digests = {}
    for spec in (config.data.train, config.data.validation, config.data.test):
        path = os.path.expanduser(spec)
        if spec and "://" not in spec and os.path.isfile(path):
            digest = hashlib.sha256()
            with open(path, "rb") as file:
                for chunk in iter(lambda: file.read(1 << 20), b""):
                    digest.update(chunk)
            digests[spec] = digest.hexdigest()
    return digests


def check_finished_data(record, config, model_dir):
    """Refuses to answer "nothing to do" for a finished run whose data
    files changed since it read them: its figures are of the old data."""
    then = record.get("data_sha256")
    if not then:
        return
    now = data_digests(config)
    changed = [spec for spec in then if now.get(spec) != then[spec]]
    if changed:
        raise UserError(
            f"{changed[0]} changed since the run in {model_dir} finished "
            "(its figures are of the data as it was); add --overwrite to "
            "train on it again, or use another --model_dir"
        )


def check_seen(record, seen, model_dir):
    """Refuses data that differs from what the run in `model_dir` started
    with (`seen`: labels, sizes, lengths), then records `seen`. A run that
    has not trained yet takes the data as it is now (a file fixed in place
    after a failed start)."""
    for key, value in seen.items():
        if key not in record or record[key] == value:
            continue
        if _never_trained(model_dir, record):
            log(
                f"the data changed since the start that failed in "
                f"{model_dir} ({key} {record[key]} then, {value} now); "
                "nothing was trained, so the run starts with it as it is"
            )
            break
        raise UserError(
            f"the data changed since the run in {model_dir} started: "
            f"{key} {record[key]} there, {value} now; use another "
            "--model_dir, or add --overwrite to start over"
        )
    record.update(seen)
    checkpoint.write_run(model_dir, record)


def write_config(config, model_dir):
    path = os.path.join(model_dir, "config.json")
    files.write_text(path, config_lib.to_json(config))


def read_config(model_dir):
    """The config of the run in `model_dir` (its config.json)."""
    path = os.path.join(model_dir, "config.json")
    if not files.exists(path):
        raise UserError(f"no config.json in {model_dir}; not a kft run folder")
    return config_lib.from_json(files.read_text(path))


def read_labels(model_dir):
    """A finished run's labels.txt, one class (or tag) a line."""
    path = os.path.join(model_dir, "labels.txt")
    if not files.exists(path):
        raise UserError(
            f"{path} is missing: the run there did not finish (rerun its "
            "kft-train command to finish it)"
        )
    return files.read_text(path).splitlines()


def read_metrics(model_dir):
    """A finished run's metrics.json."""
    return json.loads(files.read_text(os.path.join(model_dir, METRICS)))


def weights_path(model_dir):
    """The best weights of a finished run; UserError when they are not
    there."""
    path = os.path.join(model_dir, WEIGHTS_FILE)
    if not files.exists(path):
        raise UserError(
            f"{path} is missing: the run there did not finish (rerun its "
            "kft-train command to finish it)"
        )
    return path


def write_export_sample(model_dir, sample):
    """Keeps the raw inputs an export's check serves (JSON), so that
    kft-export checks a later export on the same ones."""
    path = os.path.join(model_dir, EXPORT_SAMPLE_FILE)
    files.write_text(path, json.dumps(sample, ensure_ascii=False))


def read_export_sample(model_dir):
    """What `write_export_sample` kept; UserError for a folder without it
    (a run kft-train did not finish, or one from an older kft)."""
    path = os.path.join(model_dir, EXPORT_SAMPLE_FILE)
    if not files.exists(path):
        raise UserError(
            f"{path} is missing; kft-export needs a run that kft-train "
            "finished (train it again to get one)"
        )
    return json.loads(files.read_text(path))


def write_jsonl(path, rows):
    lines = (json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    files.write_text(path, "".join(lines))


def write_labels(labels, model_dir):
    path = os.path.join(model_dir, "labels.txt")
    files.write_text(path, "".join(f"{label}\n" for label in labels))


def save_weights(model, path):
    """Saves the weights alone, not the optimizer's moments with them.

    A compiled model's save_weights writes its optimizer too (3 times the
    size with AdamW); a model over the same layers has no optimizer.
    """
    keras.Model(model.input, model.output).save_weights(path)
