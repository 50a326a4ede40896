"""Question-answering windows, answer spans and SQuAD scores
(kft/tasks/qa/spans.py)."""

import importlib.util
import json

import numpy as np
import pytest

from kft.core import assets
from kft.core.errors import UserError
from kft.tasks.qa import spans as qa
from kft.tasks.qa import squad_metrics

CLS, SEP = 101, 102


def two_char_pieces(words):
    """A stand-in tokenizer: each word splits into pieces of two letters,
    and a piece's id is 1000 + the index of the word's first character
    in a running count (distinct ids, easy to trace)."""
    result = []
    for word in words:
        result.append([1000 + i for i in range(0, len(word), 2)])
    return result


def test_word_spans_split_as_bert_basic_tokenizer():
    text = "Hello, world!  It's 3.5$ 東京"
    words = [text[s:e] for s, e in qa.word_spans(text)]
    assert words == [
        "Hello", ",", "world", "!", "It", "'", "s", "3", ".", "5", "$",
        "東", "京",
    ]  # fmt: skip
    assert qa.word_spans("   ") == []


def test_pieces_carry_their_words_offsets():
    text = "Paris is big"
    pieces = qa.pieces(text, two_char_pieces)
    assert len(pieces.ids) == 3 + 1 + 2
    spans = list(zip(pieces.starts, pieces.ends))
    assert spans == [(0, 5)] * 3 + [(6, 8)] + [(9, 12)] * 2


CONTEXT = (
    "The river flows north through the old town, past the mill and the "
    "bridge, and reaches the sea at Saint-Malo after two hundred miles."
)


def window_text(window, context, text):
    """The context text a window's labelled span points at."""
    first = window.offset + window.start - window.context_start
    last = window.offset + window.end - window.context_start
    return text[context.starts[first] : context.ends[last]]


@pytest.mark.parametrize("stride", [3, 5, 8])
def test_answer_across_window_edges_is_labelled_only_where_whole(stride):
    context = qa.pieces(CONTEXT, two_char_pieces)
    answer = "Saint-Malo"
    start = CONTEXT.index(answer)
    question = [7, 8, 9]
    windows = qa.windows(
        question, context, 16, stride, (CLS, SEP), answer=(start, start + 10)
    )
    assert len(windows) > 3
    # Every context token is in some window; windows advance by the stride.
    covered = set()
    for index, window in enumerate(windows):
        assert window.offset == index * stride
        assert len(window.token_ids) <= 16
        assert window.token_ids[:5] == [CLS, 7, 8, 9, SEP]
        assert window.token_ids[-1] == SEP
        assert len(window.segment_ids) == len(window.token_ids)
        covered.update(range(window.offset, window.offset + window.length))
    assert covered == set(range(len(context.ids)))
    first, last = qa._answer_tokens(context, (start, start + 10))
    # The answer is 6 tokens and each window's context room 10: with a
    # stride up to 5, some window holds it whole.
    assert any(w.start for w in windows) == (stride <= 5)
    for window in windows:
        whole = window.offset <= first and last < window.offset + window.length
        if whole:
            assert window_text(window, context, CONTEXT) == answer
        else:
            assert (window.start, window.end) == (0, 0)
    # With a stride of 8 some window cuts the answer: it is not labelled.
    if stride == 8:
        assert any(
            w.offset <= last and w.offset + w.length > first and not w.start
            for w in windows
        )


def test_windows_refuse_no_room_and_cut_a_stride_over_the_room():
    context = qa.pieces(CONTEXT, two_char_pieces)
    with pytest.raises(UserError, match="sequence_length 16 leaves no room"):
        qa.windows(list(range(20)), context, 16, 4, (CLS, SEP))
    # Room 12 (16 - a 1-token question - 3): a stride of 13 would skip a
    # token between windows, so they abut instead, covering every token.
    windows = qa.windows([1], context, 16, 13, (CLS, SEP))
    assert [w.offset for w in windows] == [12 * k for k in range(len(windows))]
    assert windows[-1].offset + windows[-1].length == len(context.ids)
    # A long question is cut to max_question_tokens.
    windows = qa.windows(
        list(range(40)), context, 24, 4, (CLS, SEP), max_question_tokens=8
    )
    assert windows[0].context_start == 10


