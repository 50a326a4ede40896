"""An extractive question-answering run (`--config.task=qa`).

The same run folder, freeze plans, trainer, checkpoints, resume and
atomic, checked export as a classification run (kft/run.py); what differs
is here: SQuAD-style data (kft/tasks/qa/squad.py), contexts cut into
windows and a span head (kft/tasks/qa/spans.py), the no-answer threshold,
exact match and F1 (printed and on report.html by kft/tasks/qa/report.py),
and a SavedModel that takes `question` and `context` strings and does the
windowing itself (kft/tasks/qa/serving.py).

`train` is kft-train's run; `evaluate_run` and `export_run` are
kft-evaluate's and kft-export's on a finished one, which reads the run's
best weights, its tuned no-answer threshold (metrics.json) and the test
questions its export was checked on (checkpoints/export_sample.json).
"""

import json
import os
import time

import numpy as np
import tensorflow as tf

from kft import config as config_lib
from kft.core import files, freeze, run_folder, training
from kft.core.errors import UserError
from kft.data import pipeline
from kft.model import backbones, builder
from kft.serving import publish
from kft.tasks import dispatch
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
    if config.lr_find:
        raise UserError("lr_find is not available for task qa yet")
    if config.class_weight:
        raise UserError("--config.class_weight applies to classification")
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


def train(config, model_dir, overwrite=False, strategy=None):
    """Fine-tunes a span model, evaluates and exports; returns metrics."""
    started = time.time()
    phases = freeze.plan_from_config(config)
    backbones.resolve(config.backbone)
    check(config)
    record, finished = run_folder.begin(config, model_dir, overwrite)
    if finished is not None:
        return finished
    splits, notes = squad.load_splits(config.data, config.data.split_seed)
    for line in notes:
        _log(line)
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        built = builder.build(config, 0)
    model, backbone = built.model, built.backbone
    tokenizer = built.preprocessor.inner.tokenizer
    config.data.sequence_length = _sequence_length(config, backbone)
    run_folder.write_config(config, model_dir)
    train_windows, _ = _windows(splits["train"], tokenizer, config, True)
    seen = {
        "train_examples": len(splits["train"]),
        "sequence_length": config.data.sequence_length,
    }
    run_folder.check_seen(record, seen, model_dir)
    pad = tokenizer.pad_token_id
    length = config.data.sequence_length
    inputs, labels = qa.span_inputs(train_windows, length, pad)
    validation = None
    if splits["validation"]:
        windows, _ = _windows(splits["validation"], tokenizer, config, True)
        validation = tf.data.Dataset.from_tensor_slices(
            qa.span_inputs(windows, length, pad)
        ).batch(config.data.eval_batch_size)
    _log(
        f"{len(splits['train'])} training questions ({len(train_windows)} "
        f"windows of {length} tokens), {len(splits['validation'])} "
        f"validation, {len(splits['test'])} test"
    )
    with strategy.scope():
        timing = training.Trainer(
            built,
            phases,
            _epochs(inputs, labels, config),
            validation,
            config,
            model_dir,
            0,
            log=_log,
            task=dispatch,
        ).run(config.resume)
    run_folder.save_weights(
        model, os.path.join(model_dir, run_folder.WEIGHTS_FILE)
    )
    for entry, phase in zip(timing["phases"], phases):
        entry["learning_rate"] = phase.learning_rate
    evaluate_started = time.time()
    report = {"task": "qa"}
    tuned = None
    if splits["validation"]:
        answers = answers_for(model, splits["validation"], tokenizer, config)
        tuned = tune_null_threshold(answers, splits["validation"])
    threshold = null_threshold(config.qa.null_threshold, tuned)
    report["null_threshold"] = threshold
    for name in ("validation", "test"):
        examples = splits[name]
        if not examples:
            continue
        answers = answers_for(model, examples, tokenizer, config, threshold)
        report[name] = scores(examples, answers)
        if name == "test":
            _write_predictions(examples, answers, model_dir)
            test_answers = answers
    timing["evaluate_seconds"] = round(time.time() - evaluate_started, 1)
    sample = splits["test"][:SAMPLE_EXAMPLES]
    run_folder.write_export_sample(model_dir, _sample_rows(sample))
    if config.export:
        path, figures = export_qa(
            model,
            tokenizer,
            config,
            threshold,
            os.path.join(model_dir, run_folder.EXPORT_DIR),
            sample,
            test_answers[:SAMPLE_EXAMPLES],
        )
        report["export"] = {"path": path, **figures}
    report["timing"] = timing
    return run_folder.finish(
        model_dir,
        record,
        report,
        started,
        qa_report.format_table(report),
        qa_report.write_report,
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


# === kft-evaluate and kft-export of a finished run ===


def load_run(model_dir, config):
    """(span model, tokenizer) of a finished run, with its best weights."""
    weights = run_folder.weights_path(model_dir)
    built = builder.rebuild(config, 0, weights)
    return built.model, built.preprocessor.inner.tokenizer


def run_threshold(model_dir, config):
    """The no-answer threshold `config.qa.null_threshold` gives a finished
    run: "auto" is the one the run tuned (in its metrics.json)."""
    tuned = run_folder.read_metrics(model_dir).get("null_threshold")
    return null_threshold(config.qa.null_threshold, tuned)


def test_examples(config):
    """(examples, source) kft-evaluate scores: --config.data.test, else the
    run's own test split (its spec, or the same seeded held-out share)."""
    if config.data.test:
        examples, note = squad.read(config.data.test, config.data)
        if note:
            _log(note)
        return examples, config.data.test
    splits, _ = squad.load_splits(config.data, config.data.split_seed)
    return splits["test"], "test"


def evaluate_run(model_dir, config, saved_model=""):
    """kft-evaluate of a QA run: exact match and F1 of the best weights'
    answers (or, with `saved_model`, the export's served answers) on
    `test_examples`. Writes MODEL_DIR/eval/<name>/ (metrics.json with the
    run's fields, predictions.jsonl, report.html); returns the metrics."""
    examples, source = test_examples(config)
    threshold = run_threshold(model_dir, config)
    if saved_model:
        answers = qa_serving.served_answers(
            saved_model, examples, config.data.eval_batch_size
        )
    else:
        model, tokenizer = load_run(model_dir, config)
        answers = answers_for(model, examples, tokenizer, config, threshold)
    folder = run_folder.eval_folder(model_dir, source)
    report = {
        "task": "qa",
        "null_threshold": threshold,
        "test": scores(examples, answers),
        "source": source,
        "model": saved_model or run_folder.weights_path(model_dir),
    }
    _write_predictions(examples, answers, folder)
    files.write_text(
        os.path.join(folder, run_folder.METRICS), json.dumps(report, indent=2)
    )
    print(qa_report.format_table(report), flush=True)
    _log(f"wrote {os.path.join(folder, run_folder.METRICS)}")
    run_config = json.loads(config_lib.to_json(config))
    _log(f"report: {qa_report.write_report(folder, run_config)}")
    return report


def export_run(model_dir, config, base):
    """kft-export of a QA run: `base/<N>/`, checked against the best
    weights' answers on the run's saved test questions; returns its path."""
    rows = run_folder.read_export_sample(model_dir)
    sample = [
        squad.Example(str(i), row["question"], row["context"], [])
        for i, row in enumerate(rows)
    ]
    model, tokenizer = load_run(model_dir, config)
    threshold = run_threshold(model_dir, config)
    expected = answers_for(model, sample, tokenizer, config, threshold)
    path, _ = export_qa(
        model, tokenizer, config, threshold, base, sample, expected
    )
    return path
