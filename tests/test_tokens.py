"""Token classification (NER): readers, word-piece alignment, the
entity metrics against seqeval, the export's span decoding, and runs on a
tiny BERT (in-process with export, and through kft-train).

No package on PyPI was found to ship a tagged corpus inside its wheel, so
the corpus is generated here: template sentences with person and place
names, some of two words or two word pieces.
"""

import json

import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_run_contract, predict_cli, train_cli

from kft import commands, run
from kft import config as config_lib
from kft.core.errors import UserError
from kft.tasks.tokens import data as tokens
from kft.tasks.tokens import entities
from kft.tasks.tokens import export as token_export

NER_VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    "john", "mary", "ann", "smith", "paris", "rome", "oslo", "went",
    "to", "lives", "in", "met", "the", "city", "of", "##s", ".",
]  # fmt: skip
PEOPLE = [["john"], ["mary"], ["ann", "smith"], ["johns"], ["mary", "smith"]]
PLACES = [["paris"], ["rome"], ["oslo"], ["the", "city", "of", "rome"]]


def _tagged(words, kind, scheme):
    if kind is None:
        return [(word, "O") for word in words]
    if scheme == "bioes" and len(words) == 1:
        return [(words[0], f"S-{kind}")]
    tags = [f"B-{kind}"] + [f"I-{kind}"] * (len(words) - 1)
    if scheme == "bioes":
        tags[-1] = f"E-{kind}"
    return list(zip(words, tags))


def make_sentences(count, seed=0, scheme="bio", people=None, places=None):
    """Tagged template sentences: (words, tags) lists, with names drawn
    from `people` and `places` (PEOPLE and PLACES by default)."""
    rng = np.random.default_rng(seed)
    people, places = people or PEOPLE, places or PLACES
    words, tags = [], []
    for _ in range(count):
        person = people[rng.integers(len(people))]
        other = people[rng.integers(len(people))]
        place = places[rng.integers(len(places))]
        template = rng.integers(3)
        if template == 0:
            parts = [(person, "PER"), (["went", "to"], None), (place, "LOC")]
        elif template == 1:
            parts = [(person, "PER"), (["lives", "in"], None), (place, "LOC")]
        else:
            parts = [(person, "PER"), (["met"], None), (other, "PER")]
        pairs = [p for ws, kind in parts for p in _tagged(ws, kind, scheme)]
        pairs.append((".", "O"))
        words.append([w for w, _ in pairs])
        tags.append([t for _, t in pairs])
    return words, tags


def write_conll(path, words, tags):
    lines = ["-DOCSTART- -X- -X- O", ""]
    for sentence, sentence_tags in zip(words, tags):
        lines += [f"{w} NN {t}" for w, t in zip(sentence, sentence_tags)]
        lines.append("")
    path.write_text("\n".join(lines))
    return str(path)


@pytest.fixture(scope="module")
def ner_bert(tmp_path_factory):
    """A 2-layer BERT over NER_VOCAB, saved as a local preset."""
    import keras_hub

    folder = tmp_path_factory.mktemp("ner_bert")
    keras_hub.models.BertBackbone(
        vocabulary_size=len(NER_VOCAB),
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=32,
    ).save_to_preset(str(folder))
    keras_hub.models.BertTokenizer(vocabulary=NER_VOCAB).save_to_preset(
        str(folder)
    )
    return str(folder)


@pytest.fixture(scope="module")
def conll_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("conll")
    train = write_conll(folder / "train.conll", *make_sentences(96, seed=1))
    test = write_conll(folder / "test.conll", *make_sentences(24, seed=2))
    return train, test


def _data_config(**values):
    config = config_lib.default_config().data
    for key, value in values.items():
        config[key] = value
    return config


# === Readers ===


def test_conll_reader_skips_docstart_and_splits_on_blank_lines():
    text = "-DOCSTART- -X- O\n\nJohn NNP B-PER\nran VB O\n\n\nOslo B-LOC\n"
    words, tags = tokens.read_conll(text, "x")
    assert words == [["John", "ran"], ["Oslo"]]
    assert tags == [["B-PER", "O"], ["B-LOC"]]