def logits_for(windows, spans, length=16):
    """Start and end logits that peak at the given (window, s, e) spans."""
    starts = np.zeros((len(windows), length))
    ends = np.zeros((len(windows), length))
    for index, s, e, value in spans:
        starts[index, s] = value
        ends[index, e] = value
    return starts, ends


def test_best_answer_maps_back_to_the_original_text():
    context = qa.pieces(CONTEXT, two_char_pieces)
    answer = "Saint-Malo"
    start = CONTEXT.index(answer)
    windows = qa.windows(
        [7], context, 16, 5, (CLS, SEP), answer=(start, start + len(answer))
    )
    labelled = [i for i, w in enumerate(windows) if w.start][0]
    w = windows[labelled]
    starts, ends = logits_for(windows, [(labelled, w.start, w.end, 5.0)])
    # A higher start and end in different windows must not pair up.
    starts[0, windows[0].context_start] = 9.0
    ends[-1, windows[-1].context_start + 1] = 9.0
    best = qa.best_answer(CONTEXT, context, windows, starts, ends)
    assert best.text == answer
    assert (best.start, best.end) == (start, start + len(answer))
    assert CONTEXT[best.start : best.end] == answer


def test_best_answer_respects_length_and_no_answer_threshold():
    context = qa.pieces(CONTEXT, two_char_pieces)
    windows = qa.windows([7], context, 40, 20, (CLS, SEP))
    s = windows[0].context_start
    starts, ends = logits_for(windows, [(0, s, s + 10, 4.0)], length=40)
    best = qa.best_answer(CONTEXT, context, windows, starts, ends)
    assert best.end - best.start > 20
    short = qa.best_answer(
        CONTEXT, context, windows, starts, ends, max_answer_length=5
    )
    assert short.end - short.start < best.end - best.start
    # No answer: [CLS] logits above the best span by more than the threshold.
    starts[:, 0] = 6.0
    ends[:, 0] = 6.0
    assert qa.best_answer(CONTEXT, context, windows, starts, ends).text
    none = qa.best_answer(
        CONTEXT, context, windows, starts, ends, null_threshold=0.0
    )
    assert none.text == qa.NO_ANSWER and none.null_logit == 12.0
    kept = qa.best_answer(
        CONTEXT, context, windows, starts, ends, null_threshold=5.0
    )
    assert kept.text


