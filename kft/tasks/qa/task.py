"""An extractive question-answering run (`--config.task=qa`).

The same run folder, freeze plans, trainer, checkpoints, resume and
atomic, checked export as a classification run (kft/run.py); what differs
is here: SQuAD-style data (kft/tasks/qa/squad.py), contexts cut into
windows and a span head (kft/tasks/qa/spans.py), the no-answer threshold,
exact match and F1 (printed and on report.html by kft/tasks/qa/report.py),
and a SavedModel that takes `question` and `context` strings and does the
windowing itself (kft/tasks/qa/serving.py).

kft-evaluate and kft-export of a finished run read its best weights, its
tuned no-answer threshold (metrics.json) and the test questions its
export was checked on (checkpoints/export_sample.json).
"""

import os

import numpy as np
import tensorflow as tf

from kft import data
from kft.core import accelerator, run_folder
from kft.core.errors import UserError
from kft.data import pipeline
from kft.model import builder
from kft.serving import publish
from kft.tasks import base
from kft.tasks.qa import report as qa_report
from kft.tasks.qa import serving as qa_serving
from kft.tasks.qa import spans as qa
from kft.tasks.qa import squad, squad_metrics

# The usual SQuAD window when the backbone allows it.
DEFAULT_LENGTH = 384
# Test questions the export's check answers (kept for kft-export).
SAMPLE_EXAMPLES = 64
_log = run_folder.log


def check(config):
    """One-line errors for settings a QA run cannot use."""
    options = config.qa
    if options.stride < 1 or options.max_answer_length < 1:
        raise UserError("qa.stride and qa.max_answer_length must be >= 1")
    null_threshold(options.null_threshold, tuned=None)


def null_threshold(setting, tuned):
    """The no-answer threshold `qa.null_threshold` asks for: "auto" is
    the one tuned on validation (None when no question there lacks an
    answer), "none" always answers, a number fixes it."""
    if setting == "auto":
        return tuned
    if setting == "none":
        return None
    try:
        return float(setting)
    except ValueError:
        raise UserError(
            f"bad value '{setting}' for --config.qa.null_threshold; "
            "valid: auto, none or a number"
        ) from None


def tune_null_threshold(answers, examples):
    """The threshold on (no-answer logit - best span logit) that gives the
    best validation F1; None when every validation question has an
    answer (then answering always is right)."""
    if all(example.answers for example in examples):
        return None
    golds = [[text for text, _ in e.answers] for e in examples]
    with_answer = np.array(
        [
            squad_metrics.squad_scores([a.text], [g])["f1"]
            for a, g in zip(answers, golds)
        ]
    )
    without = np.array([100.0 * (not g) for g in golds])
    gaps = np.array([a.null_logit - a.logit for a in answers])
    order = np.argsort(gaps)
    # Threshold just below gap k: questions order[k:] get "".
    best, choice = with_answer.sum(), float(gaps.max()) + 1.0
    total = without.sum()
    kept = 0.0
    for k in range(len(order)):
        value = kept + total
        if value > best:
            best, choice = value, float(gaps[order[k]]) - 1e-6
        kept += with_answer[order[k]]
        total -= without[order[k]]
    return choice


def _sequence_length(config, backbone):
    maximum = getattr(backbone, "max_sequence_length", None) or 512
    return min(config.data.sequence_length or DEFAULT_LENGTH, maximum)


def _windows(examples, tokenizer, config, training_data):
    return qa.example_windows(
        examples,
        tokenizer,
        config.data.sequence_length,
        config.qa.stride,
        training_data,
    )


def _epochs(inputs, labels, config):
    """Training batches, shuffled by (seed, epoch) alone."""
    drop = config.strategy == "tpu"
    rows = len(labels["start"])

    def make_epoch(epoch):
        dataset = tf.data.Dataset.from_tensor_slices((inputs, labels))
        seed = pipeline.epoch_seed(config.seed, epoch)
        dataset = dataset.shuffle(rows, seed=seed)
        return dataset.batch(config.data.batch_size, drop_remainder=drop)

    return pipeline.Epochs(make_epoch)


