"""One token-classification (NER) run: `task = "tokens"`.

`run.train` hands runs with `config.task == "tokens"` to `train` here, and
kft-evaluate and kft-export hand them to `evaluate_run` and `export_run`.
The steps follow kft/run.py: config.json, data (kft/tasks/tokens/data.py),
the model (a softmax over tags at every position of the backbone's
sequence output), the sequence length, training through the freeze plan
(`model.fit`, with the masked loss and tag metrics of
kft/tasks/tokens/tagging.py), then the entity-level evaluation of the test
split (kft/tasks/tokens/entities.py), labels.txt (the tags), metrics.json,
predictions.jsonl, the best weights, the export sample, the export
(kft/tasks/tokens/export.py) and report.html (kft/tasks/tokens/report.py).
"""

import os
import time

import numpy as np
import tensorflow as tf

from kft import data
from kft.core import checkpoint, freeze, run_folder, training
from kft.core.errors import UserError
from kft.model import backbones, builder
from kft.serving import parity, publish
from kft.tasks import dispatch
from kft.tasks.classification import metrics as evaluation
from kft.tasks.tokens import data as tokens
from kft.tasks.tokens import entities
from kft.tasks.tokens import export as token_export
from kft.tasks.tokens import report as token_report

_log = run_folder.log


def prepare(config):
    """Reads the tagged data and builds the model; returns (built, splits)."""
    if config.data.split_seed < 0:
        config.data.split_seed = config.seed
    splits = tokens.load_splits(config.data, config.data.split_seed)
    for note in splits.notes:
        _log(note)
    built = builder.build(config, len(splits.labels))
    if built.modality != "text":
        raise UserError(
            f"task tokens needs a text backbone; {config.backbone} takes "
            f"{built.modality}"
        )
    tokenizer = tokens.tokenizer_of(built.preprocessor)
    maximum = built.preprocessor.sequence_length
    if config.data.sequence_length:
        length = min(config.data.sequence_length, maximum)
    else:
        counts = tokens.piece_counts(splits.train, tokenizer)
        length = data.pick_sequence_length(
            counts, config.data.length_percentile, maximum
        )
        _log(
            f"sequence length {length}: the "
            f"{config.data.length_percentile:g}th percentile of training "
            f"word pieces per sentence (max {counts.max()}, cap {maximum})"
        )
    built.preprocessor.sequence_length = length
    config.data.sequence_length = length
    return built, splits


def _check_options(config):
    if config.lr_find:
        raise UserError("--config.lr_find is not supported for task tokens")
    if config.class_weight or config.label_smoothing:
        raise UserError(
            "class_weight and label_smoothing are not supported for task "
            "tokens; leave them at their defaults"
        )
    if config.data.mixup or config.data.cutmix or config.data.augment:
        raise UserError("mixup, cutmix and augment are for images only")


def train(config, model_dir, overwrite=False, strategy=None):
    """Fine-tunes a tagger, evaluates it, fills `model_dir`; returns the
    metrics (see `entities.entity_report`)."""
    started = time.time()
    phases = freeze.plan_from_config(config)
    backbones.resolve(config.backbone)
    _check_options(config)
    record, finished = run_folder.begin(config, model_dir, overwrite)
    if finished is not None:
        return finished
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        built, splits = prepare(config)
    prepare_seconds = round(time.time() - started, 1)
    run_folder.check_same_data(record, splits, config, model_dir)
    run_folder.write_config(config, model_dir)
    run_folder.write_labels(splits.labels, model_dir)
    _log(
        f"{len(splits.train)} training, "
        f"{len(splits.validation or [])} validation, {len(splits.test)} "
        f"test sentences; tags: {', '.join(splits.labels)}"
    )
    train_data = batches(built, splits.train, splits.labels, config, True)
    validation_data = None
    if splits.validation is not None:
        validation_data = batches(
            built, splits.validation, splits.labels, config, False
        )
    with strategy.scope():
        timing = training.Trainer(
            built,
            phases,
            train_data,
            validation_data,
            config,
            model_dir,
            len(splits.labels),
            log=_log,
            task=dispatch,
        ).run(config.resume)
    weights = os.path.join(model_dir, run_folder.WEIGHTS_FILE)
    run_folder.save_weights(built.model, weights)
    built.backbone.save_weights(
        os.path.join(model_dir, run_folder.BACKBONE_FILE)
    )
    for entry, phase in zip(timing["phases"], phases):
        entry["learning_rate"] = phase.learning_rate
    evaluate_started = time.time()
    report = evaluate(built, splits.test, splits.labels, config, model_dir)
    report["source"] = splits.test.source
    timing["evaluate_seconds"] = round(time.time() - evaluate_started, 1)
    timing["prepare_seconds"] = prepare_seconds
    sample = sample_texts(splits.test)
    run_folder.write_export_sample(model_dir, sample)
    if config.export:
        path, figures = token_export.export(
            built,
            splits.labels,
            os.path.join(model_dir, run_folder.EXPORT_DIR),
            sample,
            weights_file=weights,
            log=_log,
        )
        report["export"] = {"path": path, **publish.summary(figures)}
    report["timing"] = timing | {"total_seconds": round(time.time() - started)}
    evaluation.write_report(report, os.path.join(model_dir, run_folder.METRICS))
    print(entities.format_table(report), flush=True)
    _log(f"report: {token_report.write(model_dir)}")
    checkpoint.write_run(model_dir, record | {"finished": True})
    _log(f"run folder: {model_dir} ({report['timing']['total_seconds']} s)")
    return report


