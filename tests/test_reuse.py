"""Every run leaves a backbone a next fine-tune starts from: a keras-hub
preset folder (MODEL_DIR/backbone/) for `--config.backbone` and keras-hub's
`from_preset`, or a keras.applications weights file for `--config.weights`
(the file, or the run folder that holds it).
"""

import json

import numpy as np
import pytest
from conftest import make_texts, tiny_image_config, write_csv

import kft
from kft import commands, run
from kft.core import run_folder
from kft.core.errors import UserError
from kft.model import builder

QUIET = {"verbose": 0, "export": False, "epochs": 1, "plan": "full"}


def _arrays(model):
    return [np.asarray(w) for w in model.get_weights()]


def test_a_fine_tuned_text_backbone_is_fine_tuned_again(
    tiny_bert, text_csv, tmp_path
):
    import keras_hub

    first = tmp_path / "classify"
    kft.train(
        "text_classifier",
        str(first),
        {**QUIET, "backbone": tiny_bert, "data.train": text_csv[0]},
    )
    preset = first / run_folder.BACKBONE_DIR
    loaded = keras_hub.models.Backbone.from_preset(str(preset))
    config = commands.read_run_config(str(first))
    _, _, built = commands.load_run(str(first), config)
    for got, want in zip(_arrays(loaded), _arrays(built.backbone)):
        np.testing.assert_array_equal(got, want)
    pretrained = keras_hub.models.Backbone.from_preset(tiny_bert)
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(_arrays(pretrained), _arrays(loaded))
    ), "the preset holds the pretrained weights, not the fine-tuned ones"
    # A regression fine-tune of the fine-tuned backbone, from its folder.
    rows = [
        {"text": r["text"], "label": float(i % 5)}
        for i, r in enumerate(make_texts(40, seed=3))
    ]
    scores = write_csv(tmp_path / "scores.csv", rows)
    second = tmp_path / "regress"
    metrics = kft.train(
        "text_regressor",
        str(second),
        {**QUIET, "backbone": str(preset), "data.train": scores},
    )
    assert metrics["task"] == "regression" and metrics["mae"] is not None
    saved = json.loads((second / "config.json").read_text())
    assert saved["backbone"] == str(preset)


def test_a_fine_tuned_application_is_loaded_by_weights(image_folder, tmp_path):
    config = tiny_image_config(image_folder)
    config.epochs, config.export, config.verbose = 1, False, 0
    config.checkpoint.keep_after_finish = True
    model_dir = tmp_path / "images"
    run.train(config, str(model_dir))
    kept = [p.name for p in (model_dir / "checkpoints").glob("ckpt-*.json")]
    assert kept, "checkpoint.keep_after_finish=true keeps the resume state"
    weights = model_dir / run_folder.BACKBONE_FILE
    assert weights.is_file()
    again = tiny_image_config(image_folder)
    again.weights = str(weights)
    built = builder.build(again, 2)
    run_config = commands.read_run_config(str(model_dir))
    _, _, trained = commands.load_run(str(model_dir), run_config)
    for got, want in zip(_arrays(built.backbone), _arrays(trained.backbone)):
        np.testing.assert_array_equal(got, want)
    # The run folder itself names the same file.
    again.weights = str(model_dir)
    by_folder = builder.build(again, 2)
    for got, want in zip(_arrays(by_folder.backbone), _arrays(built.backbone)):
        np.testing.assert_array_equal(got, want)


def test_weights_folder_without_a_backbone_is_one_line(image_folder, tmp_path):
    config = tiny_image_config(image_folder)
    config.weights = str(tmp_path)
    with pytest.raises(UserError, match="holds no kft run's backbone"):
        builder.build(config, 2)
    config.weights = str(tmp_path / "nowhere")
    with pytest.raises(UserError, match="kft run folder"):
        builder.build(config, 2)
