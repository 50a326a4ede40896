"""The run config: every field with its default, typed overrides, JSON.

Experiments start from `default_config()` and change values; they never add
fields, so every experiment accepts the same `--config.KEY=VALUE` overrides
and an unknown key is an error with close matches.
"""

import json

import ml_collections

from kft.core.config_values import check_values  # noqa: F401 (kft.config's)
from kft.core.errors import UserError, close_matches


def default_config():
    """Returns the config with every field kft reads, at its default."""
    config = ml_collections.ConfigDict()
    # A keras.applications name (ResNet50), a keras-hub preset name
    # (bert_base_en_uncased), or a local keras-hub / Hugging Face folder.
    config.backbone = ""
    # keras.applications only: "imagenet", "none" or a local weights file.
    config.weights = "imagenet"
    # What the model predicts (kft/tasks/registry.py lists the tasks):
    # "classification" (one class per example, softmax), "multilabel" (a
    # set of labels, a sigmoid per label), "regression" (a number, a linear
    # output), "tokens" (a tag per word, named entities), "qa" (an answer
    # span in a passage) or "causal_lm" (text generation).
    config.task = "classification"
    config.seed = 0

    config.data = ml_collections.ConfigDict()
    config.data.train = ""
    config.data.validation = ""
    config.data.test = ""
    # Column names of CSV/TSV/JSONL files, or feature names of a TFDS
    # dataset. An empty text_column picks a known pair of texts
    # (sentence1/sentence2, question/context, ...) or the first of text,
    # sentence, content, review, document. image_column names a table's
    # column of image paths (relative ones are read beside the table) or a
    # TFDS image feature; empty picks `image` where a table has that column
    # and no text column. With a pair, the backbone packs both texts into one
    # input ([CLS] text [SEP] pair [SEP], segment ids 0 and 1), and the
    # export takes `text` and `text_pair`; the run writes the columns it
    # used here.
    config.data.text_column = ""
    config.data.text_pair_column = ""
    config.data.label_column = "label"
    # task=multilabel: what separates the labels of a text label
    # ("sports,politics"); a JSON list in JSONL needs none.
    config.data.label_delimiter = ","
    config.data.image_column = ""
    # task "tokens": the word-list and tag-list fields of JSONL lines or
    # TFDS features (empty picks tokens/words and tags/ner_tags/ner), and
    # the tag scheme, "bio" (IOB2) or "bioes"; a tag outside it is an error.
    config.data.tokens_column = ""
    config.data.tags_column = ""
    config.data.tag_scheme = "bio"
    # Bad records (an image that does not decode, an empty text, a missing
    # label, a malformed row, a line that is not UTF-8): "skip" skips,
    # counts and reports them, and stops only when more than
    # max_bad_fraction of one spec's records are bad; "raise" stops at the
    # first one.
    config.data.on_error = "skip"
    config.data.max_bad_fraction = 0.1
    # Used only when the matching spec is empty: a stratified, seeded split
    # of the training data.
    config.data.validation_fraction = 0.15
    config.data.test_fraction = 0.15
    # The seed of those held-out splits; -1 takes `seed`. The run writes the
    # seed it used to config.json, so a rerun holds out the same examples.
    config.data.split_seed = -1
    config.data.tfds_data_dir = ""
    # Text: 0 picks the length from the data (this percentile of token
    # lengths, capped by the backbone's maximum).
    config.data.sequence_length = 0
    config.data.length_percentile = 99.0
    # Undo HTML entities (&#039;) and collapse white space before tokenizing.
    config.data.clean_text = True
    # Images are resized to this square size; 0 uses the backbone's default.
    config.data.image_size = 0
    # Images: how a non-square image becomes square: "squash" (stretch),
    # "crop" (center square) or "pad" (black borders); serving does the same.
    config.data.resize = "squash"
    # Training images only: a comma list of flip, crop, rotate, zoom, color
    # (kft/data/augment.py), "" for none. Off here so the measured
    # experiments stay as measured; image_classifier turns on "flip,crop".
    config.data.augment = ""
    # Mixup / cutmix Beta alphas (0 is off; 0.2 and 1.0 are usual). Either
    # makes the training labels soft class shares.
    config.data.mixup = 0.0
    config.data.cutmix = 0.0
    # Text batch shapes: "dynamic" trims each batch to its longest row
    # (multiples of 16), "fixed" pads to a few lengths (powers of two up to
    # the sequence length) so XLA/TPU compile a bounded number of shapes;
    # "auto" is fixed when jit_compile is on or the strategy is TPU.
    config.data.text_shapes = "auto"
    # The global batch: split across the replicas of a distributed run
    # (32 on 4 GPUs is 8 per GPU). Learning rates are for this batch and
    # stay as they are when the replica count changes; raise the batch with
    # the replicas and scale the rates yourself (linearly, or by the square
    # root for Adam-type optimizers, then check with lr_find).
    config.data.batch_size = 32
    config.data.eval_batch_size = 64

    config.head = ml_collections.ConfigDict()
    # "auto" is avg for images, masked mean for text; also "cls", "pooled".
    config.head.pooling = "auto"
    config.head.dropout = 0.1
    config.head.hidden_units = 0
    config.head.hidden_activation = "gelu"

    # The freeze plan (kft/core/freeze.py): linear_probe, full, two_phase,
    # gradual or custom (then `phases` holds the JSON list of phases).
    config.plan = "two_phase"
    config.epochs = 3
    config.head_epochs = 1
    config.learning_rate = 5e-5
    config.head_learning_rate = 1e-3
    config.layer_decay = 1.0
    config.phases = ""
    # Keep BatchNorm layers frozen (and in inference mode) when unfreezing,
    # as the Keras transfer-learning guide advises; True trains them fully
    # (statistics too), for training an image backbone from scratch.
    config.train_batchnorm = False
    # Text backbones have no BatchNorm, so they can run in training mode
    # and keep their own dropout, the main regularizer when fine-tuning a
    # transformer on little data, in the phases where the backbone trains
    # (a head-only phase trains on cached features: see cache_features).
    # Image backbones always run with training=False.
    config.backbone_dropout = True

    config.optimizer = ml_collections.ConfigDict()
    config.optimizer.name = "adamw"
    config.optimizer.weight_decay = 0.01
    config.optimizer.momentum = 0.9
    config.optimizer.nesterov = True
    config.optimizer.clipnorm = 1.0
    config.optimizer.epsilon = 1e-6
    # Weight averaging (0: off): validate, keep and export a moving average
    # of the weights, momentum min(m, (1 + t) / (10 + t)) at a phase's step t.
    config.optimizer.ema_momentum = 0.0

    config.schedule = ml_collections.ConfigDict()
    config.schedule.name = "cosine"
    config.schedule.warmup_fraction = 0.1
    # "step" decays by `step_factor` every `step_fraction` of the phase.
    config.schedule.step_factor = 0.1
    config.schedule.step_fraction = 0.33

    config.label_smoothing = 0.0
    # "", "balanced" or "sqrt" (from the training labels' frequencies; see
    # data.class_weights).
    config.class_weight = ""
    # Cached frozen features (kft/core/cached.py): a phase that trains the head
    # alone on unaugmented data (and, for images, without train_batchnorm)
    # computes the backbone's pooled outputs once, in inference mode, and
    # fits the head on them. "auto" does so wherever valid and logs why
    # not elsewhere; "true" makes a head-only phase that cannot be cached
    # an error; "false" recomputes the backbone every step.
    config.cache_features = "auto"
    # precision and jit_compile (XLA: auto, true or false) at "auto" follow
    # the device (kft/core/accelerator.py; the table in docs/training.md).
    config.precision = "auto"
    config.jit_compile = ml_collections.FieldReference("auto", object)
    # Steps per tf.function call; 0 is 32 on TPU (each call is a round trip
    # to the host), 8 on GPU and 1 on CPU.
    config.steps_per_execution = 0
    # Written by the run: the device it resolved the settings above for.
    config.trained_on = ""
    # The tf.distribute strategy models are built, compiled and fit under
    # (kft/core/distribute.py): "default" (one device), "mirrored" (every GPU
    # here), "multi_worker" (the machines in TF_CONFIG), "tpu".
    config.strategy = "default"
    # strategy "tpu": "" finds the TPU (Colab, the TPU_NAME variable),
    # "local" is this TPU VM, else a TPU name or grpc:// address.
    config.tpu = ""
    # Model selection: the best epoch by this validation metric is kept.
    config.monitor = "val_macro_f1"
    config.early_stopping_patience = 0
    # Keras fit verbosity: -1 is a progress bar on a terminal and one line
    # per epoch otherwise (logs, CI); 0, 1 and 2 as in `model.fit`.
    config.verbose = -1
    # Seed ensemble (1: off): train N models, with seeds seed, seed + 1,
    # ..., on the same splits (MODEL_DIR holds the first's history and
    # checkpoints, members/<k>/ the others'), and average their outputs:
    # one model that is tuned, evaluated, exported and served. N times the
    # training time; classification, multilabel and regression.
    config.ensemble = 1
    # Export a checked SavedModel into MODEL_DIR/export/<N>/
    # (kft/serving/export.py).
    config.export = True

    # Learning-rate range test (kft/core/lr_find.py): the first phase's rate
    # swept exponentially from min_rate to max_rate over `steps` steps (until
    # the loss, smoothed by `smoothing`, passes `divergence` times its best;
    # 0: never), lr_find.json and .png written, the weights restored; then
    # a stop (exit 0) with the suggested rate in the log, or with `apply`,
    # training on at it.
    config.lr_find = False
    config.lr_find_options = ml_collections.ConfigDict()
    config.lr_find_options.min_rate = 1e-7
    config.lr_find_options.max_rate = 1.0
    config.lr_find_options.steps = 100
    config.lr_find_options.divergence = 4.0
    config.lr_find_options.smoothing = 0.98
    config.lr_find_options.apply = False

    # Added last, so older experiment files and config.json keep working.
    config.eval = ml_collections.ConfigDict()
    # How two-class runs decide (kft/tasks/classification/threshold.py):
    # "auto" tunes the threshold on P(class 1) that maximizes macro-F1 on
    # the validation split (argmax without one), "argmax" turns it off,
    # and a number as text ("0.3") fixes it. Applied to the test metrics,
    # kft-evaluate and the export's class_id and label.
    config.eval.threshold = "auto"
    # task=multilabel uses the same setting per label: "auto" tunes each
    # label's threshold on its validation F1 (0.5 without validation data),
    # a number fixes all, "argmax" is 0.5 for all; stored in thresholds.json.

    # LiteRT (.tflite) export of a classifier at the end of the run, into
    # MODEL_DIR/litert/ (kft/serving/litert.py, docs/litert.md): "" (none),
    # "none" (float32), "float16", "dynamic" (int8 weights) or "int8" (full
    # integer, calibrated on training examples); kft-export --format=litert
    # writes one later. `integer_io` (int8): int8 probabilities out.
    config.litert = ml_collections.ConfigDict()
    config.litert.quantization = ""
    config.litert.integer_io = False

    # task=regression (kft/tasks/regression.py): the loss, "mse" or "huber"
    # (with `huber_delta`, in standardized units when scaling), and the
    # target scaling, "standardize" (the loss sees (y - mean) / std of the
    # training targets; the model still outputs the original units, as
    # its last layer undoes it) or "none". target_scaling.json keeps them.
    config.regression = ml_collections.ConfigDict()
    config.regression.loss = "mse"
    config.regression.huber_delta = 1.0
    config.regression.scaling = "standardize"

    # task=qa (kft/tasks/qa/task.py): contexts longer than the sequence length
    # (0 picks 384, capped by the backbone) are cut into windows whose
    # starts are `stride` tokens apart (at most a window's context room, so
    # no context is skipped: windows then abut); an answer is at most
    # `max_answer_length` tokens. null_threshold: "auto" tunes the
    # no-answer threshold on validation when a question there has no
    # answer (SQuAD v2), "none" always answers, a number fixes it.
    config.qa = ml_collections.ConfigDict()
    config.qa.stride = 128
    config.qa.max_answer_length = 30
    config.qa.null_threshold = "auto"

    # task=causal_lm (kft/tasks/causal_lm/task.py): a keras-hub CausalLM
    # preset (or local preset folder) fine-tuned on .txt (documents split
    # by blank lines) or .jsonl with prompt_column and response_column (the
    # loss counts response tokens only); short examples are packed into
    # rows of data.sequence_length tokens (0 picks 256). lora: "auto" trains
    # rank-`lora_rank` adapters on backbones of 1B parameters or more,
    # "on" always, "off" never. Sampling for the report's `samples`
    # generations, kft-generate and the export: sampler greedy, top_k,
    # top_p or random, with top_k, top_p and temperature; max_length
    # counts the prompt's tokens too.
    config.lm = ml_collections.ConfigDict()
    config.lm.prompt_column = "prompt"
    config.lm.response_column = "response"
    config.lm.packing = True
    config.lm.lora = "auto"
    config.lm.lora_rank = 8
    config.lm.sampler = "greedy"
    config.lm.top_k = 50
    config.lm.top_p = 0.9
    config.lm.temperature = 1.0
    config.lm.max_length = 128
    config.lm.samples = 4

    # Resuming (kft/core/checkpoint.py): rerunning kft-train on the same
    # --model_dir resumes from the last good checkpoint, at the same step,
    # optimizer state, data order and random state. false refuses a folder
    # that holds a run (kft-train --overwrite starts over).
    config.resume = True
    # Op determinism and fixed seeds: a run killed and resumed ends with
    # weights bitwise equal to an uninterrupted run's (slower on GPUs).
    config.deterministic = False
    config.checkpoint = ml_collections.ConfigDict()
    # A checkpoint every N optimizer steps (0: epoch ends only) and at every
    # epoch end; the last `keep` are kept, and the best weights apart.
    config.checkpoint.every_steps = 200
    config.checkpoint.keep = 2
    # A finished run deletes them (best.weights.h5 stays, which every
    # command reads); true keeps them, as a run still in progress has them.
    config.checkpoint.keep_after_finish = False
    # A NaN or Inf loss restores the last good checkpoint and retries at
    # the phase's learning rate times `nan_lr_factor`, at most
    # `nan_retries` times, then stops naming the step and the rate.
    config.checkpoint.nan_retries = 2
    config.checkpoint.nan_lr_factor = 0.3
    return config


