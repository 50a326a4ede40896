"""A causal language-model fine-tune (`--config.task=causal_lm`).

The run folder, freeze plans, trainer, checkpoints and resume are a
classification run's (kft/run.py, kft/core/training.py); what differs is here:
a keras-hub CausalLM (preset name or local preset folder), text or
prompt/response data packed into token rows with response-only loss
weights (kft/tasks/causal_lm/generation.py), LoRA adapters by default on large
backbones,
validation loss and perplexity, sample generations in metrics.json, and a
SavedModel with a `generate` signature.
"""

import json
import os
import time

import numpy as np
import tensorflow as tf

from kft.core import compat, files, freeze, run_folder, training
from kft.core.errors import UserError
from kft.data import pipeline
from kft.model import backbones, builder
from kft.report import page as report_lib
from kft.report.markup import escape, lookup, note, section, table
from kft.serving import publish
from kft.tasks import dispatch
from kft.tasks.causal_lm import generation

DEFAULT_LENGTH = 256
SAMPLES_FILE = "samples.jsonl"
FAMILY = backbones.Family("text", block_pattern=generation.BLOCK_PATTERN)


def _log(message):
    print(f"kft: {message}", flush=True)


def check(config):
    if config.lr_find:
        raise UserError("lr_find is not available for task causal_lm yet")
    if config.class_weight:
        raise UserError("--config.class_weight applies to classification")
    options = config.lm
    generation.make_sampler(options.sampler)  # a bad name fails here
    if options.lora_rank < 1:
        raise UserError("--config.lm.lora_rank must be >= 1")
    if options.max_length < 2:
        raise UserError("--config.lm.max_length must be >= 2")


def build(config):
    """(causal_lm, Built over its preprocessor-free training model)."""
    if backbones.resolve(config.backbone).kind != "hub":
        raise UserError(
            f"task causal_lm needs a keras-hub causal LM preset, not "
            f"{config.backbone}"
        )
    causal_lm = generation.load_causal_lm(config.backbone)
    backbone = causal_lm.backbone
    if generation.use_lora(config.lm.lora, backbone):
        generation.enable_lora(backbone, config.lm.lora_rank)
    causal_lm.compile(sampler=_sampler(config))
    model = generation.training_model(causal_lm)
    built = builder.Built(model, backbone, FAMILY, causal_lm.preprocessor)
    return causal_lm, built


def _sampler(config):
    options = config.lm
    return generation.make_sampler(
        options.sampler,
        top_k=options.top_k,
        top_p=options.top_p,
        temperature=options.temperature,
        seed=config.seed,
    )


def _split(examples, fraction, seed):
    """(kept, held out): a seeded `fraction` of the examples held out."""
    order = np.random.default_rng(seed).permutation(len(examples))
    count = int(round(len(examples) * fraction))
    out = set(order[:count].tolist())
    kept = [e for i, e in enumerate(examples) if i not in out]
    return kept, [examples[i] for i in sorted(out)]


def load_splits(config):
    """{"train", "validation", "test"} example lists and log notes."""
    data = config.data
    if not data.train:
        raise UserError("no training data; set --config.data.train")
    columns = (config.lm.prompt_column, config.lm.response_column)
    notes, splits = [], {}
    for name in ("train", "validation", "test"):
        if data[name]:
            splits[name], note = generation.read_examples(
                data[name], data, *columns
            )
            if note:
                notes.append(note)
    seed = data.split_seed
    for name in ("test", "validation"):
        fraction = data[f"{name}_fraction"]
        if name in splits or fraction <= 0:
            splits.setdefault(name, [])
            continue
        splits["train"], splits[name] = _split(splits["train"], fraction, seed)
        notes.append(
            f"{name}: {len(splits[name])} examples held out of {data.train} "
            f"({fraction:.0%}, seed {seed})"
        )
    return splits, notes


def _rows(examples, causal_lm, config):
    tokenizer = causal_lm.preprocessor.tokenizer
    encoded = generation.encode(examples, tokenizer)
    pad = getattr(tokenizer, "pad_token_id", None) or 0
    return generation.rows(
        encoded, config.data.sequence_length, pad, config.lm.packing
    )


def _dataset(rows, batch_size):
    return tf.data.Dataset.from_tensor_slices(rows.inputs()).batch(batch_size)