def answers_for(model, examples, tokenizer, config, threshold=None):
    window_list, pieces = _windows(examples, tokenizer, config, False)
    inputs, _ = qa.span_inputs(
        window_list, config.data.sequence_length, tokenizer.pad_token_id
    )
    return qa.predict_answers(
        model,
        examples,
        window_list,
        pieces,
        inputs,
        batch_size=config.data.eval_batch_size,
        max_answer_length=config.qa.max_answer_length,
        null_threshold=threshold,
    )


def scores(examples, answers):
    """Exact match and F1 of `answers` to `examples`, as SQuAD's
    evaluation computes them (kft/tasks/qa/squad_metrics.py)."""
    golds = [[text for text, _ in e.answers] for e in examples]
    return squad_metrics.squad_scores([a.text for a in answers], golds)


def _sample_rows(examples):
    """The export sample as JSON rows: each question and its context."""
    return [{"question": e.question, "context": e.context} for e in examples]


def _write_predictions(examples, answers, folder):
    rows = [
        {
            "id": example.id,
            "question": example.question,
            "answers": [text for text, _ in example.answers],
            "predicted": answer.text,
            "start": answer.start,
            "end": answer.end,
            "score": round(answer.score, 6),
        }
        for example, answer in zip(examples, answers)
    ]
    run_folder.write_jsonl(
        os.path.join(folder, run_folder.PREDICTIONS_FILE), rows
    )


def export_qa(model, tokenizer, config, threshold, base, sample, expected):
    """Writes, checks (fresh process, against `expected`) and publishes
    `base/<N>/`; returns (path, figures)."""
    settings = {
        "sequence_length": config.data.sequence_length,
        "stride": config.qa.stride,
        "max_answer_length": config.qa.max_answer_length,
        "max_question_tokens": qa.MAX_QUESTION_TOKENS,
        "null_threshold": threshold,
    }

    def build(folder):
        qa_serving.write_saved_model(model, tokenizer, folder, settings)
        return qa_serving.check(folder, sample, expected)

    path, figures = publish.build_and_publish(base, build)
    _log(
        f"exported {path}: serving and Keras give the same answers on "
        f"{figures['examples']} test questions"
    )
    return path, figures


# === The task ===


def build(config):
    """Start and end logits over a text backbone (kft/tasks/qa/spans.py)."""
    backbone, family, preprocessor, _ = builder.load_backbone(config)
    if family.modality != "text":
        raise UserError(
            f"task qa needs a text backbone; {config.backbone} takes "
            f"{family.modality}"
        )
    model = qa.span_model(
        backbone, config.head.dropout, config.backbone_dropout
    )
    return builder.Built(
        model, backbone, family, preprocessor, unused=("pooled_dense",)
    )


def _tokenizer(built):
    return built.preprocessor.inner.tokenizer


def _report(threshold, examples, answers):
    return {
        "task": "qa",
        "null_threshold": threshold,
        "test": scores(examples, answers),
        "source": examples.source,
    }


