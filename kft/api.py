"""kft from Python: what kft-train and kft-predict do, as functions.

    import kft

    metrics = kft.train(
        "text_classifier",
        "runs/reviews",
        {"backbone": "~/minilm", "data.train": "reviews.csv"},
    )
    model = kft.load("runs/reviews")   # the run's newest checked export
    model.predict(["a fine film", "dull"])
    # [{"input": "a fine film", "label": "positive", "class_id": 1,
    #   "probabilities": [...]}, ...]

`predict` runs the exported SavedModel, as kft-predict and TF Serving do,
so Python, the command line and a server decide alike: a two-class run's
tuned threshold, a multilabel run's thresholds, a QA run's no-answer
threshold are inside the export. Errors a user can cause raise
`kft.UserError` with the one line kft-train would print.
"""

import os

from kft import config as config_lib
from kft import run
from kft.core import experiments, files, run_folder
from kft.core.errors import UserError
from kft.serving import predict as predict_lib
from kft.serving import publish


def configure(experiment="", overrides=None):
    """The resolved config of `experiment` (a name from
    `kft-train --list=experiments`, or a .py file; "" for the defaults)
    with `overrides`, a dict of dotted keys (`{"data.train": "x.csv",
    "epochs": 3}`) or (key, value) pairs, applied and checked as
    `--config.KEY=VALUE` flags are."""
    resolved = (
        experiments.load(experiment)
        if experiment
        else config_lib.default_config()
    )
    if isinstance(overrides, dict) or overrides is None:
        overrides = (overrides or {}).items()
    pairs = [(key, _text(value)) for key, value in overrides]
    experiment_config = resolved.copy_and_resolve_references()
    config_lib.apply_overrides(resolved, pairs)
    for note in config_lib.unpair_held_out(experiment_config, resolved, pairs):
        print(f"kft: {note}", flush=True)
    config_lib.check_values(resolved)
    return resolved


def _text(value):
    """A Python value as the text a --config flag would carry."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value)


def train(experiment="", model_dir="", overrides=None, overwrite=False):
    """Fine-tunes as `kft-train --experiment=EXPERIMENT
    --model_dir=MODEL_DIR --config.KEY=VALUE...` does; returns the
    metrics.json dict (None after an lr_find sweep alone)."""
    if not model_dir:
        raise UserError("model_dir is required: the run folder to write")
    return run.train(configure(experiment, overrides), model_dir, overwrite)


def latest_export(model_dir):
    """The newest complete export of a run (`MODEL_DIR/export/<N>`)."""
    path = publish.newest_checked(model_dir)
    if path is None and not files.exists(
        os.path.join(model_dir, run_folder.WEIGHTS_FILE)
    ):
        raise UserError(
            f"{model_dir} holds no export and no best weights: the run there "
            "did not finish (rerun its kft-train command to finish it)"
        )
    if path is None:
        raise UserError(
            f"{model_dir} holds no checked export; run kft-export "
            f"--model_dir={model_dir} "
            f"--export_dir={os.path.join(model_dir, 'export')}, or pass a "
            "SavedModel folder"
        )
    return path


class Model:
    """An exported kft model, answering as kft-predict does."""

    def __init__(self, saved_model):
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (registers the text ops)

        self.path = saved_model
        self._serve = predict_lib.signature(
            tf.saved_model.load(saved_model), saved_model
        )
        self.inputs = predict_lib.input_names(self._serve)
        self.labels = predict_lib.label_names(saved_model)

    def predict(self, inputs, batch_size=64):
        """One dict per input, as kft-predict's lines. `inputs`: texts;
        (text, text_pair) tuples for a pair model; image file paths; for
        QA {"question", "context"} dicts; for a causal LM prompts. One
        text (or dict) alone is one input: a list of one answer."""
        is_image = self.inputs == ["image_bytes"]
        if isinstance(inputs, str | dict):
            inputs = [inputs]
        values = [self._value(v, i) for i, v in enumerate(inputs)]
        lines = []
        for start in range(0, len(values), max(1, batch_size)):
            batch = values[start : start + batch_size]
            answers = predict_lib.answers(
                self._serve, self.inputs, batch, is_image
            )
            lines += [
                predict_lib.line(value, answer, self.labels, self.inputs)
                for value, answer in zip(batch, answers)
            ]
        return lines

    def _value(self, value, index):
        parts = value.values() if isinstance(value, dict) else value
        if not isinstance(value, list | tuple | dict):
            parts = [value]
        for part in parts:
            if not isinstance(part, str):
                what = (
                    "image file paths"
                    if self.inputs == ["image_bytes"]
                    else "texts"
                )
                raise UserError(
                    f"predict takes {what} (str); input {index} holds "
                    f"{type(part).__name__} {part!r:.40}"
                )
        if isinstance(value, dict):
            missing = [name for name in self.inputs if name not in value]
            if missing:
                raise UserError(
                    f"an input lacks {', '.join(missing)}; this export "
                    f"takes {', '.join(self.inputs)}"
                )
            return tuple(value[name] for name in self.inputs)
        return self._positional(list(parts), index)

    def _positional(self, parts, index):
        """A text or a tuple of texts, in the order the export's inputs
        have only for one text or a (text, text_pair): any other inputs
        (a question and its context) are named, not guessed."""
        names = ", ".join(self.inputs)
        if len(self.inputs) > 1 and self.inputs != ["text", "text_pair"]:
            raise UserError(
                f"input {index} is not named; give this export's inputs as "
                f"dicts with keys {names}"
            )
        if len(parts) != len(self.inputs):
            texts = "text" if len(parts) == 1 else "texts"
            raise UserError(
                f"input {index} holds {len(parts)} {texts}; this export "
                f"takes {names}"
            )
        return parts[0] if len(parts) == 1 else tuple(parts)


def load(path):
    """A `Model` of a SavedModel folder (BASE/N), of the newest checked
    version under an export base (BASE), or of a run folder's newest
    checked export."""
    if not isinstance(path, str | os.PathLike):
        raise UserError(
            f"kft.load takes a path (str or os.PathLike), not "
            f"{type(path).__name__}"
        )
    path = os.fspath(path)
    if files.exists(os.path.join(path, "saved_model.pb")):
        return Model(path)
    if path.endswith(".tflite"):
        raise UserError(
            f"kft.load reads SavedModels; run {path} with kft-predict "
            f"--saved_model={path}"
        )
    if not files.exists(path):
        raise UserError(f"not found: {path}")
    newest = publish.newest_in(path)
    if newest is not None:
        return Model(newest)
    if not any(
        files.exists(os.path.join(path, name))
        for name in ("config.json", "export")
    ):
        raise UserError(
            f"no SavedModel at {path}: expected a run folder, an export base "
            "holding numbered versions, or one version (BASE/N)"
        )
    return Model(latest_export(path))
