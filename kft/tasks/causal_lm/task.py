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

import os

import numpy as np
import tensorflow as tf

from kft.core import accelerator, compat, run_folder
from kft.core.errors import UserError
from kft.data import pipeline, split_seed
from kft.model import backbones, builder
from kft.report import page as report_lib
from kft.report.markup import escape, lookup, note, section, table
from kft.serving import publish
from kft.tasks import base
from kft.tasks.causal_lm import generation

DEFAULT_LENGTH = 256
FAMILY = backbones.Family("text", block_pattern=generation.BLOCK_PATTERN)


def _log(message):
    print(f"kft: {message}", flush=True)


def max_length(backbone):
    """The most tokens, prompt included, the backbone can generate."""
    return getattr(backbone, "max_sequence_length", None) or 1024


def check(config):
    options = config.lm
    generation.make_sampler(options.sampler)  # a bad name fails here
    if options.lora_rank < 1:
        raise UserError("--config.lm.lora_rank must be >= 1")
    if options.max_length < 2:
        raise UserError("--config.lm.max_length must be >= 2")


def build(config):
    """(causal_lm, Built over its preprocessor-free training model, with
    `generator` the causal_lm)."""
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
    built = builder.Built(
        model, backbone, FAMILY, causal_lm.preprocessor, generator=causal_lm
    )
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
    seed = split_seed(config)
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
    return pipeline.in_order(rows.inputs(), batch_size)


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


def write_report(folder, config=None):
    """report.html of a causal LM run (or of a kft-evaluate folder, with the
    run's `config` dict): perplexity and sample generations."""

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
        samples = run.metrics.get("samples") or []
        if not samples:
            return []
        rows = [(s["prompt"], s["generated"]) for s in samples]
        sampler = lookup(run.config, "lm.sampler")
        return [
            section(
                "Sample generations",
                table(("prompt", "generated"), rows),
                note(f"Sampler: {escape(sampler)}."),
            )
        ]

    shown = {"task", "samples", "lora"}
    return report_lib.write_task_page(folder, summary, sections, shown, config)


# === The task ===


def _examples(items, name, source=""):
    return base.Examples(items, name, source)


class CausalLMTask(base.Task):
    name = "causal_lm"
    metrics = generation.METRICS
    unsupported = base.SEQUENCE_TASKS_LACK

    def check(self, config):
        check(config)

    def prepare(self, config):
        splits, notes = load_splits(config)
        for line in notes:
            _log(line)
        _, built = build(config)
        maximum = max_length(built.backbone)
        length = min(config.data.sequence_length or DEFAULT_LENGTH, maximum - 1)
        config.data.sequence_length = length
        if config.lm.max_length > maximum:
            _log(
                f"lm.max_length {config.lm.max_length} is over the "
                f"backbone's {maximum} tokens: generating up to {maximum}"
            )
            config.lm.max_length = maximum
        return built, base.Splits(
            _examples(splits["train"], "train", config.data.train),
            _examples(splits["validation"], "validation") or None,
            _examples(splits["test"], "test", config.data.test or "test"),
        )

    def build(self, config, num_outputs=0):
        return build(config)[1]

    def load(self, model_dir, config):
        _, _, built = load_run(model_dir, config)
        return (), built

    def batches(self, built, split, labels, config, training):
        rows = _rows(split, built.generator, config)
        if training:
            return _epochs(rows, config)
        return _dataset(rows, config.data.eval_batch_size)

    def compile(self, model, optimizer, config, num_outputs):
        generation.compile_lm(
            model,
            optimizer,
            jit_compile=accelerator.jit(config),
            steps_per_execution=config.steps_per_execution or 1,
        )

    def _compiled(self, built, config):
        """`built`, compiled for its loss figures where it is not (a run
        loaded again, or rebuilt in float32 after mixed precision)."""
        if not getattr(built.model, "compiled", False):
            self.compile(built.model, "sgd", config, 0)
        return built

    def summarize(self, built, splits, config, decision, folder):
        built = self._compiled(built, config)
        report = {"task": "causal_lm", "lora": _lora_summary(built)}
        for name in ("validation", "test"):
            examples = getattr(splits, name)
            if examples:
                report[name] = loss_figures(
                    built, built.generator, examples, config
                )
        prompts = self.export_sample(built, splits, config)
        texts = built.generator.generate(
            prompts, max_length=config.lm.max_length
        )
        report["samples"] = [
            {"prompt": p, "generated": t} for p, t in zip(prompts, texts)
        ]
        run_folder.write_jsonl(
            os.path.join(folder, run_folder.PREDICTIONS_FILE),
            report["samples"],
        )
        return report

    def evaluate(self, built, split, labels, config, decision, folder=""):
        """Loss, perplexity and token accuracy, as validation measures."""
        built = self._compiled(built, config)
        return {
            "task": "causal_lm",
            "test": loss_figures(built, built.generator, split, config),
            "source": split.source,
        }

    def serve(
        self, built, saved_model, split, labels, config, decision, folder
    ):
        raise UserError(
            "kft-evaluate --saved_model is not available for task causal_lm: "
            "its export generates text and gives no loss; leave "
            "--saved_model out to evaluate the run's weights"
        )

    def evaluation_split(self, config, labels, folder):
        """--config.data.test, else the run's own test split (its spec, or
        the same seeded held-out share)."""
        if config.data.test:
            columns = (config.lm.prompt_column, config.lm.response_column)
            examples, note_line = generation.read_examples(
                config.data.test, config.data, *columns
            )
            if note_line:
                _log(note_line)
            return _examples(examples, "test", config.data.test)
        examples = load_splits(config)[0]["test"]
        if not examples:
            raise UserError(
                f"the run in {folder} held out no test split; pass one as "
                "--config.data.test=FILE (.txt or .jsonl)"
            )
        return _examples(examples, "test", "test")

    def export_sample(self, built, splits, config):
        """Prompts from validation (else test, else training) examples."""
        sample_from = splits.validation or splits.test or splits.train
        return _prompts(sample_from, config.lm.samples)

    def export(
        self, built, labels, base_dir, sample, decision, config, weights
    ):
        return export_lm(built.generator, config, base_dir, sample)

    def format_table(self, report):
        return format_table(report)

    def write_report(self, folder, run_config=None):
        return write_report(folder, run_config)


TASK = CausalLMTask()