class QATask(base.Task):
    name = "qa"
    metrics = qa.METRICS
    unsupported = base.SEQUENCE_TASKS_LACK

    def check(self, config):
        check(config)

    def prepare(self, config):
        seed = data.split_seed(config)
        splits, notes = squad.load_splits(config.data, seed)
        for line in notes:
            _log(line)
        built = build(config)
        config.data.sequence_length = _sequence_length(config, built.backbone)
        return built, base.Splits(
            base.Examples(splits["train"], "train", config.data.train),
            base.Examples(splits["validation"], "validation") or None,
            base.Examples(splits["test"], "test", config.data.test or "test"),
        )

    def build(self, config, num_outputs=0):
        return build(config)

    def load(self, model_dir, config):
        config.weights = "none"
        built = build(config)
        built.model.load_weights(run_folder.weights_path(model_dir))
        return (), built

    def describe(self, splits):
        return (
            f"{len(splits.train)} training, {len(splits.validation or [])} "
            f"validation, {len(splits.test)} test questions"
        )

    def batches(self, built, split, labels, config, training):
        """Windows of the questions' contexts with their answer spans;
        training batches are shuffled by (seed, epoch) alone."""
        windows, _ = _windows(split, _tokenizer(built), config, True)
        inputs, spans = qa.span_inputs(
            windows, config.data.sequence_length, _tokenizer(built).pad_token_id
        )
        if training:
            return _epochs(inputs, spans, config)
        return pipeline.in_order((inputs, spans), config.data.eval_batch_size)

    def compile(self, model, optimizer, config, num_outputs):
        qa.compile_span_model(
            model,
            optimizer,
            jit_compile=accelerator.jit(config),
            steps_per_execution=config.steps_per_execution or 1,
        )

    def decide(self, built, splits, config, folder):
        """The no-answer threshold: tuned on validation, or the config's."""
        tuned = None
        if splits.validation:
            answers = answers_for(
                built.model, splits.validation, _tokenizer(built), config
            )
            tuned = tune_null_threshold(answers, splits.validation)
        return null_threshold(config.qa.null_threshold, tuned)

    def load_decision(self, config, folder, labels):
        """ "auto" is the threshold the run tuned (in its metrics.json)."""
        tuned = run_folder.read_metrics(folder).get("null_threshold")
        return null_threshold(config.qa.null_threshold, tuned)

    def summarize(self, built, splits, config, decision, folder):
        report = {"task": "qa", "null_threshold": decision}
        for name in ("validation", "test"):
            examples = getattr(splits, name)
            if not examples:
                continue
            answers = answers_for(
                built.model, examples, _tokenizer(built), config, decision
            )
            report[name] = scores(examples, answers)
            if name == "test":
                _write_predictions(examples, answers, folder)
        return report

    def evaluate(self, built, split, labels, config, decision, folder=""):
        answers = answers_for(
            built.model, split, _tokenizer(built), config, decision
        )
        if folder:
            _write_predictions(split, answers, folder)
        return _report(decision, split, answers)

    def serve(
        self, built, saved_model, split, labels, config, decision, folder
    ):
        answers = qa_serving.served_answers(
            saved_model, split, config.data.eval_batch_size
        )
        _write_predictions(split, answers, folder)
        return _report(decision, split, answers)

    def evaluation_split(self, config, labels, folder):
        """--config.data.test, else the run's own test split (its spec, or
        the same seeded held-out share)."""
        if config.data.test:
            examples, note = squad.read(config.data.test, config.data)
            if note:
                _log(note)
            return base.Examples(examples, "test", config.data.test)
        seed = data.split_seed(config)
        splits, _ = squad.load_splits(config.data, seed)
        return base.Examples(splits["test"], "test", "test")

    def export_sample(self, built, splits, config):
        return _sample_rows(splits.test[:SAMPLE_EXAMPLES])

    def export(
        self, built, labels, base_dir, sample, decision, config, weights
    ):
        """Checked against the weights' answers on the sample questions."""
        examples = [
            squad.Example(str(i), row["question"], row["context"], [])
            for i, row in enumerate(sample)
        ]
        tokenizer = _tokenizer(built)
        expected = answers_for(
            built.model, examples, tokenizer, config, decision
        )
        return export_qa(
            built.model,
            tokenizer,
            config,
            decision,
            base_dir,
            examples,
            expected,
        )

    def format_table(self, report):
        return qa_report.format_table(report)

    def write_report(self, folder, run_config=None):
        return qa_report.write_report(folder, run_config)


TASK = QATask()
