"""Token classification (NER): `--config.task=tokens`.

Tagged sentences (kft/tasks/tokens/data.py), a softmax over tags at every
position of a text backbone's sequence output, the sequence length from
the training sentences' word pieces, the masked loss and tag metrics of
kft/tasks/tokens/tagging.py, the entity-level evaluation
(kft/tasks/tokens/entities.py), a SavedModel that takes raw text and
answers entities (kft/tasks/tokens/export.py) and report.html
(kft/tasks/tokens/report.py). labels.txt holds the tags.
"""

import os

import numpy as np

from kft import data
from kft.core import accelerator, run_folder
from kft.model import builder, heads
from kft.serving import parity
from kft.tasks import base
from kft.tasks.tokens import data as tokens
from kft.tasks.tokens import entities, tagging
from kft.tasks.tokens import export as token_export
from kft.tasks.tokens import report as token_report

_log = run_folder.log
HEAD = heads.Head(sequence=True)


def prepare(config):
    """Reads the tagged data and builds the model; returns (built, splits)."""
    splits = tokens.load_splits(config.data, data.split_seed(config))
    for note in splits.notes:
        _log(note)
    built = builder.build(config, len(splits.labels), HEAD)
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


def evaluation_split(config, labels):
    """kft-evaluate's sentences: --config.data.test, else the run's own
    test split (its test spec, or the same seeded share of the training
    data); a tag the run's `labels` lack is a UserError."""
    if config.data.test:
        split = tokens.read_spec(config.data.test, config.data, "test")
    else:
        split = tokens.load_splits(config.data, data.split_seed(config)).test
    tokens.check_known_tags(split, labels)
    return split


class TokensTask(base.Task):
    name = "tokens"
    metrics = ("loss", "accuracy", "macro_f1")
    unsupported = base.SEQUENCE_TASKS_LACK

    def prepare(self, config):
        return prepare(config)

    def build(self, config, num_outputs):
        return builder.build(config, num_outputs, HEAD)

    def load(self, model_dir, config):
        labels = run_folder.read_labels(model_dir)
        weights = run_folder.weights_path(model_dir)
        return labels, builder.rebuild(config, len(labels), weights, HEAD)

    def describe(self, splits):
        return (
            f"{len(splits.train)} training, "
            f"{len(splits.validation or [])} validation, {len(splits.test)} "
            f"test sentences; tags: {', '.join(splits.labels)}"
        )

    def batches(self, built, split, labels, config, training):
        return batches(built, split, labels, config, training)

    def compile(self, model, optimizer, config, num_outputs):
        # Tagging's loss is already one mean over labelled positions.
        loss, metrics = tagging.loss_and_metrics(num_outputs)
        model.compile(
            optimizer=optimizer,
            loss=loss,
            metrics=metrics,
            jit_compile=accelerator.jit(config),
            steps_per_execution=config.steps_per_execution or 1,
        )

    def evaluate(self, built, split, labels, config, decision, folder=""):
        report = evaluate(built, split, labels, config, folder)
        report["source"] = split.source
        return report

    def evaluation_split(self, config, labels, folder):
        return evaluation_split(config, labels)

    def export_sample(self, built, splits, config):
        return sample_texts(splits.test)

    def export(
        self, built, labels, base_dir, sample, decision, config, weights
    ):
        return token_export.export(
            built, labels, base_dir, sample, weights_file=weights, log=_log
        )

    def format_table(self, report):
        return entities.format_table(report)

    def write_report(self, folder, run_config=None):
        return token_report.write(folder, run_config)


TASK = TokensTask()