def test_jsonl_reader_and_its_column_keys(tmp_path):
    path = tmp_path / "train.jsonl"
    rows = [{"words": ["Ann", "left"], "labels": ["B-PER", "O"]}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = _data_config(tags_column="labels")
    split = tokens.read_spec(str(path), config)
    assert split.words == [["Ann", "left"]] and split.tags == [["B-PER", "O"]]
    with pytest.raises(UserError, match="no tags named tags or ner_tags"):
        tokens.read_spec(str(path), _data_config())


@pytest.mark.parametrize(
    "text, scheme, message",
    [
        ("John B-PER\nran\n", "bio", "has no tag"),
        ("John PER\n", "bio", "tag 'PER' is not in the bio scheme"),
        ("John E-PER\n", "bio", "tag 'E-PER' is not in the bio scheme"),
        ("John X-PER\n", "bioes", "tag 'X-PER' is not in the bioes"),
        ("John B-\n", "bio", "tag 'B-' is not in the bio scheme"),
        # Class ids, as Hugging Face exports of CoNLL-2003 write ner_tags.
        ("John 1\nSmith 2\n", "bio", "tag '1' is a number: kft reads tag "),
    ],
)
def test_bad_tags_are_one_line_user_errors(tmp_path, text, scheme, message):
    path = tmp_path / "bad.conll"
    path.write_text(text)
    with pytest.raises(UserError, match=message) as error:
        tokens.read_spec(str(path), _data_config(tag_scheme=scheme))
    assert "\n" not in str(error.value)


def test_word_and_tag_counts_must_match(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"tokens": ["a", "b"], "tags": ["O"]}) + "\n")
    with pytest.raises(UserError, match="sentence 1: 2 words but 1 tags"):
        tokens.read_spec(str(path), _data_config())


def test_tfds_conll2003_is_read_with_its_class_label_tags(tmp_path):
    """TFDS's CoNLL builder with conll2003's config (its parser and
    features: tokens, pos, chunks, ner as ClassLabel ids) on a local file
    in that format, loaded as a user loads tfds:conll2003."""
    import tensorflow_datasets as tfds
    from etils import epath
    from tensorflow_datasets.core.dataset_builders.conll import (
        conll_dataset_builder_utils as conll_lib,
    )

    words, tags = make_sentences(6, seed=3)
    lines = ["-DOCSTART- -X- -X- O", ""]
    for sentence, sentence_tags in zip(words, tags):
        lines += [f"{w} NN B-NP {t}" for w, t in zip(sentence, sentence_tags)]
        lines.append("")
    source = tmp_path / "train.txt"
    source.write_text("\n".join(lines))

    class KftConll2003(tfds.dataset_builders.ConllDatasetBuilder):
        """conll2003's builder config (features, tags) on a local file."""

        VERSION = tfds.core.Version("1.0.0")
        BUILDER_CONFIGS = [conll_lib.CONLL_2003_CONFIG]
        # Where TFDS reads README/CITATIONS files (none here): a class
        # inside a test module has no package to find them in.
        pkg_dir_path = epath.Path(str(tmp_path))

        def _info(self):
            return self.create_dataset_info(
                description="CoNLL-2003 format", citation="", homepage=""
            )

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(source)}

    KftConll2003(data_dir=str(tmp_path)).download_and_prepare()
    config = _data_config(tfds_data_dir=str(tmp_path))
    split = tokens.read_spec("tfds:kft_conll2003:train", config)
    assert sorted(split.words) == sorted(words)
    assert sorted(map(tuple, split.tags)) == sorted(map(tuple, tags))
    with pytest.raises(UserError, match="cannot load tfds:kft_no_such"):
        tokens.read_spec("tfds:kft_no_such:train", config)


# === Word-piece alignment ===


