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
import tensorflow as tf

from kft.core import files
from kft.core.errors import UserError
from kft.data import tables
from kft.data.bad_records import BadRecords
from kft.model import kernels
from kft.serving import check as fresh


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
    bad = BadRecords(spec, data_config.on_error)
    if spec.endswith(".txt"):
        try:
            text = files.read_text(spec)
        except files.Error as error:
            raise UserError(f"cannot read {spec}: {error.message}") from None
        examples = [Example("", doc) for doc in _documents(text)]
    else:
        examples = _jsonl(spec, prompt_column, response_column, bad)
    note = bad.check(len(examples), data_config.max_bad_fraction)
    if not examples:
        raise UserError(f"{spec} holds no text")
    return examples, note


def _jsonl(spec, prompt_column, response_column, bad):
    examples = []
    for where, row in tables.jsonl_rows(tables.read_lines(spec), spec, bad):
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


def training_model(causal_lm):
    """A plain functional model over the causal LM's layers.

    It shares every weight with `causal_lm` but has no preprocessor, so
    `fit` takes the token rows as they are (`Rows.inputs`), while
    `causal_lm.generate` still takes strings.
    """
    return keras.Model(causal_lm.input, causal_lm.output, name="kft_lm")


# What `fit` reports (and `--config.monitor` can pick).
METRICS = ("loss", "accuracy")


def compile_lm(model, optimizer, **options):
    """Token cross-entropy weighted by the loss mask; `options` go to
    `compile` (jit_compile, steps_per_execution)."""
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy("accuracy")],
        **options,
    )


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


# --- Loading, serving ---------------------------------------------------

# Layer names of the blocks of keras-hub's decoders (GPT-2, Llama,
# Mistral, Qwen, OPT, Phi: transformer_layer_N; Gemma: decoder_block_N).
BLOCK_PATTERN = r"^((?:transformer_layer|decoder_block)_\d+)$"
# Backbones at least this large train LoRA adapters by default.
LORA_AUTO_PARAMETERS = 1_000_000_000


def load_causal_lm(name):
    """A keras-hub CausalLM (backbone, head and preprocessor) from a preset
    name or a local preset folder; its einsums run as 2-D matmuls
    (kft/model/kernels.py)."""
    import keras
    import keras_hub

    try:
        # The policy in force, not the one saved: keras-hub 0.32 cannot
        # read back a preset saved under a mixed policy.
        causal_lm = keras_hub.models.CausalLM.from_preset(
            name, dtype=keras.mixed_precision.global_policy()
        )
    except (OSError, ConnectionError, ValueError) as error:
        raise UserError(
            f"could not load keras-hub causal LM '{name}': "
            f"{str(error).splitlines()[0][:300]} (offline? pass a local "
            "keras-hub preset folder)"
        ) from None
    kernels.fold(causal_lm)
    return causal_lm


def use_lora(setting, backbone):
    """Whether `--config.lm.lora` ("auto", "on", "off") trains adapters."""
    if setting not in ("auto", "on", "off"):
        raise UserError(
            f"bad value '{setting}' for --config.lm.lora; valid: auto, on, off"
        )
    if setting == "auto":
        return backbone.count_params() >= LORA_AUTO_PARAMETERS
    return setting == "on"


def generate_fn(causal_lm, max_length):
    """prompt strings -> generated texts (prompt included), in TF ops, with
    the causal LM's compiled sampler; keras-hub's own `generate` ends in
    NumPy, which a SavedModel cannot hold, so the detokenizing is here."""
    preprocessor = causal_lm.preprocessor
    tokenizer = preprocessor.tokenizer
    specials = {
        getattr(tokenizer, name, None)
        for name in ("start_token_id", "end_token_id", "pad_token_id")
    } - {None}

    def generate(prompt):
        inputs = preprocessor.generate_preprocess(
            prompt, sequence_length=max_length
        )
        end = getattr(tokenizer, "end_token_id", None)
        stop = None if end is None else (end,)
        outputs = causal_lm.generate_step(inputs, stop_token_ids=stop)
        ids = outputs["token_ids"]
        keep = tf.cast(outputs["padding_mask"], tf.bool)
        for special in sorted(specials):
            keep &= ids != special
        return tokenizer.detokenize(tf.ragged.boolean_mask(ids, keep))

    return generate


def write_saved_model(causal_lm, path, max_length):
    """A SavedModel whose `generate` signature takes `prompt` strings and
    returns `text`, up to `max_length` tokens with the prompt."""
    archive = keras.export.ExportArchive()
    archive.track(causal_lm.preprocessor.tokenizer)
    generate = generate_fn(causal_lm, max_length)
    archive.add_endpoint(
        "generate",
        lambda prompt: {"text": generate(prompt)},
        input_signature=[tf.TensorSpec([None], tf.string)],
    )
    archive.write_out(path, verbose=False)


_CHECK_SCRIPT = """
import json, sys, time
import tensorflow as tf
import tensorflow_text  # noqa: F401
prompts = json.load(sys.stdin)
started = time.time()
loaded = tf.saved_model.load(sys.argv[1])
load_seconds = time.time() - started
out = loaded.signatures["generate"](prompt=tf.constant(prompts))
print(json.dumps({"signatures": sorted(loaded.signatures),
                  "load_seconds": load_seconds,
                  "text": [t.decode("utf-8", "replace")
                           for t in out["text"].numpy()]}))
"""


def check(path, prompts, expected):
    """Runs the SavedModel's `generate` in a fresh process on `prompts`;
    with `expected` texts (greedy sampling), they must be equal."""
    from kft.core.errors import ExportError

    served = fresh.run_script(_CHECK_SCRIPT, [path], stdin=json.dumps(prompts))
    figures = {
        "examples": len(prompts),
        "signatures": served["signatures"],
        "load_seconds": served["load_seconds"],
    }
    if expected is not None:
        differ = sum(a != b for a, b in zip(served["text"], expected))
        if differ:
            raise ExportError(
                f"export refused: {differ} of {len(prompts)} greedy "
                "generations differ from Keras's"
            )
        figures["generations_equal"] = len(prompts)
    return figures
