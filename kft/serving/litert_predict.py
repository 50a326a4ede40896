"""kft-predict on a LiteRT model: MODEL_DIR/litert/model_<mode>.tflite,
run by the LiteRT interpreter in this process.

The .tflite takes decoded images or packed token ids (kft/serving/
litert.py), so the inputs are prepared here as kft-train prepared them:
image files decoded and resized by the run's rule, texts cleaned and
tokenized by the run's own tokenizer (its `backbone/` preset, else
`--config.backbone`). That needs the run folder around the model (its
config.json two levels up); labels.txt is read beside the model.
Answers are what a SavedModel's are: `probabilities`, `class_id`, `label`.
"""

import os

import numpy as np

from kft.core import files, run_folder
from kft.core.errors import UserError
from kft.serving import check as check_lib
from kft.serving import litert


def _dequantize(values, details):
    scale, zero = details["quantization"]
    values = np.asarray(values)
    if scale and values.dtype in (np.int8, np.uint8):
        return (values.astype(np.float32) - zero) * scale
    return values


class Predictor:
    """A .tflite classifier of a kft run, as kft-predict runs it.

    `names` are the inputs kft-predict reads (`image_bytes`: image files;
    `text`, `text_pair`: text columns), `labels` the class names.
    """

    def __init__(self, path):
        import tensorflow as tf

        local = files.is_local(path)
        folder = os.path.dirname(os.path.abspath(path) if local else path)
        run_dir = os.path.dirname(folder)
        if not files.exists(os.path.join(run_dir, "config.json")):
            raise UserError(
                f"{path} is not inside a kft run's litert/ folder; "
                "kft-predict prepares a .tflite's inputs by its run's "
                "config.json (MODEL_DIR/litert/model_<mode>.tflite)"
            )
        config = run_folder.read_config(run_dir)
        labels = os.path.join(folder, litert.LABELS_FILE)
        self.labels = files.read_text(labels).splitlines()
        try:
            interpreter = tf.lite.Interpreter(
                model_content=files.read_bytes(path)
            )
            self.runner = interpreter.get_signature_runner(check_lib.SERVING)
        except ValueError as error:
            message = f"{path} does not load as LiteRT: {error}"
            raise UserError(message) from None
        self.inputs = self.runner.get_input_details()
        self.outputs = self.runner.get_output_details()
        self.is_image = list(self.inputs) == ["image"]
        if self.is_image:
            self.size = int(self.inputs["image"]["shape_signature"][1])
            self.resize = config.data.resize
            self.names = ["image_bytes"]
            return
        self.names = ["text"]
        if config.data.text_pair_column:
            self.names.append("text_pair")
        self.preprocessor = _preprocessor(config, run_dir, self.inputs)

    def _feed(self, values):
        if self.is_image:
            images = litert.decode_images(values, self.size, self.resize)
            return {"image": images}
        texts, pairs = values, None
        if len(self.names) > 1:
            texts, pairs = [v[0] for v in values], [v[1] for v in values]
        return litert.pack_texts(
            self.preprocessor, list(self.inputs), list(texts), pairs
        )

    def answers(self, values):
        """One answer per value; an unreadable image spoils only its own."""
        import tensorflow as tf

        try:
            out = self.runner(**self._feed(values))
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as e:
            if len(values) == 1:
                return [{"error": e.message.splitlines()[0][:300]}]
            return [a for value in values for a in self.answers([value])]
        probabilities = _dequantize(
            out["probabilities"], self.outputs["probabilities"]
        )
        return [
            {
                "probabilities": row,
                "class_id": int(class_id),
                "label": self.labels[int(class_id)].encode("utf-8"),
            }
            for row, class_id in zip(probabilities, out["class_id"])
        ]


def _preprocessor(config, run_dir, inputs):
    """The run's tokenizer and packer, at the model's sequence length."""
    from kft.model import backbones, preprocessing

    preset = os.path.join(run_dir, run_folder.BACKBONE_DIR)
    if not files.exists(preset):
        preset = backbones.resolve(config.backbone).name
    length = int(next(iter(inputs.values()))["shape_signature"][1])
    return preprocessing.text_preprocessor(
        preset, length, config.data.clean_text
    )