def test_first_pieces_carry_the_tags_and_the_rest_is_masked(ner_bert):
    import keras_hub

    tokenizer = keras_hub.models.BertTokenizer.from_preset(ner_bert)
    ids = {token: i for i, token in enumerate(NER_VOCAB)}
    words = tf.ragged.constant([["johns", "went", "to", "oslo"], ["mary"]])
    tag_ids = tf.ragged.constant([[1, 0, 0, 3], [1]])
    inputs, positions = tokens.encode_words(tokenizer, words, 8)
    assert inputs["token_ids"].numpy().tolist() == [
        [2, ids["john"], ids["##s"], ids["went"], ids["to"], ids["oslo"], 3, 0],
        [2, ids["mary"], 3, 0, 0, 0, 0, 0],
    ]
    assert positions.to_list() == [[1, 3, 4, 5], [1]]
    labels = tokens.word_labels(positions, tag_ids, 8).numpy()
    assert labels.tolist() == [
        [-1, 1, -1, 0, 0, 3, -1, -1],
        [-1, 1, -1, -1, -1, -1, -1, -1],
    ]
    assert inputs["padding_mask"].numpy().sum(axis=1).tolist() == [7, 3]


def test_truncation_drops_the_last_pieces_and_their_words(ner_bert):
    import keras_hub

    tokenizer = keras_hub.models.BertTokenizer.from_preset(ner_bert)
    words = tf.ragged.constant([["went", "johns", "to"]])
    inputs, positions = tokens.encode_words(tokenizer, words, 4)
    # [CLS] went john [SEP]: "##s" and "to" do not fit.
    assert inputs["token_ids"].numpy()[0, -1] == 3
    assert positions.to_list() == [[1, 2, -1]]
    labels = tokens.word_labels(positions, tf.ragged.constant([[0, 1, 0]]), 4)
    assert labels.numpy().tolist() == [[-1, 0, 1, -1]]


def test_words_split_as_python_splits_them_with_character_offsets():
    texts = ["  Ann  went\tto Óslo ", "", "é x\u00a0y"]
    words, starts, ends = token_export.split_words(tf.constant(texts))
    for row, text in enumerate(texts):
        expected = text.split()
        got = [w.decode() for w in words[row].numpy()]
        assert got == expected
        spans = zip(starts[row].numpy(), ends[row].numpy())
        assert [text[a:b] for a, b in spans] == expected


# === Entity metrics against seqeval ===


def _random_tags(rng, scheme, sentences=40):
    prefixes = entities.SCHEMES[scheme]
    vocabulary = ["O"] + [f"{p}-{k}" for p in prefixes for k in ("PER", "LOC")]
    return [
        [str(t) for t in rng.choice(vocabulary, size=int(rng.integers(1, 9)))]
        for _ in range(sentences)
    ]


def _assert_matches_seqeval(report, strict, y_true, y_pred, scheme):
    from seqeval import metrics as seqeval_metrics
    from seqeval import scheme as seqeval_scheme

    figures, per_type = report
    options = {}
    if strict:
        name = "IOB2" if scheme == "bio" else "IOBES"
        options = {"mode": "strict", "scheme": getattr(seqeval_scheme, name)}
    expected = seqeval_metrics.classification_report(
        y_true, y_pred, output_dict=True, zero_division=0, **options
    )
    for kind, row in per_type.items():
        want = expected.get(kind, {"support": 0})
        assert row["support"] == want["support"], kind
        for key in ("precision", "recall", "f1-score"):
            assert row[key.replace("-score", "")] == pytest.approx(
                want.get(key, 0.0)
            )
    micro = expected["micro avg"]
    assert figures["precision"] == pytest.approx(micro["precision"])
    assert figures["recall"] == pytest.approx(micro["recall"])
    assert figures["f1"] == pytest.approx(micro["f1-score"])