def _epochs(rows, config):
    drop = config.strategy == "tpu"

    def make_epoch(epoch):
        dataset = tf.data.Dataset.from_tensor_slices(rows.inputs())
        seed = pipeline.epoch_seed(config.seed, epoch)
        dataset = dataset.shuffle(len(rows), seed=seed)
        return dataset.batch(config.data.batch_size, drop_remainder=drop)

    return pipeline.Epochs(make_epoch)


def _prompts(examples, count):
    """Prompts for sample generations: the prompt, or a text's first
    words."""
    prompts = []
    for example in examples[:count]:
        prompt = example.prompt or " ".join(example.response.split()[:8])
        prompts.append(prompt)
    return prompts


def train(config, model_dir, overwrite=False, strategy=None):
    """Fine-tunes, evaluates, samples and exports; returns metrics."""
    started = time.time()
    phases = freeze.plan_from_config(config)
    check(config)
    record, finished = run_folder.begin(config, model_dir, overwrite)
    if finished is not None:
        return finished
    splits, notes = load_splits(config)
    for line in notes:
        _log(line)
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        causal_lm, built = build(config)
    maximum = getattr(built.backbone, "max_sequence_length", None) or 1024
    length = min(config.data.sequence_length or DEFAULT_LENGTH, maximum - 1)
    config.data.sequence_length = length
    run_folder.write_config(config, model_dir)
    train_rows = _rows(splits["train"], causal_lm, config)
    seen = {"train_examples": len(splits["train"]), "sequence_length": length}
    run_folder.check_seen(record, seen, model_dir)
    validation = None
    if splits["validation"]:
        rows = _rows(splits["validation"], causal_lm, config)
        validation = _dataset(rows, config.data.eval_batch_size)
    trainable = sum(int(np.prod(w.shape)) for w in built.model.weights)
    _log(
        f"{len(splits['train'])} training examples in {len(train_rows)} "
        f"rows of {length} tokens; {len(splits['validation'])} validation, "
        f"{len(splits['test'])} test; {trainable:,} parameters"
    )
    with strategy.scope():
        timing = training.Trainer(
            built,
            phases,
            _epochs(train_rows, config),
            validation,
            config,
            model_dir,
            0,
            log=_log,
            task=dispatch,
        ).run(config.resume)
    run_folder.save_weights(
        built.model, os.path.join(model_dir, run_folder.WEIGHTS_FILE)
    )
    for entry, phase in zip(timing["phases"], phases):
        entry["learning_rate"] = phase.learning_rate
    report = {"task": "causal_lm", "lora": _lora_summary(built)}
    for name in ("validation", "test"):
        if splits[name]:
            report[name] = loss_figures(built, causal_lm, splits[name], config)
    sample_from = splits["validation"] or splits["test"] or splits["train"]
    prompts = _prompts(sample_from, config.lm.samples)
    texts = causal_lm.generate(prompts, max_length=config.lm.max_length)
    report["samples"] = [
        {"prompt": p, "generated": t} for p, t in zip(prompts, texts)
    ]
    run_folder.write_export_sample(model_dir, prompts)
    if config.export:
        path, figures = export_lm(
            causal_lm,
            config,
            os.path.join(model_dir, run_folder.EXPORT_DIR),
            prompts,
        )
        report["export"] = {"path": path, **figures}
    report["timing"] = timing
    return run_folder.finish(
        model_dir, record, report, started, format_table(report), write_report
    )


def loss_figures(built, causal_lm, examples, config):
    """Loss, perplexity and token accuracy of the model on `examples`,
    weighted as in training (response tokens only)."""
    rows = _rows(examples, causal_lm, config)
    results = built.model.evaluate(
        _dataset(rows, config.data.eval_batch_size),
        verbose=0,
        return_dict=True,
    )
    return {
        "loss": float(results["loss"]),
        "perplexity": generation.perplexity(results["loss"]),
        "token_accuracy": float(results["accuracy"]),
        "examples": len(examples),
    }


def _lora_summary(built):
    layers = compat.flatten_layers(built.backbone)
    adapted = [x for x in layers if getattr(x, "lora_enabled", False)]
    if not adapted:
        return None
    return {"layers": len(adapted), "rank": int(adapted[0].lora_rank)}


def format_table(report):
    lines = ["split        examples      loss  perplexity"]
    for name in ("validation", "test"):
        if name in report:
            f = report[name]
            lines.append(
                f"{name:<12} {f['examples']:>8}  {f['loss']:>8.4f}  "
                f"{f['perplexity']:>10.2f}"
            )
    for sample in report.get("samples", [])[:3]:
        lines.append(f"> {sample['prompt']!r} -> {sample['generated']!r}")
    return "\n".join(lines)