def _parse_bool(text):
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _parse_value(text, current):
    """Parses `text` into the type of the field's current value."""
    if isinstance(current, bool):
        return _parse_bool(text)
    if isinstance(current, int):
        return int(text)
    if isinstance(current, float):
        return float(text)
    if isinstance(current, list | tuple):
        if text.strip().startswith("["):
            return type(current)(json.loads(text))
        return type(current)(p.strip() for p in text.split(",") if p.strip())
    return text


def _known_keys(config, prefix=""):
    keys = []
    for key, value in config.items():
        if isinstance(value, ml_collections.ConfigDict):
            keys += _known_keys(value, prefix + key + ".")
        else:
            keys.append(prefix + key)
    return keys


def override(config, key, text):
    """Sets dotted `key` of `config` from the string `text`, type-checked."""
    known = _known_keys(config)
    if key not in known:
        hint = close_matches(key, known)
        raise UserError(
            f"unknown config key '{key}'; {hint} (kft-train --list=keys "
            "lists every key, with its default and what it does)"
        )
    *parents, leaf = key.split(".")
    node = config
    for part in parents:
        node = node[part]
    current = node[leaf]
    if key == "jit_compile":  # "auto" or a bool (of any type in Python)
        current = "auto" if text == "auto" else False
    try:
        node[leaf] = _parse_value(text, current)
    except (ValueError, TypeError, json.JSONDecodeError) as error:
        kind = (
            "bool or auto" if key == "jit_compile" else type(current).__name__
        )
        raise UserError(
            f"bad value '{text}' for config key '{key}' "
            f"(expects {kind}): {error}"
        ) from None


