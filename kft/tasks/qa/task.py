"""An extractive question-answering run (`--config.task=qa`).

The same run folder, freeze plans, trainer, checkpoints, resume and
atomic, checked export as a classification run (kft/run.py); what differs
is here: SQuAD-style data (kft/tasks/qa/squad.py), contexts cut into windows
and a span head (kft/tasks/qa/spans.py), the no-answer threshold, exact match
and F1,
and a SavedModel that takes `question` and `context` strings and does the
windowing itself (kft/tasks/qa/serving.py).
"""

import json
import os
import time

import numpy as np
import tensorflow as tf

from kft.core import files, freeze, run_folder, training
from kft.core.errors import UserError
from kft.data import pipeline
from kft.model import backbones, builder
from kft.report import page as report_lib
from kft.report.markup import escape, lookup, note, section, table
from kft.serving import publish
from kft.tasks import dispatch
from kft.tasks.qa import serving as qa_serving
from kft.tasks.qa import spans as qa
from kft.tasks.qa import squad

# The usual SQuAD window when the backbone allows it.
DEFAULT_LENGTH = 384
PREDICTIONS_FILE = "predictions.jsonl"
SAMPLE_EXAMPLES = 64


def _log(message):
    print(f"kft: {message}", flush=True)


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
        [qa.squad_scores([a.text], [g])["f1"] for a, g in zip(answers, golds)]
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
        golds = [[text for text, _ in e.answers] for e in examples]
        report[name] = qa.squad_scores([a.text for a in answers], golds)
        if name == "test":
            _write_predictions(examples, answers, model_dir)
            test_answers = answers
    timing["evaluate_seconds"] = round(time.time() - evaluate_started, 1)
    if config.export:
        sample = splits["test"][:SAMPLE_EXAMPLES]
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
        model_dir, record, report, started, format_table(report), write_report
    )


def format_table(report):
    lines = ["split        questions  exact_match      f1"]
    for name in ("validation", "test"):
        if name in report:
            figures = report[name]
            lines.append(
                f"{name:<12} {figures['count']:>9}  "
                f"{figures['exact_match']:>11.2f}  {figures['f1']:>6.2f}"
            )
    return "\n".join(lines)


def _write_predictions(examples, answers, model_dir):
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
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    files.write_text(os.path.join(model_dir, PREDICTIONS_FILE), text)


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


def write_report(folder, count=20):
    """report.html of a QA run: EM/F1 and the questions answered wrong."""

    def summary(run):
        m = run.metrics
        test = m["test"]
        text = (
            f"kft fine-tuned <b>{escape(lookup(run.config, 'backbone'))}"
            f"</b> to answer questions from passages of "
            f"{escape(lookup(run.config, 'data.train'))}. On "
            f"{test['count']} test questions: exact match "
            f"<b>{test['exact_match']:.2f}</b>, F1 <b>{test['f1']:.2f}</b> "
            "(SQuAD's normalization)."
        )
        threshold = m.get("null_threshold")
        if threshold is not None:
            text += f" No-answer threshold: {threshold:.3f}."
        return section("Summary", f"<p>{text}</p>")

    def sections(run):
        rows = [
            (r["id"], r["question"], " | ".join(r["answers"]), r["predicted"])
            for r in run.predictions
            if qa.squad_scores([r["predicted"]], [r["answers"]])["f1"] < 100
        ]
        figures = [
            (name, f["count"], f"{f['exact_match']:.2f}", f"{f['f1']:.2f}")
            for name in ("validation", "test")
            if (f := run.metrics.get(name))
        ]
        return [
            section(
                "Exact match and F1",
                table(("split", "questions", "exact match", "F1"), figures),
            ),
            section(
                "Questions not answered exactly",
                table(("id", "question", "answers", "predicted"), rows[:count])
                if rows
                else note("None."),
            ),
        ]

    shown = {"task", "validation", "test", "null_threshold"}
    return report_lib.write_task_page(folder, summary, sections, shown)