@pytest.fixture(scope="module")
def official():
    """SQuAD 2.0's official evaluation functions, as allennlp-models ships
    them (kft-fetch squad_eval)."""
    if not assets.is_present("squad_eval"):
        pytest.skip("asset squad_eval absent: run kft-fetch squad_eval")
    path = assets.path("squad_eval") / "squad.py"
    spec = importlib.util.spec_from_file_location("official_squad", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CASES = [
    ("the Eiffel Tower", ["Eiffel Tower", "tower"]),
    ("Eiffel  Tower!", ["The Eiffel Tower"]),
    ("a tower in Paris", ["Eiffel Tower"]),
    ("Paris, France", ["Paris", "Paris France"]),
    ("", []),
    ("Paris", []),
    ("", ["Paris"]),
    ("1,000 miles", ["1000 miles", "about 1,000 miles"]),
    ("an apple a day", ["apple day", "the apple"]),
    ("Ünïcode café", ["unïcode CAFÉ"]),
    ("...", ["an", "..."]),
    ("the the the", ["the"]),
]


def test_squad_scores_match_the_official_evaluation(official):
    predictions = [prediction for prediction, _ in CASES]
    answers = [golds for _, golds in CASES]
    exact, f1 = [], []
    for prediction, golds in CASES:
        golds = [g for g in golds if official.normalize_answer(g)] or [""]
        exact.append(max(official.compute_exact(prediction, g) for g in golds))
        f1.append(max(official.compute_f1(prediction, g) for g in golds))
    scores = squad_metrics.squad_scores(predictions, answers)
    assert scores["count"] == len(CASES)
    assert scores["exact_match"] == pytest.approx(100 * np.mean(exact))
    assert scores["f1"] == pytest.approx(100 * np.mean(f1))
    for prediction, golds in CASES:
        for gold in golds:
            assert squad_metrics.f1_score(prediction, gold) == pytest.approx(
                official.compute_f1(prediction, gold)
            )
            assert squad_metrics.exact_match(prediction, gold) == (
                official.compute_exact(prediction, gold)
            )
    # Both kinds of question: the split figures are there and add up.
    has = scores["has_answer_count"]
    assert has + scores["no_answer_count"] == len(CASES)
    assert scores["no_answer_exact_match"] == pytest.approx(50.0)


def test_squad_scores_refuse_mismatched_lengths():
    with pytest.raises(ValueError, match="2 predictions for 1"):
        squad_metrics.squad_scores(["a", "b"], [["a"]])


def test_real_tokenizer_word_by_word_equals_whole_text(tiny_bert):
    import keras_hub

    tokenizer = keras_hub.models.Tokenizer.from_preset(tiny_bert)

    text = "The movie, is GOOD; the great awful movie!"
    pieces = qa.pieces(text, qa.word_tokenizer(tokenizer))
    whole = qa.word_tokenizer(tokenizer)([text])[0]
    assert pieces.ids == whole and len(whole) == 11


def data_config(**overrides):
    from kft import config as config_lib

    data = config_lib.default_config().data
    data.update(overrides)
    return data


def test_squad_json_v2_and_jsonl_layouts(tmp_path):
    import json

    from kft.tasks.qa import squad

    context = "Ada Lovelace wrote the first program in 1843."
    document = {
        "data": [
            {
                "paragraphs": [
                    {
                        "context": context,
                        "qas": [
                            {
                                "id": "q1",
                                "question": "Who wrote it?",
                                "answers": [
                                    {"text": "Ada Lovelace", "answer_start": 0}
                                ],
                            },
                            {  # the start is off by two: found nearby
                                "id": "q2",
                                "question": "When?",
                                "answers": [
                                    {"text": "1843", "answer_start": 38}
                                ],
                            },
                            {
                                "id": "q3",
                                "question": "Where?",
                                "answers": [],
                                "is_impossible": True,
                            },
                            {  # not in the context: a bad record
                                "id": "q4",
                                "question": "What?",
                                "answers": [
                                    {"text": "a poem", "answer_start": 3}
                                ],
                            },
                        ],
                    }
                ]
            }
        ]
    }
    path = tmp_path / "train.json"
    path.write_text(json.dumps(document))
    examples, note = squad.read(str(path), data_config(max_bad_fraction=0.5))
    assert [e.id for e in examples] == ["q1", "q2", "q3"]
    assert examples[1].answers == [("1843", 40)]
    assert context[slice(*examples[1].answer_span)] == "1843"
    assert examples[2].answers == [] and examples[2].answer_span is None
    assert "1 bad records of 4" in note and "a poem" in note
    with pytest.raises(Exception, match="bad record at .*q4"):
        squad.read(str(path), data_config(on_error="raise"))

    lines = tmp_path / "train.jsonl"
    rows = [
        {
            "question": "Who?",
            "context": context,
            "answers": {"text": ["Ada"], "answer_start": [0]},
        },
        {"question": "Who?", "context": context, "answers": []},
        {
            "id": "x",
            "question": "What?",
            "context": context,
            "answers": [{"text": "first program", "answer_start": 23}],
        },
    ]
    lines.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    examples, note = squad.read(str(lines), data_config())
    assert note is None
    assert [e.id for e in examples] == ["0", "1", "x"]
    assert [e.answers for e in examples] == [
        [("Ada", 0)],
        [],
        [("first program", 23)],
    ]


def test_squad_reader_user_errors(tmp_path):
    from kft.core.errors import UserError
    from kft.tasks.qa import squad

    with pytest.raises(UserError, match="SQuAD .json, .jsonl"):
        squad.read(str(tmp_path / "x.csv"), data_config())
    with pytest.raises(UserError, match="cannot read"):
        squad.read(str(tmp_path / "missing.json"), data_config())
    (tmp_path / "bad.json").write_text('{"version": 2}')
    with pytest.raises(UserError, match="not SQuAD JSON"):
        squad.read(str(tmp_path / "bad.json"), data_config())


def test_span_model_learns_answers_on_a_tiny_bert(tiny_bert):
    """A tiny BERT fine-tuned on windows: its loss falls, and predicted
    answers map back to text that is in the context."""
    import keras
    import keras_hub

    from kft.tasks.qa.squad import Example

    rng = np.random.default_rng(0)
    words = ["the", "movie", "is", "fine", "bad"]
    examples = []
    for index in range(48):
        context = list(rng.choice(words, size=14))
        at = int(rng.integers(0, 14))
        context[at] = "great"
        text = " ".join(context)
        start = len(" ".join(context[:at])) + (1 if at else 0)
        examples.append(Example(str(index), "good", text, [("great", start)]))
    tokenizer = keras_hub.models.Tokenizer.from_preset(tiny_bert)
    window_list, contexts = qa.example_windows(
        examples, tokenizer, 16, 6, training=True
    )
    assert len(window_list) > len(examples)  # contexts are cut
    inputs, labels = qa.span_inputs(window_list, 16, tokenizer.pad_token_id)
    for row in range(len(window_list)):
        if labels["start"][row]:
            assert (
                tokenizer.id_to_token(
                    int(inputs["token_ids"][row, labels["start"][row]])
                )
                == "great"
            )
    backbone = keras_hub.models.Backbone.from_preset(tiny_bert)
    keras.utils.set_random_seed(0)
    model = qa.span_model(backbone, dropout=0.0)
    qa.compile_span_model(model, keras.optimizers.Adam(3e-3))
    history = model.fit(
        inputs, labels, batch_size=16, epochs=8, verbose=0, shuffle=False
    )
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    logits = model.predict(inputs, verbose=0)
    # Masked positions (question, padding) never win.
    question = inputs["segment_ids"] == 0
    question[:, 0] = False
    assert np.all(logits["start"][question] <= qa.MASKED + 1)
    answers = qa.predict_answers(model, examples, window_list, contexts, inputs)
    found = [a.text == "great" for a in answers]
    assert np.mean(found) > 0.8
    for example, answer in zip(examples, answers):
        assert example.context[answer.start : answer.end] == answer.text


def test_served_answers_match_the_python_path(tiny_bert):
    """The in-graph windows and span search (kft/tasks/qa/serving.py) give the
    answers, offsets and scores of kft/tasks/qa/spans.py, on contexts that need
    one
    window, several, none (empty) and multi-byte characters."""
    import keras
    import keras_hub
    import tensorflow as tf

    from kft.tasks.qa import serving as qa_serving
    from kft.tasks.qa.squad import Example

    keras.utils.set_random_seed(1)
    tokenizer = keras_hub.models.Tokenizer.from_preset(tiny_bert)
    backbone = keras_hub.models.Backbone.from_preset(tiny_bert)
    model = qa.span_model(backbone)
    rng = np.random.default_rng(3)
    words = ["good", "bad", "the", "movie", "is", "fine", "café", "ß", "東"]
    contexts = [
        " ".join(rng.choice(words, size=n)) + "." for n in (3, 9, 20, 40)
    ]
    contexts += ["", "naïve  résumé, über-good movie!"]
    questions = ["good", "the movie is", "bad?", "is", "fine", "movie good"]
    examples = [
        Example(str(i), q, c, [])
        for i, (q, c) in enumerate(zip(questions, contexts))
    ]
    # Stride 40 is over every window's context room: windows then abut.
    for threshold, stride in ((None, 6), (0.0, 6), (None, 40)):
        window_list, pieces = qa.example_windows(
            examples, tokenizer, 24, stride, training=False
        )
        inputs, _ = qa.span_inputs(window_list, 24, tokenizer.pad_token_id)
        expected = qa.predict_answers(
            model,
            examples,
            window_list,
            pieces,
            inputs,
            max_answer_length=5,
            null_threshold=threshold,
        )
        answer = tf.function(
            qa_serving.answer_fn(
                model,
                tokenizer,
                24,
                stride,
                max_answer_length=5,
                null_threshold=threshold,
            )
        )
        served = answer(tf.constant(questions), tf.constant(contexts))
        texts = [t.decode() for t in served["answer"].numpy()]
        assert texts == [a.text for a in expected]
        assert list(served["start"].numpy()) == [a.start for a in expected]
        assert list(served["end"].numpy()) == [a.end for a in expected]
        np.testing.assert_allclose(
            served["score"].numpy(), [a.score for a in expected], atol=1e-5
        )
    assert any(t for t in texts) or threshold is not None


def squad_document(count, seed, unanswerable_every=0):
    """SQuAD v2 JSON over the tiny vocabulary: "great" is the answer."""
    rng = np.random.default_rng(seed)
    paragraphs = []
    for index in range(count):
        words = list(rng.choice(["the", "movie", "is", "fine", "bad"], 12))
        impossible = unanswerable_every and index % unanswerable_every == 0
        if not impossible:
            at = int(rng.integers(0, 12))
            words[at] = "great"
        context = " ".join(words)
        answers = []
        if not impossible:
            start = len(" ".join(words[:at])) + (1 if at else 0)
            answers = [{"text": "great", "answer_start": start}]
        qas = [
            {
                "id": f"q{index}",
                "question": "good",
                "answers": answers,
                "is_impossible": bool(impossible),
            }
        ]
        paragraphs.append({"context": context, "qas": qas})
    return {"version": "v2.0", "data": [{"paragraphs": paragraphs}]}


QA_FLAGS = (
    "--config.data.validation_fraction=0.2",
    "--config.data.sequence_length=16",
    "--config.qa.stride=5",
    "--config.epochs=6",
    "--config.learning_rate=3e-3",
    "--config.data.batch_size=16",
)


@pytest.fixture(scope="module")
def qa_run(tiny_bert, tmp_path_factory):
    """One finished tiny QA run of kft-train, shared by the tests of the
    commands that read it: (run folder, its flags, the kft-train result)."""
    import json

    from conftest import train_cli

    folder = tmp_path_factory.mktemp("qa")
    train = folder / "train.json"
    train.write_text(json.dumps(squad_document(80, 0, unanswerable_every=4)))
    test = folder / "test.json"
    test.write_text(json.dumps(squad_document(24, 1, unanswerable_every=4)))
    flags = [
        f"--config.backbone={tiny_bert}",
        f"--config.data.train={train}",
        f"--config.data.test={test}",
        *QA_FLAGS,
    ]
    model_dir = folder / "run"
    result = train_cli(model_dir, *flags, experiment="qa_extractive")
    assert result.returncode == 0, result.stderr[-3000:]
    return model_dir, flags, result


def test_kft_train_qa_end_to_end(qa_run, tmp_path):
    """kft-train --experiment=qa_extractive on SQuAD v2 JSON: windows,
    span model, no-answer threshold, EM/F1, predictions, a checked export
    that answers raw strings, the export sample kft-export reuses; a rerun
    finds it finished."""
    import json

    from conftest import assert_run_contract, run_cli, train_cli

    model_dir, flags, result = qa_run
    assert_run_contract(model_dir)
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["task"] == "qa"
    assert metrics["test"]["count"] == 24
    assert metrics["test"]["no_answer_count"] == 6
    assert metrics["validation"]["count"] == 16
    assert metrics["test"]["f1"] > 50, metrics
    assert "exact_match" in result.stdout
    rows = [
        json.loads(line)
        for line in (model_dir / "predictions.jsonl").read_text().splitlines()
    ]
    assert len(rows) == 24 and {"predicted", "start", "score"} <= set(rows[0])
    check = json.loads(
        (model_dir / "export" / "1" / "kft_export_check.json").read_text()
    )
    assert check["answers_equal"] == check["examples"] == 24
    sample = json.loads(
        (model_dir / "checkpoints" / "export_sample.json").read_text()
    )
    assert len(sample) == 24 and {"question", "context"} <= set(sample[0])
    page = (model_dir / "report.html").read_text()
    assert "Exact match and F1" in page and "Questions not answered" in page
    again = train_cli(model_dir, *flags, experiment="qa_extractive")
    assert again.returncode == 0 and "nothing to do" in again.stdout
    bad = run_cli(
        "kft-train",
        "--experiment=qa_extractive",
        f"--model_dir={tmp_path / 'bad'}",
        *flags,
        "--config.qa.null_threshold=maybe",
    )
    assert bad.returncode == 2
    assert "null_threshold" in bad.stderr.strip().splitlines()[-1]


def answers(folder):
    """(id, predicted, start, end) of each line of predictions.jsonl."""
    import json

    text = (folder / "predictions.jsonl").read_text()
    rows = [json.loads(line) for line in text.splitlines()]
    return [(r["id"], r["predicted"], r["start"], r["end"]) for r in rows]


def test_kft_evaluate_qa_run_scores_weights_and_export_alike(qa_run):
    """kft-evaluate on a QA run gives its test split's figures again, from
    the best weights and from the export's served answers."""
    import json

    from conftest import run_cli

    model_dir = qa_run[0]
    expected = json.loads((model_dir / "metrics.json").read_text())
    folder = model_dir / "eval" / "test"
    for extra in ([], [f"--saved_model={model_dir / 'export' / '1'}"]):
        result = run_cli("kft-evaluate", f"--model_dir={model_dir}", *extra)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "exact_match" in result.stdout
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["task"] == "qa"
        assert metrics["test"] == expected["test"]
        assert metrics["null_threshold"] == expected["null_threshold"]
        assert metrics["model"].endswith("1" if extra else "best.weights.h5")
        assert answers(folder) == answers(model_dir)
        assert "Exact match and F1" in (folder / "report.html").read_text()


def test_kft_export_and_kft_predict_on_a_qa_run(qa_run, tmp_path):
    """kft-export writes the next checked version; kft-predict answers a
    CSV of questions and contexts with the export's answers."""
    import csv
    import json

    from conftest import run_cli

    model_dir = qa_run[0]
    base = model_dir / "export"
    result = run_cli(
        "kft-export", f"--model_dir={model_dir}", f"--export_dir={base}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == str(base / "2")
    check = json.loads((base / "2" / "kft_export_check.json").read_text())
    assert check["answers_equal"] == check["examples"] == 24
    rows = [
        {"question": "good", "context": "the movie is great , fine"},
        {"question": "good", "context": "bad movie"},
        {"question": "good", "context": ""},
    ]
    source = tmp_path / "questions.csv"
    with open(source, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=["question", "context"])
        writer.writeheader()
        writer.writerows(rows)
    result = run_cli(
        "kft-predict", f"--saved_model={base / '2'}", f"--input={source}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 3
    for row, line in zip(rows, lines):
        assert line["input"] == row
        assert line["answer"] == row["context"][line["start"] : line["end"]]
        assert 0.0 <= line["score"] <= 1.0
    assert lines[2]["answer"] == ""
    import kft  # Python answers as kft-predict, from named inputs

    assert kft.load(str(model_dir)).predict(rows) == lines


def test_deterministic_qa_runs_are_bitwise_equal(tiny_bert, tmp_path):
    """--config.deterministic=true: two kft-train runs of the same QA
    config end with the same weights and history, byte for byte."""
    import json

    from conftest import assert_bitwise_equal_runs, train_cli

    train = tmp_path / "train.json"
    train.write_text(json.dumps(squad_document(24, 0, unanswerable_every=4)))
    test = tmp_path / "test.json"
    test.write_text(json.dumps(squad_document(4, 1)))
    flags = [
        f"--config.backbone={tiny_bert}",
        f"--config.data.train={train}",
        f"--config.data.test={test}",
        *QA_FLAGS,
        "--config.epochs=1",
        "--config.export=false",
        "--config.deterministic=true",
    ]
    for name in ("first", "second"):
        result = train_cli(tmp_path / name, *flags, experiment="qa_extractive")
        assert result.returncode == 0, result.stderr[-3000:]
    assert_bitwise_equal_runs(tmp_path / "first", tmp_path / "second")


def _one_context_each(contexts, questions_each):
    """SQuAD JSON: `questions_each` questions on each of `contexts`."""
    paragraphs = [
        {
            "context": f"context {c} says great things",
            "qas": [
                {
                    "id": f"{c}-{q}",
                    "question": f"what does context {c} say {q}",
                    "answers": [{"text": "great", "answer_start": 18}],
                }
                for q in range(questions_each)
            ],
        }
        for c in range(contexts)
    ]
    return {"version": "v2.0", "data": [{"paragraphs": paragraphs}]}


def test_held_out_contexts_leave_training_data_and_say_their_share(tmp_path):
    """Whole contexts are held out, never the last one; the log gives the
    share held out, which few contexts can push far from the fraction."""
    from kft import config as config_lib
    from kft.tasks.qa import squad

    def splits_of(contexts):
        path = tmp_path / f"qa{contexts}.json"
        path.write_text(json.dumps(_one_context_each(contexts, 12)))
        data = config_lib.default_config().data
        data.train = str(path)
        data.validation_fraction, data.test_fraction = 0.1, 0.15
        return squad.load_splits(data, 0)

    with pytest.raises(UserError, match="1 context.*--config.data.test"):
        splits_of(1)
    splits, notes = splits_of(3)
    assert [len(splits[n]) for n in ("train", "validation", "test")] == [
        12, 12, 12
    ]  # fmt: skip
    assert "test: 12 questions (33%) held out" in notes[0], notes
    assert "15% asked" in notes[0], notes
    splits, notes = splits_of(2)
    assert [len(splits[n]) for n in ("train", "validation", "test")] == [
        12, 0, 12
    ]  # fmt: skip
    assert any("validation: none held out" in note for note in notes), notes