def batches(built, split, labels, config, training_data):
    """Encoded, trimmed batches of `split` (`Epochs` for training)."""
    tokenizer = tokens.tokenizer_of(built.preprocessor)
    encoded = tokens.encode_split(
        split, tokenizer, labels, built.preprocessor.sequence_length
    )
    size = (
        config.data.batch_size if training_data else config.data.eval_batch_size
    )
    return tokens.batches(encoded, size, training_data, config.seed)


def word_probabilities(built, split, labels, config):
    """Per sentence, [words, tags] probabilities; truncated words get "O"."""
    dataset = batches(built, split, labels, config, False)
    found = []
    for inputs, positions in dataset:
        probabilities = np.asarray(built.model.predict_on_batch(inputs))
        positions = positions.numpy()
        for row, kept in zip(probabilities, positions >= 0):
            found.append(row[kept])
    result = []
    for words, kept in zip(split.words, found):
        full = np.zeros((len(words), len(labels)), np.float32)
        full[:, 0] = 1.0  # labels[0] is "O"
        full[: len(kept)] = kept
        result.append(full)
    return result


def evaluate(built, split, labels, config, folder=""):
    """Entity metrics of `split`; with `folder`, its predictions.jsonl."""
    predicted, rows = [], []
    for index, probabilities in enumerate(
        word_probabilities(built, split, labels, config)
    ):
        tags, spans = entities.decode(probabilities, labels)
        predicted.append(tags)
        rows.append(
            {
                "index": index,
                "words": split.words[index],
                "tags": split.tags[index],
                "predicted": tags,
                "entities": [
                    {
                        "type": kind,
                        "first": first,
                        "last": last,
                        "score": round(score, 6),
                    }
                    for kind, first, last, score in spans
                ],
            }
        )
    if folder:
        run_folder.write_jsonl(
            os.path.join(folder, run_folder.PREDICTIONS_FILE), rows
        )
    return entities.entity_report(
        split.tags, predicted, config.data.tag_scheme, split.name
    )


def sample_texts(split, count=parity.CHECK_EXAMPLES):
    """The test sentences the export check serves, words joined by spaces."""
    return [" ".join(words) for words in split.words[:count]]


def load_run(model_dir, config):
    """(tags, built) of a finished run, with its best weights."""
    labels = run_folder.read_labels(model_dir)
    weights = run_folder.weights_path(model_dir)
    return labels, builder.rebuild(config, len(labels), weights)


def export_run(model_dir, config, base):
    """kft-export of a token run: `base/<N>/`, checked on the run's saved
    test sentences; returns its path."""
    sample = run_folder.read_export_sample(model_dir)
    labels, built = load_run(model_dir, config)
    weights = run_folder.weights_path(model_dir)
    path, _ = token_export.export(
        built, labels, base, sample, weights, log=_log
    )
    return path


def evaluate_run(model_dir, config, saved_model=""):
    """kft-evaluate of a token run: --config.data.test, else its own test
    split (its test spec, or the same seeded share of the training data).
    Writes MODEL_DIR/eval/<name>/metrics.json; returns the dict."""
    if saved_model:
        raise UserError(
            "kft-evaluate --saved_model is not supported for task tokens; "
            "evaluate the run's weights (leave --saved_model out)"
        )
    labels, built = load_run(model_dir, config)
    if config.data.test:
        split = tokens.read_spec(config.data.test, config.data, "test")
    else:
        split = tokens.load_splits(config.data, config.data.split_seed).test
    folder = run_folder.eval_folder(model_dir, split.source)
    report = evaluate(built, split, labels, config, folder)
    report["source"] = split.source
    report["model"] = os.path.join(model_dir, run_folder.WEIGHTS_FILE)
    evaluation.write_report(report, os.path.join(folder, run_folder.METRICS))
    print(entities.format_table(report), flush=True)
    _log(f"wrote {os.path.join(folder, run_folder.METRICS)}")
    return report
