"""Sentence pairs, multi-label and regression: data, metrics, end to end.

The metrics are checked against scikit-learn and scipy on fixed
predictions; each task runs through kft-train (fit, evaluate, export
checked in a fresh process) and kft-predict on the tiny BERT.
"""

import html
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import (
    assert_run_contract,
    predict_cli,
    train_cli,
    write_csv,
)

from kft import config as config_lib
from kft import data
from kft.core.errors import UserError
from kft.data import targets
from kft.serving import export, parity, publish
from kft.tasks import multilabel, registry, regression

# Sentiment cues of the tiny BERT's vocabulary (conftest.VOCAB).
CUES = {"good": 1.0, "great": 2.0, "bad": -1.0, "awful": -2.0, "fine": 0.0}
TAGS = {"good": "pos", "great": "pos", "bad": "neg", "awful": "neg"}


def _sentence(rng, cues):
    words = list(rng.choice(["the", "movie", "is"], size=2)) + list(cues)
    return " ".join(words)


def _cues(rng, count):
    return [str(c) for c in rng.choice(list(CUES), size=count)]


def pair_rows(count, seed):
    """Two short texts; same if their cues agree in sign; a 0-4 score."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(count):
        first, second = _cues(rng, 1), _cues(rng, 1)
        a, b = CUES[first[0]], CUES[second[0]]
        rows.append(
            {
                "sentence1": _sentence(rng, first),
                "sentence2": _sentence(rng, second),
                "label": "same" if (a > 0) == (b > 0) else "different",
                "score": 4.0 - abs(a - b),
            }
        )
    return rows


def tag_rows(count, seed):
    """Texts tagged pos and/or neg by their cues ([] for only "fine")."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(count):
        cues = _cues(rng, int(rng.integers(1, 3)))
        tags = sorted({TAGS[c] for c in cues if c in TAGS})
        rows.append({"text": _sentence(rng, cues), "tags": tags})
    return rows


def _data_config(**values):
    config = config_lib.default_config().data
    for key, value in values.items():
        config[key] = value
    return config


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


# === Labels of each task ===


@pytest.mark.parametrize(
    "value, task, expected",
    [
        ("a;b; a", "multilabel", ("a", "b")),
        (["b", "a"], "multilabel", ("a", "b")),
        ([], "multilabel", ()),
        # A table cell says "none of the labels" as JSON does.
        ("[]", "multilabel", ()),
        (" [ ] ", "multilabel", ()),
        (" 2.5 ", "regression", 2.5),
        (3, "regression", 3.0),
        ("x", "classification", "x"),
        # A file's spelling of one class: pandas writes 1.0 and True.
        ("1.0", "classification", "1"),
        (1.0, "classification", "1"),
        ("-2.00", "classification", "-2"),
        ("1.5", "classification", "1.5"),
        ("True", "classification", "true"),
        ("FALSE", "classification", "false"),
        (True, "classification", "true"),
        ("1.0;True", "multilabel", ("1", "true")),
        ("cafe\u0301", "classification", "caf\u00e9"),  # NFD is NFC's class
    ],
)
def test_labels_parse_by_task(value, task, expected):
    assert targets.parse(value, task, ";") == (expected, None)


@pytest.mark.parametrize(
    "value, task, why",
    [
        ("positive", "regression", "is not a number"),
        ("nan", "regression", "not a finite number"),
        ("", "multilabel", "missing label (write [] for none)"),
        ([["a"]], "multilabel", "holds a list"),
        (["a"], "classification", "--config.task=multilabel"),
        (float("nan"), "classification", "missing label"),
    ],
)
def test_labels_of_the_wrong_shape_are_bad_records(value, task, why):
    label, problem = targets.parse(value, task, ",")
    assert label is None and why in problem


def test_a_label_column_of_ids_or_numbers_is_refused():
    """Almost every row its own class: an id column, or a number meant for
    regression; the empty split it would cause named the wrong cause."""
    ids = [f"row{i}" for i in range(40)] + ["row0"]
    with pytest.raises(UserError, match="41 rows.*label_column.*regression"):
        targets.vocabulary(ids, "classification", "t.csv", "id")
    few_shot = [f"class{i // 2}" for i in range(40)]
    assert len(targets.vocabulary(few_shot, "classification", "t.csv")) == 20