@pytest.mark.parametrize("scheme", ["bio", "bioes"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_entity_figures_equal_seqeval_default_and_strict(scheme, seed):
    rng = np.random.default_rng(seed)
    y_true = _random_tags(rng, scheme)
    y_pred = [
        [t if rng.random() < 0.7 else str(rng.choice(s)) for t in s]
        for s in y_true
    ]
    default = entities.scores(y_true, y_pred)
    _assert_matches_seqeval(default, False, y_true, y_pred, scheme)
    strict = entities.scores(
        y_true, y_pred, lambda tags: entities.strict_entities(tags, scheme)
    )
    _assert_matches_seqeval(strict, True, y_true, y_pred, scheme)
    report = entities.entity_report(y_true, y_pred, scheme, "test")
    assert report["f1"] == default[0]["f1"]
    assert report["strict"]["f1"] == strict[0]["f1"]


def test_spans_equal_seqeval_get_entities():
    from seqeval.metrics.sequence_labeling import get_entities

    rng = np.random.default_rng(5)
    for tags in _random_tags(rng, "bioes", 200):
        assert entities.entities(tags) == get_entities(tags)


def test_graph_decoding_finds_the_spans_python_finds():
    """The export's vectorized decoding against `entities.entities`."""
    rng = np.random.default_rng(7)
    labels = ["O"] + [
        f"{p}-{k}" for k in ("LOC", "PER") for p in ("B", "I", "E", "S")
    ]
    sentences = [
        rng.integers(len(labels), size=int(rng.integers(0, 7)))
        for _ in range(1000)
    ]
    ids = np.concatenate(sentences).astype(np.int32)
    best = rng.random(len(ids)).astype(np.float32)
    lengths = [len(s) for s in sentences]
    rows = np.repeat(np.arange(len(sentences)), lengths)
    starts = np.cumsum([0] + lengths[:-1])
    first = np.isin(np.arange(len(ids)), starts[np.array(lengths) > 0])
    ends = np.cumsum(lengths) - 1
    last = np.isin(np.arange(len(ids)), ends[np.array(lengths) > 0])
    got_rows, got_first, got_last, names, scores = (
        t.numpy()
        for t in token_export.decode_entities(
            tf.constant(ids), tf.constant(best), rows, first, last, labels
        )
    )
    expected = []
    for row, sentence in enumerate(sentences):
        offset = starts[row]
        for kind, a, b in entities.entities([labels[i] for i in sentence]):
            score = best[offset + a : offset + b + 1].mean()
            expected.append((row, offset + a, offset + b, kind, score))
    got = list(zip(got_rows, got_first, got_last, names, scores))
    assert [g[:3] for g in got] == [e[:3] for e in expected]
    assert [g[3].decode() for g in got] == [e[3] for e in expected]
    # Thousands of words: a running sum's float32 error would show here.
    np.testing.assert_allclose(
        [g[4] for g in got], [e[4] for e in expected], rtol=0, atol=1e-6
    )


# === Runs ===


def _run_config(ner_bert, conll_files):
    from kft.core import experiments

    config = experiments.load("token_classifier")
    config.backbone = ner_bert
    config.data.train, config.data.test = conll_files
    config.data.batch_size = 16
    config.epochs = 2
    config.learning_rate = 3e-3
    config.verbose = 0
    return config


def test_tiny_bert_run_trains_evaluates_and_exports(
    ner_bert, conll_files, tmp_path
):
    config = _run_config(ner_bert, conll_files)
    config.export = False  # exported below as kft-export does
    report = run.train(config, str(tmp_path / "run"))
    folder = tmp_path / "run"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["num_examples"] == 24 and metrics["task"] == "tokens"
    written = json.loads((folder / "config.json").read_text())
    assert written["data"]["split_seed"] == config.seed  # for a rerun
    assert set(metrics["per_type"]) == {"LOC", "PER"}
    assert metrics["f1"] == report["f1"] and 0.0 <= metrics["f1"] <= 1.0
    assert (folder / "labels.txt").read_text().split() == [
        "O", "B-LOC", "I-LOC", "B-PER", "I-PER"
    ]  # fmt: skip
    assert "Per-type precision" in (folder / "report.html").read_text()
    history = (folder / "history.csv").read_text()
    assert "val_accuracy" in history and "val_macro_f1" in history
    predictions = [
        json.loads(line)
        for line in (folder / "predictions.jsonl").read_text().splitlines()
    ]
    truth = [row["tags"] for row in predictions]
    guess = [row["predicted"] for row in predictions]
    assert (
        entities.entity_report(truth, guess, "bio", "test")["f1"]
        == (metrics["f1"])
    )
    # kft-export's path, then the export reloaded by kft-predict in a
    # fresh process (TF and TF Text only).
    exported = commands.export_run(str(folder), str(folder / "export"))
    assert exported == str(folder / "export" / "1")
    check = json.loads(
        (folder / "export" / "1" / "kft_export_check.json").read_text()
    )
    assert check["span_mismatches"] == 0 and check["examples"] == 24
    texts = ["mary went to  paris .", "", "Ann Smith met johns"]
    source = tmp_path / "texts.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    _, lines = predict_cli(folder, source)
    assert [line["input"] for line in lines] == texts
    assert lines[1]["entities"] == []
    for text, line in zip(texts, lines):
        for entity in line["entities"]:
            assert entity["text"] == text[entity["start"] : entity["end"]]
            assert entity["type"] in ("PER", "LOC")
            assert 0.0 < entity["score"] <= 1.0
    # kft-evaluate's path: the same figures from the run's weights.
    again = commands.evaluate_run(str(folder))
    assert again["f1"] == pytest.approx(metrics["f1"])
    # A file with a tag the model never learned: one line, as kft-train.
    unseen = tmp_path / "unseen.conll"
    unseen.write_text("Acme B-ORG\nCorp I-ORG\nhired O\nAnn B-PER\n")
    with pytest.raises(UserError, match="tags the training data lacks: B-ORG"):
        commands.evaluate_run(str(folder), [("data.test", str(unseen))])


def test_kft_train_token_classifier_end_to_end(ner_bert, conll_files, tmp_path):
    train, test = conll_files
    result = train_cli(
        tmp_path / "cli",
        f"--config.backbone={ner_bert}",
        f"--config.data.train={train}",
        f"--config.data.test={test}",
        "--config.data.batch_size=16",
        "--config.learning_rate=3e-3",
        "--config.epochs=1",
        "--config.export=false",
        experiment="token_classifier",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    assert {"precision", "recall", "f1", "per_type", "strict"} <= set(metrics)
    assert "micro" in result.stdout
    assert_run_contract(tmp_path / "cli")


def test_a_bad_tag_stops_the_run_before_training(ner_bert, tmp_path):
    bad = tmp_path / "bad.conll"
    bad.write_text("John B-PER\nleft O\n\nAnn PER\n")
    config = _run_config(ner_bert, (str(bad), str(bad)))
    config.data.tag_scheme = "bioes"
    with pytest.raises(UserError, match="sentence 2: tag 'PER' is not in"):
        run.train(config, str(tmp_path / "bad_run"))


def test_real_minilm_learns_to_tag(tmp_path):
    """The real MiniLM weights fine-tuned for a few steps on the corpus."""
    from kft.core import assets, experiments

    if not assets.is_present("minilm"):
        pytest.skip("MiniLM asset absent; run kft-fetch minilm")
    train = write_conll(tmp_path / "train.conll", *make_sentences(32, seed=1))
    test = write_conll(tmp_path / "test.conll", *make_sentences(8, seed=2))
    config = experiments.load("token_classifier")
    config.backbone = str(assets.path("minilm"))
    config.data.train, config.data.test = train, test
    config.data.validation_fraction = 0.0
    config.data.batch_size = 16
    config.epochs = 2
    config.learning_rate = 1e-4
    config.export = False
    config.verbose = 0
    report = run.train(config, str(tmp_path / "run"))
    history = (tmp_path / "run" / "history.csv").read_text().splitlines()
    header = history[0].split(",")
    losses = [
        float(row.split(",")[header.index("loss")]) for row in history[1:]
    ]
    assert len(losses) == 2 and losses[1] < losses[0]
    assert report["num_entities"] > 0 and 0.0 <= report["f1"] <= 1.0