def export_lm(causal_lm, config, base, prompts):
    """Writes, checks and publishes `base/<N>/` with a `generate`
    signature; greedy runs must generate what Keras generates."""
    expected = None
    if config.lm.sampler == "greedy":
        expected = causal_lm.generate(prompts, max_length=config.lm.max_length)

    def build(folder):
        generation.write_saved_model(causal_lm, folder, config.lm.max_length)
        return generation.check(folder, prompts, expected)

    path, figures = publish.build_and_publish(base, build)
    _log(f"exported {path}: a generate signature over {len(prompts)} prompts")
    return path, figures


# === kft-generate, kft-evaluate and kft-export of a finished run ===


def load_run(model_dir, config=None):
    """(config, causal_lm, built) of a finished run, with its trained
    weights; `config` replaces the run's own (sampling settings changed)."""
    config = config or run_config(model_dir)
    weights = run_folder.weights_path(model_dir)
    causal_lm, built = build(config)
    built.model.load_weights(weights)
    return config, causal_lm, built


def run_config(model_dir):
    config = run_folder.read_config(model_dir)
    if config.task != "causal_lm":
        raise UserError(f"{model_dir} is a {config.task} run, not causal_lm")
    return config


def test_examples(model_dir, config):
    """(examples, source) kft-evaluate scores: --config.data.test, else the
    run's own test split (its spec, or the same seeded held-out share)."""
    if config.data.test:
        columns = (config.lm.prompt_column, config.lm.response_column)
        examples, note = generation.read_examples(
            config.data.test, config.data, *columns
        )
        if note:
            _log(note)
        return examples, config.data.test
    examples = load_splits(config)[0]["test"]
    if not examples:
        raise UserError(
            f"the run in {model_dir} held out no test split; pass one as "
            "--config.data.test=FILE (.txt or .jsonl)"
        )
    return examples, "test"


def evaluate_run(model_dir, config, saved_model=""):
    """kft-evaluate of a causal LM run: loss, perplexity and token accuracy
    of the best weights on `test_examples`, as validation measures them.
    Writes MODEL_DIR/eval/<name>/metrics.json; returns the dict."""
    if saved_model:
        raise UserError(
            "kft-evaluate --saved_model is not available for task causal_lm: "
            "its export generates text and gives no loss; leave "
            "--saved_model out to evaluate the run's weights"
        )
    examples, source = test_examples(model_dir, config)
    _, causal_lm, built = load_run(model_dir, config)
    generation.compile_lm(built.model, "sgd", jit_compile=config.jit_compile)
    report = {
        "task": "causal_lm",
        "test": loss_figures(built, causal_lm, examples, config),
        "source": source,
        "model": run_folder.weights_path(model_dir),
    }
    folder = run_folder.eval_folder(model_dir, source)
    path = os.path.join(folder, run_folder.METRICS)
    files.write_text(path, json.dumps(report, indent=2))
    print(format_table(report), flush=True)
    _log(f"wrote {path}")
    return report


def export_run(model_dir, config, base):
    """kft-export of a causal LM run: `base/<N>/` with a `generate`
    signature, checked on the prompts of the run's own export; returns
    its path."""
    prompts = run_folder.read_export_sample(model_dir)
    _, causal_lm, _ = load_run(model_dir, config)
    path, _ = export_lm(causal_lm, config, base, prompts)
    return path


def write_report(folder):
    """report.html of a causal LM run: perplexity and sample generations."""

    def summary(run):
        m = run.metrics
        text = (
            f"kft fine-tuned <b>{escape(lookup(run.config, 'backbone'))}"
            f"</b> on {escape(lookup(run.config, 'data.train'))}"
        )
        if m.get("lora"):
            text += f" with rank-{m['lora']['rank']} LoRA adapters"
        if m.get("validation"):
            v = m["validation"]
            text += (
                f". Validation loss <b>{v['loss']:.4f}</b>, perplexity "
                f"<b>{v['perplexity']:.2f}</b>"
            )
        return section("Summary", f"<p>{text}.</p>")

    def sections(run):
        rows = [(s["prompt"], s["generated"]) for s in run.metrics["samples"]]
        sampler = lookup(run.config, "lm.sampler")
        return [
            section(
                "Sample generations",
                table(("prompt", "generated"), rows),
                note(f"Sampler: {escape(sampler)}."),
            )
        ]

    shown = {"task", "samples", "lora"}
    return report_lib.write_task_page(folder, summary, sections, shown)