def test_multilabel_splits_are_multi_hot(tmp_path):
    rows = [
        {"text": r["text"], "tags": ";".join(r["tags"])}
        for r in tag_rows(40, 0)
    ]
    rows[0]["tags"] = "pos; neg"
    config = _data_config(
        train=write_csv(tmp_path / "t.csv", [r for r in rows if r["tags"]]),
        label_column="tags",
        label_delimiter=";",
    )
    splits = data.load_splits(config, seed=0, task="multilabel")
    assert splits.labels == ["neg", "pos"]
    assert splits.train.label_ids.shape[1] == 2
    np.testing.assert_array_equal(splits.train.label_ids[0], [1.0, 1.0])
    assert "random" in " ".join(splits.notes)
    config.test = write_jsonl(
        tmp_path / "x.jsonl", [{"text": "a", "tags": ["x"]}]
    )
    with pytest.raises(UserError, match="label 'x' in .*x.jsonl never occurs"):
        data.load_splits(config, seed=0, task="multilabel")


def test_wrong_shapes_stop_with_one_line(tmp_path):
    words = write_csv(tmp_path / "w.csv", [{"text": "a", "label": "good"}] * 9)
    with pytest.raises(UserError, match="9 of 9 .* 'good' is not a number"):
        data.load_splits(_data_config(train=words), 0, "regression")
    empty = write_jsonl(tmp_path / "e.jsonl", [{"text": "a", "label": []}] * 9)
    with pytest.raises(UserError, match="every example's label set is empty"):
        data.load_splits(_data_config(train=empty), 0, "multilabel")
    config = config_lib.default_config()
    config.task = "regression"
    with pytest.raises(UserError, match="val_rmse"):  # default val_macro_f1
        registry.get("regression").check_common(config)


# === Pair packing ===


def test_pairs_pack_with_segment_ids(tiny_built):
    packed = tiny_built.preprocessor(
        tf.constant(["good movie"]), tf.constant(["bad"])
    )
    # [CLS] good movie [SEP] bad [SEP]: VOCAB ids 2 5 10 3 6 3.
    np.testing.assert_array_equal(
        packed["token_ids"][0, :6], [2, 5, 10, 3, 6, 3]
    )
    np.testing.assert_array_equal(
        packed["segment_ids"][0, :7], [0, 0, 0, 0, 1, 1, 0]
    )
    lengths = data.token_lengths(
        tiny_built.preprocessor, ["good movie"], ["bad"]
    )
    assert lengths.tolist() == [6]


@pytest.mark.parametrize("segments", [1, 2])
def test_round_robin_trim_cuts_as_tf_text(segments):
    import tensorflow_text as tf_text

    rng = np.random.default_rng(segments)
    rows = [
        [list(range(int(rng.integers(0, 12)))) for _ in range(40)]
        for _ in range(segments)
    ]
    ragged = [tf.ragged.constant(r, dtype=tf.int32) for r in rows]
    for budget in (0, 1, 5, 8, 13, 30):
        expected = tf_text.RoundRobinTrimmer(budget).trim(ragged)
        got = export.round_robin_trim(ragged, budget)
        for e, g in zip(expected, got, strict=True):
            assert e.to_list() == g.to_list(), budget


# === Metrics against scikit-learn and scipy ===


def _fixed_multilabel(seed, count=50, labels=4):
    rng = np.random.default_rng(seed)
    y_true = (rng.random((count, labels)) < 0.4).astype(np.float32)
    noise = rng.normal(0, 0.3, size=y_true.shape)
    probabilities = np.clip(0.3 + 0.4 * y_true + noise, 0, 1).astype(np.float32)
    return y_true, probabilities


@pytest.mark.parametrize("seed", [0, 1])
def test_multilabel_report_matches_sklearn(seed):
    from sklearn import metrics as sk

    y_true, probabilities = _fixed_multilabel(seed)
    thresholds = [0.5, 0.3, 0.6, 0.45]
    report = multilabel.report(
        y_true, probabilities, list("abcd"), "test", thresholds
    )
    y_pred = (probabilities >= np.array(thresholds, np.float32)).astype(int)
    for average in ("micro", "macro"):
        assert report[f"{average}_f1"] == pytest.approx(
            sk.f1_score(y_true, y_pred, average=average, zero_division=0)
        )
        assert report[f"{average}_precision"] == pytest.approx(
            sk.precision_score(y_true, y_pred, average=average, zero_division=0)
        )
        assert report[f"{average}_recall"] == pytest.approx(
            sk.recall_score(y_true, y_pred, average=average, zero_division=0)
        )
    precision, recall, f1, support = sk.precision_recall_fscore_support(
        y_true, y_pred, zero_division=0
    )
    for j, row in enumerate(report["per_class"].values()):
        assert row["precision"] == pytest.approx(precision[j])
        assert row["recall"] == pytest.approx(recall[j])
        assert row["f1"] == pytest.approx(f1[j])
        assert row["support"] == support[j]
    assert report["subset_accuracy"] == pytest.approx(
        sk.accuracy_score(y_true, y_pred)
    )
    assert report["hamming_loss"] == pytest.approx(
        sk.hamming_loss(y_true, y_pred)
    )


