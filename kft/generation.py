"""Causal language models: examples to packed token rows, loss masks,
LoRA and sampling.

Data is plain text (`.txt`: documents separated by blank lines; every
token is a target) or JSONL with a prompt and a response per line (only
the response tokens and the end token are targets: the loss weight of the
prompt's tokens is 0). Each example is `[start] prompt response [end]` in
the backbone's tokens.

With packing (the default) examples are laid end to end and cut into rows
of `sequence_length + 1` tokens, so short examples waste no padding; a
row's attention then spans the examples packed into it, as in most
packed fine-tunes (the start and end tokens mark the boundaries). Without
packing each example is one row, cut or padded. Inputs are a row's tokens
but the last, targets its tokens but the first.
"""

import dataclasses
import json

import keras
import numpy as np

from kft import files
from kft.data.bad_records import BadRecords
from kft.errors import UserError


@dataclasses.dataclass
class Example:
    prompt: str
    response: str


def _documents(text):
    """Blank-line separated documents of a plain text file."""
    documents, lines = [], []
    for line in text.splitlines():
        if line.strip():
            lines.append(line)
        elif lines:
            documents.append("\n".join(lines))
            lines = []
    if lines:
        documents.append("\n".join(lines))
    return documents


def read_examples(spec, data_config, prompt_column, response_column):
    """The examples of a `.txt` or `.jsonl` file, and a bad-records note.

    JSONL lines hold `prompt_column` and `response_column`, or a `text`
    field (a document, all targets).
    """
    if not spec.endswith((".txt", ".jsonl")):
        raise UserError(
            f"language-model data must be .txt or .jsonl, not {spec}"
        )
    try:
        text = files.read_text(spec)
    except files.Error as error:
        raise UserError(f"cannot read {spec}: {error.message}") from None
    bad = BadRecords(spec, data_config.on_error)
    if spec.endswith(".txt"):
        examples = [Example("", doc) for doc in _documents(text)]
    else:
        examples = _jsonl(spec, text, prompt_column, response_column, bad)
    note = bad.check(len(examples), data_config.max_bad_fraction)
    if not examples:
        raise UserError(f"{spec} holds no text")
    return examples, note


def _jsonl(spec, text, prompt_column, response_column, bad):
    examples = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{spec}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            bad.add(where, f"invalid JSON: {error.msg}")
            continue
        if not isinstance(row, dict):
            bad.add(where, "not a JSON object")
            continue
        if response_column in row:
            prompt = row.get(prompt_column, "")
            response = row[response_column]
        elif "text" in row:
            prompt, response = "", row["text"]
        else:
            bad.add(where, f"no '{response_column}' or 'text' field")
            continue
        if not isinstance(prompt, str) or not isinstance(response, str):
            bad.add(where, "prompt and response must be strings")
            continue
        if not response.strip():
            bad.add(where, "empty response")
            continue
        examples.append(Example(prompt, response))
    return examples


def _ids(tokenizer, texts):
    ids = tokenizer(list(texts))
    if hasattr(ids, "to_list"):
        ids = ids.to_list()
    return [[int(i) for i in row] for row in ids]


def encode(examples, tokenizer):
    """[(token ids, loss weights)] of `[start] prompt response [end]`.

    The weight of a token is 1 when it is a target: response and end
    tokens; 0 for the start and prompt tokens.
    """
    start = getattr(tokenizer, "start_token_id", None)
    end = getattr(tokenizer, "end_token_id", None)
    prompts = _ids(tokenizer, [e.prompt for e in examples])
    responses = _ids(tokenizer, [e.response for e in examples])
    encoded = []
    for prompt, response in zip(prompts, responses):
        head = ([start] if start is not None else []) + prompt
        tail = response + ([end] if end is not None else [])
        encoded.append((head + tail, [0.0] * len(head) + [1.0] * len(tail)))
    return encoded


@dataclasses.dataclass
class Rows:
    """Token rows of `sequence_length + 1` with their loss weights and
    which positions hold tokens (the rest is padding)."""

    token_ids: np.ndarray
    weights: np.ndarray
    present: np.ndarray

    def __len__(self):
        return len(self.token_ids)

    def inputs(self):
        """(x, y, sample_weight) as a CausalLM's fit takes them."""
        x = {
            "token_ids": self.token_ids[:, :-1],
            "padding_mask": self.present[:, :-1],
        }
        return x, self.token_ids[:, 1:], self.weights[:, 1:]


def rows(encoded, sequence_length, pad_id, packing=True):
    """Packs (or pads) encoded examples into `Rows`."""
    width = sequence_length + 1
    if packing:
        stream = [t for ids, _ in encoded for t in ids]
        weights = [w for _, ws in encoded for w in ws]
        chunks = [
            (stream[i : i + width], weights[i : i + width])
            for i in range(0, len(stream), width)
        ]
    else:
        chunks = [(ids[:width], ws[:width]) for ids, ws in encoded]
    token_ids = np.full((len(chunks), width), pad_id, dtype=np.int32)
    weight = np.zeros((len(chunks), width), dtype=np.float32)
    present = np.zeros((len(chunks), width), dtype=bool)
    for row, (ids, ws) in enumerate(chunks):
        token_ids[row, : len(ids)] = ids
        weight[row, : len(ws)] = ws
        present[row, : len(ids)] = True
    return Rows(token_ids, weight, present)


def training_model(causal_lm, optimizer):
    """A plain functional model over the causal LM's layers, compiled with
    token cross-entropy weighted by the loss mask.

    It shares every weight with `causal_lm` but has no preprocessor, so
    `fit` takes the token rows as they are (`Rows.inputs`), while
    `causal_lm.generate` still takes strings.
    """
    model = keras.Model(causal_lm.input, causal_lm.output, name="kft_lm")
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy("accuracy")],
    )
    return model


SAMPLERS = ("greedy", "top_k", "top_p", "random")


def make_sampler(name, top_k=50, top_p=0.9, temperature=1.0, seed=None):
    """A keras-hub sampler for `--config.generate.sampler`."""
    import keras_hub

    samplers = keras_hub.samplers
    if name == "greedy":
        return samplers.GreedySampler(temperature=temperature)
    if name == "top_k":
        return samplers.TopKSampler(k=top_k, temperature=temperature, seed=seed)
    if name == "top_p":
        return samplers.TopPSampler(p=top_p, temperature=temperature, seed=seed)
    if name == "random":
        return samplers.RandomSampler(temperature=temperature, seed=seed)
    raise UserError(f"unknown sampler '{name}'; valid: {', '.join(SAMPLERS)}")


def enable_lora(backbone, rank):
    """Trains rank-`rank` adapters of the attention's query and value
    instead of their kernels (keras-hub's `enable_lora`, which keeps those
    layers' biases trainable and freezes every other weight); returns the
    number of trainable parameters."""
    if not hasattr(backbone, "enable_lora"):
        raise UserError(
            f"{type(backbone).__name__} has no LoRA support in keras-hub"
        )
    backbone.enable_lora(rank)
    return sum(int(np.prod(w.shape)) for w in backbone.trainable_weights)


def perplexity(loss):
    """exp(mean token loss), capped so a diverged run prints a number."""
    return float(np.exp(min(float(loss), 50.0)))
