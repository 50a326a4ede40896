"""The real MiniLM weights: one training step and a prediction.

Skips when the asset is absent (offline, not fetched); CI fetches it first.
"""

import keras
import numpy as np
import pytest

from kft import config as config_lib
from kft import data
from kft.core import assets, freeze, run_folder
from kft.model import builder
from kft.serving import export, parity
from kft.tasks.classification.task import TASK as CLASSIFICATION
from kft.tasks.qa import squad_metrics

pytestmark = pytest.mark.skipif(
    not assets.is_present("minilm"),
    reason="MiniLM asset absent; run kft-fetch minilm",
)


def test_minilm_trains_a_step_and_predicts():
    config = config_lib.default_config()
    config.backbone = str(assets.path("minilm"))
    built = builder.build(config, 3)
    assert type(built.backbone).__name__ == "BertBackbone"
    assert built.backbone.count_params() > 22_000_000
    built.preprocessor.sequence_length = 32
    inputs = built.preprocessor(
        ["This drug worked wonders for my pain.", "Terrible side effects."]
    )
    inputs = {k: np.asarray(v) for k, v in inputs.items()}
    tokens = inputs["token_ids"][0]
    assert tokens[0] == 101 and 102 in tokens  # [CLS] ... [SEP] of BERT
    phase = freeze.Phase("full", 1, ("head", "all"), 1e-4)
    freeze.apply_phase(built, phase, built.family.block_pattern)
    CLASSIFICATION.compile(built.model, "adam", config, 3)
    before = np.array(
        built.backbone.get_layer("transformer_layer_5").trainable_variables[0]
    )
    built.model.fit(inputs, np.array([2, 0]), epochs=1, verbose=0)
    after = np.array(
        built.backbone.get_layer("transformer_layer_5").trainable_variables[0]
    )
    assert not np.array_equal(before, after)
    probabilities = built.model.predict(inputs, verbose=0)
    assert probabilities.shape == (2, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_minilm_export_holds_the_weights_once_and_matches(tmp_path):
    config = config_lib.default_config()
    config.backbone = str(assets.path("minilm"))
    built = builder.build(config, 3)
    built.preprocessor.sequence_length = 64
    texts = ["It helped a lot.", "Awful headaches.", "", "ok " * 300]
    inputs = {k: np.asarray(v) for k, v in built.preprocessor(texts).items()}
    CLASSIFICATION.compile(built.model, "adam", config, 3)
    # A step so the optimizer holds slots: the export must not carry them.
    built.model.fit(inputs, np.array([2, 0, 1, 1]), epochs=1, verbose=0)
    weights = tmp_path / "model.weights.h5"
    run_folder.save_weights(built.model, str(weights))  # as kft-train does
    path, figures = export.export(
        built,
        ["negative", "neutral", "positive"],
        str(tmp_path / "export"),
        texts,
        weights_file=str(weights),
        log=print,
    )
    assert path.endswith("/1")
    assert figures["max_abs_difference"] <= 1e-5
    # Once, in float32: not twice, and not less (the file holds no slots).
    assert 0.95 <= figures["size_ratio"] <= 1.1, figures


def drug_questions(count):
    """Questions made from real reviews: which drug the reviewer names.

    The drug-review data's own drugName column is the answer wherever the
    review text names it."""
    import csv

    from kft.model.preprocessing import python_clean_text
    from kft.tasks.qa.squad import Example

    path = assets.path("drug_reviews") / "drugsComTrain.tsv"
    examples = []
    with open(path, newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file, delimiter="\t"):
            review = python_clean_text(row["review"]).strip('"')
            drug = row["drugName"]
            at = review.find(drug)
            if at < 0 or len(review) > 400:
                continue
            question = "Which drug did the reviewer take?"
            examples.append(
                Example(str(len(examples)), question, review, [(drug, at)])
            )
            if len(examples) == count:
                break
    return examples


@pytest.mark.skipif(
    not assets.is_present("drug_reviews"), reason="drug reviews absent"
)
def test_minilm_span_model_fine_tunes_on_real_questions():
    """MiniLM's weights fine-tuned for a few steps on questions about real
    review texts (kft/tasks/qa/spans.py): the loss falls and every answer is a
    span
    of its context; the SQuAD figures are printed, not asserted."""
    import keras

    from kft.model import backbones
    from kft.tasks.qa import spans as qa

    examples = drug_questions(48)
    assert len(examples) == 48
    train, held_out = examples[:32], examples[32:]
    keras.utils.set_random_seed(0)
    source = backbones.resolve(str(assets.path("minilm")))
    backbone, _ = backbones.load_hub_backbone(source)
    preprocessor = builder._hub_text_preprocessor(source, backbone, False)
    tokenizer = preprocessor.inner.tokenizer
    window_list, _ = qa.example_windows(train, tokenizer, 128, 64, True)
    inputs, labels = qa.span_inputs(window_list, 128, tokenizer.pad_token_id)
    model = qa.span_model(backbone)
    qa.compile_span_model(model, keras.optimizers.Adam(1e-4))
    history = model.fit(
        inputs, labels, batch_size=16, epochs=2, verbose=0, shuffle=False
    )
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    window_list, pieces = qa.example_windows(
        held_out, tokenizer, 128, 64, False
    )
    inputs, _ = qa.span_inputs(window_list, 128, tokenizer.pad_token_id)
    answers = qa.predict_answers(model, held_out, window_list, pieces, inputs)
    for example, answer in zip(held_out, answers):
        assert example.context[answer.start : answer.end] == answer.text
    scores = squad_metrics.squad_scores(
        [a.text for a in answers], [[t for t, _ in e.answers] for e in held_out]
    )
    print(f"MiniLM QA: loss {losses}; held out: {scores}")


def _condition_pairs(count):
    """Drug reviews paired with their own condition (match) or another."""
    if not assets.is_present("drug_reviews"):
        pytest.skip("drug-review asset absent; run kft-fetch drug_reviews")
    config = config_lib.default_config().data
    config.text_column, config.label_column = "review", "condition"
    records = data.read_spec(
        str(assets.path("drug_reviews") / "drugsComTrain.tsv"), config
    )
    reviews, conditions = records.values[:count], records.labels[:count]
    others = sorted(set(records.labels))
    pairs, labels = [], []
    for index, condition in enumerate(conditions):
        if index % 2:
            other = others[(others.index(condition) + 7) % len(others)]
            pairs.append(other)
            labels.append(0)
        else:
            pairs.append(condition)
            labels.append(1)
    return data.Split("train", "drug reviews", reviews, np.array(labels), pairs)


def test_minilm_fine_tunes_on_pairs_and_serves_them(tmp_path):
    split = _condition_pairs(16)
    config = config_lib.default_config()
    config.backbone = str(assets.path("minilm"))
    config.data.text_pair_column = "condition"
    built = builder.build(config, 2)
    assert built.pairs
    built.preprocessor.sequence_length = 48
    inputs = built.preprocessor(split.values, split.pairs)
    segments = np.asarray(inputs["segment_ids"])
    mask = np.asarray(inputs["padding_mask"])
    assert mask.sum(axis=1).max() == 48  # long reviews are cut ...
    assert (segments == 1).sum(axis=1).min() >= 2  # ... the condition kept
    inputs = {k: np.asarray(v) for k, v in inputs.items()}
    phase = freeze.Phase("full", 1, ("head", "all"), 1e-4)
    freeze.apply_phase(built, phase, built.family.block_pattern)
    CLASSIFICATION.compile(built.model, keras.optimizers.Adam(1e-4), config, 2)
    before = built.model.evaluate(inputs, split.label_ids, verbose=0)[0]
    built.model.fit(inputs, split.label_ids, epochs=3, verbose=0)
    after = built.model.evaluate(inputs, split.label_ids, verbose=0)[0]
    assert after < before
    sample = parity.sample_inputs(split, "text")
    path, figures = export.export(
        built, ["other", "match"], str(tmp_path / "export"), sample
    )
    assert figures["max_abs_difference"] <= parity.tolerance("float32")
    assert set(figures["signatures"]["serving_default"]["inputs"]) == {
        "text",
        "text_pair",
    }