def test_tuned_label_thresholds_maximize_each_f1():
    from sklearn import metrics as sk

    y_true, probabilities = _fixed_multilabel(2)
    y_true[:, 3] = 0  # a label without a positive keeps 0.5
    tuned = multilabel.tune(y_true, probabilities)
    assert tuned[3] == 0.5
    for j in range(3):
        best = sk.f1_score(y_true[:, j], probabilities[:, j] >= tuned[j])
        for cut in np.unique(probabilities[:, j]):
            assert best >= sk.f1_score(y_true[:, j], probabilities[:, j] >= cut)


def test_regression_report_matches_sklearn_and_scipy():
    from scipy import stats
    from sklearn import metrics as sk

    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 5, size=60).astype(np.float32)  # ties
    y_pred = y_true + rng.normal(0, 1.0, size=60)
    y_pred[:10] = np.round(y_pred[:10])
    report = regression.report(y_true, y_pred, "test")
    assert report["mae"] == pytest.approx(
        sk.mean_absolute_error(y_true, y_pred)
    )
    assert report["rmse"] == pytest.approx(
        np.sqrt(sk.mean_squared_error(y_true, y_pred))
    )
    assert report["pearson"] == pytest.approx(stats.pearsonr(y_true, y_pred)[0])
    assert report["spearman"] == pytest.approx(
        stats.spearmanr(y_true, y_pred)[0]
    )
    constant = regression.report(y_true, np.ones(60), "test")
    assert constant["pearson"] is None and constant["spearman"] is None
    json.dumps(constant, allow_nan=False)


@pytest.mark.parametrize("scale", [1.0, 1e30])
def test_training_metrics_stay_finite_in_the_targets_units(scale):
    """history.csv's mae and rmse are in the targets' units, and finite
    for targets near 1e30 (whose squares overflow float32): the best epoch
    is chosen by them."""
    inputs = keras.Input((2,))
    outputs = regression.TargetScale(name=regression.LAYER)(
        keras.layers.Dense(1)(inputs)
    )
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    y_true = (rng.normal(size=40) * scale).astype(np.float32)
    regression.fit_scaling(model, y_true, "standardize")
    y_pred = model(rng.normal(size=(40, 2)).astype(np.float32)).numpy()
    figures = {}
    for metric in regression.keras_metrics(model):
        metric.update_state(y_true[:25], y_pred[:25])
        metric.update_state(y_true[25:], y_pred[25:])
        figures[metric.name] = float(metric.result())
    error = y_true.astype(np.float64) - y_pred.astype(np.float64)
    assert figures["mae"] == pytest.approx(np.abs(error).mean(), rel=1e-4)
    assert figures["rmse"] == pytest.approx(
        np.sqrt((error**2).mean()), rel=1e-4
    )


# === End to end through the console scripts ===