def apply_overrides(config, overrides):
    """Applies (key, text) pairs in order and returns the config."""
    for key, text in overrides:
        override(config, key, text)
    return config


def unpair_held_out(experiment, config, overrides):
    """Clears the experiment's validation and test specs where the user
    names other training data and not those: they go with the
    experiment's own training data (SQuAD's dev set with SQuAD, the demo's
    test reviews with its reviews), so the user's data holds its own out.
    Returns the log lines saying so."""
    keys = {key for key, _ in overrides}
    if "data.train" not in keys or config.data.train == experiment.data.train:
        return []
    notes = []
    for name in ("validation", "test"):
        spec = experiment.data[name]
        if spec and f"data.{name}" not in keys:
            config.data[name] = ""
            notes.append(
                f"data.{name} {spec} goes with the experiment's training "
                f"data, not {config.data.train}: holding out a {name} split "
                f"of yours (--config.data.{name}=FILE gives one)"
            )
    return notes


def check_complete(config):
    """Raises UserError where a new field was added to the defaults' tree."""
    known = set(_known_keys(default_config()))
    extra = sorted(set(_known_keys(config)) - known)
    if extra:
        raise UserError(
            f"experiment sets unknown config keys: {', '.join(extra)}"
        )


def to_json(config):
    return json.dumps(config.to_dict(), indent=2, sort_keys=True)


def from_json(text):
    config = default_config()
    _update(config, json.loads(text))
    return config


def _update(config, values):
    for key, value in values.items():
        if isinstance(value, dict):
            _update(config[key], value)
        else:
            config[key] = value