def _run(tmp_path, experiment, *overrides):
    run = tmp_path / "run"
    result = train_cli(
        run,
        "--config.plan=full",
        "--config.epochs=1",
        "--config.learning_rate=3e-3",
        *overrides,
        experiment=experiment,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    check = json.loads((run / "export" / "1" / publish.CHECK_FILE).read_text())
    assert check["max_abs_difference"] <= parity.tolerance("float32")
    assert (run / "report.html").is_file()
    return run, metrics, check["signatures"]["serving_default"], result


def test_pair_classifier_end_to_end(tiny_bert, tmp_path):
    rows = [
        {k: v for k, v in r.items() if k != "score"} for r in pair_rows(60, 0)
    ]
    run, metrics, signature, result = _run(
        tmp_path,
        "pair_classifier",
        f"--config.backbone={tiny_bert}",
        f"--config.data.train={write_csv(tmp_path / 'pairs.csv', rows)}",
    )
    assert "pair 'sentence2'" in result.stdout
    assert set(signature["inputs"]) == {"text", "text_pair"}
    assert set(signature["outputs"]) == {"probabilities", "class_id", "label"}
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["text_pair_column"] == "sentence2"
    held_out = run / "test_split.jsonl"
    assert "text_pair" in held_out.read_text().splitlines()[0]
    _, lines = predict_cli(run, held_out)
    right = sum(line["label"] == line["true_label"] for line in lines)
    assert right / len(lines) == pytest.approx(metrics["accuracy"])
    # Both texts are the input: predictions.jsonl and the report show them.
    first = json.loads((run / "predictions.jsonl").read_text().splitlines()[0])
    held = json.loads(held_out.read_text().splitlines()[0])
    assert (first["text"], first["text_pair"]) == (
        held["text"],
        held["text_pair"],
    )
    page = (run / "report.html").read_text()
    shown = [
        json.loads(x)
        for x in (run / "predictions.jsonl").read_text().splitlines()
    ]
    wrong = [row for row in shown if row["label"] != row["predicted"]]
    if wrong:
        assert html.escape(wrong[0]["text_pair"], quote=True) in page


def test_multilabel_end_to_end(tiny_bert, tmp_path):
    train = write_jsonl(tmp_path / "tags.jsonl", tag_rows(80, 1))
    run, metrics, signature, _ = _run(
        tmp_path,
        "multilabel_classifier",
        f"--config.backbone={tiny_bert}",
        f"--config.data.train={train}",
        "--config.data.label_column=tags",
    )
    assert set(signature["outputs"]) == {"probabilities", "decisions", "labels"}
    assert metrics["task"] == "multilabel" and metrics["labels"] == [
        "neg",
        "pos",
    ]
    stored = json.loads((run / "thresholds.json").read_text())
    assert stored["source"] == "validation"
    assert metrics["thresholds"] == stored["thresholds"]
    result, lines = predict_cli(run, run / "test_split.jsonl")
    subset = np.mean([line["labels"] == line["true_label"] for line in lines])
    assert subset == pytest.approx(metrics["subset_accuracy"])
    assert "accuracy" in result.stderr
    assert_run_contract(run)


def test_pair_regression_end_to_end(tiny_bert, tmp_path):
    rows = [{**r, "label": r["score"]} for r in pair_rows(60, 2)]
    rows = [{k: v for k, v in r.items() if k != "score"} for r in rows]
    run, metrics, signature, _ = _run(
        tmp_path,
        "text_regressor",
        f"--config.backbone={tiny_bert}",
        f"--config.data.train={write_csv(tmp_path / 'scores.csv', rows)}",
        "--config.regression.loss=huber",
    )
    assert set(signature["outputs"]) == {"score"}
    assert set(metrics) >= {"mae", "rmse", "pearson", "spearman"}
    scaling = json.loads((run / "target_scaling.json").read_text())
    scores = [r["label"] for r in rows]
    assert min(scores) < scaling["mean"] < max(scores) and scaling["std"] > 0
    result, lines = predict_cli(run, run / "test_split.jsonl")
    mae = np.mean(
        [abs(line["score"] - float(line["true_label"])) for line in lines]
    )
    assert mae == pytest.approx(metrics["mae"], abs=1e-5)
    assert "mean absolute error" in result.stderr
    assert_run_contract(run)


@pytest.mark.parametrize(
    "labels, said",
    [
        (["neg", "pos"], "classes (2): neg, pos"),
        # A comma or an edge space in a name would read as another class.
        (["a, b", "c"], "classes (2): 'a, b', 'c'"),
        ([" x", "y"], "classes (2): ' x', 'y'"),
        # Names that differ only in case are likely one class mistyped.
        (
            ["NEG", "Neg", "POS", "neg", "pos"],
            "classes (5): NEG, Neg, POS, neg, pos (differing only in case: "
            "NEG, Neg, neg; POS, pos)",
        ),
    ],
)
def test_the_log_names_classes_unambiguously(labels, said):
    import types

    splits = types.SimpleNamespace(
        train=[0] * 5, validation=None, test=[0] * 2, labels=labels
    )
    line = registry.get("classification").describe(splits)
    assert line.endswith("; " + said), line


@pytest.mark.parametrize("task", ["classification", "multilabel"])
def test_a_class_name_with_a_line_break_is_refused(task):
    # labels.txt holds one class a line: such a name became two classes
    # after training, and the rebuilt model did not fit its weights.
    labels = ["a\nb", "c"] if task == "classification" else [["a\nb"], ["c"]]
    with pytest.raises(UserError, match="holds a line break"):
        targets.vocabulary(labels, task, "data")
