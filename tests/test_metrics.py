"""Figures beyond accuracy and F1, and the binary decision threshold.

Every figure is checked against scikit-learn on fixed predictions, edge
cases included; ECE against a small example worked by hand; the threshold
against a brute-force search, and end to end through kft-train, the export,
kft-predict and kft-evaluate on a two-class text run.
"""

import json
import shutil

import numpy as np
import pytest
from conftest import (
    assert_decisions_match_sklearn,
    make_texts,
    predict_cli,
    run_cli,
    write_csv,
)
from sklearn import metrics as sk

from kft.core.errors import UserError
from kft.tasks.classification import metrics as evaluation
from kft.tasks.classification import threshold


def _softmax(logits):
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def _random(count, classes, seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, classes, count)
    logits = rng.normal(size=(count, classes)) + 1.5 * np.eye(classes)[y_true]
    return y_true, _softmax(logits)


# Rows of probabilities, each case (label ids, probabilities).
CASES = {
    "binary": _random(60, 2, 0),
    "seven_classes": _random(80, 7, 1),
    "three_classes": _random(40, 3, 2),
    # Class 2 is never the most probable.
    "never_predicted": (
        np.array([0, 1, 2, 2, 1, 0, 2]),
        _softmax(
            np.array(
                [
                    [3, 1, 0],
                    [0, 2, 1],
                    [1, 3, 2],
                    [3, 1, 2],
                    [0, 4, 1],
                    [2, 1, 0],
                    [0, 3, 2.5],
                ]  # fmt: skip
            )
        ),
    ),
    # Class 3 of 4 has no example in the split.
    "absent_from_split": (
        np.array([0, 1, 2, 0, 1, 2, 0]),
        _softmax(np.random.default_rng(3).normal(size=(7, 4))),
    ),
    # Scores tied within and across classes.
    "ties_binary": (
        np.array([0, 1, 1, 0, 1, 0, 0, 1]),
        np.array(
            [
                [0.6, 0.4],
                [0.6, 0.4],
                [0.3, 0.7],
                [0.3, 0.7],
                [0.5, 0.5],
                [0.5, 0.5],
                [0.9, 0.1],
                [0.2, 0.8],
            ],  # fmt: skip
            np.float32,
        ),
    ),
    "ties_six_classes": (
        np.array([0, 1, 2, 3, 4, 5, 5, 0]),
        np.full((8, 6), 1 / 6, np.float32),
    ),
}


def _labels(classes):
    return [f"class{i}" for i in range(classes)]


def _report(name, cut=None):
    y_true, probabilities = CASES[name]
    labels = _labels(probabilities.shape[1])
    return evaluation.classification_report(
        y_true, probabilities, labels, "test", cut
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_probability_figures_match_sklearn(name):
    y_true, probabilities = CASES[name]
    classes = probabilities.shape[1]
    report = _report(name)
    ids = list(range(classes))
    if classes > 5:
        assert report["top_5_accuracy"] == pytest.approx(
            sk.top_k_accuracy_score(y_true, probabilities, k=5, labels=ids)
        )
    else:
        assert not [key for key in report if key.startswith("top_")]
    scores = probabilities.astype(np.float64)
    if classes == 2:
        assert report["positive_label"] == "class1"
        assert report["roc_auc"] == pytest.approx(
            sk.roc_auc_score(y_true, scores[:, 1])
        )
        assert report["average_precision"] == pytest.approx(
            sk.average_precision_score(y_true, scores[:, 1])
        )
        return
    assert "average_precision" not in report
    present = sorted(set(y_true))
    one_vs_rest = [sk.roc_auc_score(y_true == c, scores[:, c]) for c in present]
    assert report["roc_auc"] == pytest.approx(np.mean(one_vs_rest))
    if len(present) == classes:  # sklearn's own macro one-vs-rest
        assert report["roc_auc"] == pytest.approx(
            sk.roc_auc_score(y_true, scores, multi_class="ovr", labels=ids)
        )


def test_top_k_ties_rank_the_higher_class_first():
    report = _report("ties_six_classes")
    # All six classes tie: the top 5 are classes 5..1, so class 0 misses.
    assert report["top_5_accuracy"] == pytest.approx(6 / 8)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("cut", [None, 0.3])
def test_decisions_match_sklearn(name, cut):
    y_true, probabilities = CASES[name]
    classes = probabilities.shape[1]
    if cut is not None and classes != 2:
        with pytest.raises(ValueError, match="two classes"):
            _report(name, cut)
        return
    report = _report(name, cut)
    if cut is None:
        y_pred = probabilities.argmax(axis=1)
    else:
        y_pred = (probabilities[:, 1] >= cut).astype(int)
    assert_decisions_match_sklearn(report, y_true, y_pred, classes)
    if cut is None:
        assert report["threshold"] is None and "at_argmax" not in report
    else:
        assert report["threshold"] == cut
        argmax = probabilities.argmax(axis=1)
        assert_decisions_match_sklearn(
            report["at_argmax"], y_true, argmax, classes
        )


@pytest.mark.parametrize("kept", [0, 1])
def test_a_split_of_one_class_has_no_auc_but_valid_json(kept):
    y_true, probabilities = CASES["binary"]
    y_true, probabilities = (
        y_true[y_true == kept],
        probabilities[y_true == kept],
    )
    report = evaluation.classification_report(
        y_true, probabilities, ["no", "yes"], "test", 0.5
    )
    assert report["roc_auc"] is None
    if kept == 0:  # no positive: precision-recall is undefined too
        assert report["average_precision"] is None
    else:
        assert report["average_precision"] == pytest.approx(
            sk.average_precision_score(y_true, probabilities[:, 1])
        )
    three = evaluation.classification_report(
        np.zeros(4, int), _softmax(np.eye(3)[[0, 1, 2, 0]]), _labels(3), "t"
    )
    assert three["roc_auc"] is None
    for figures in (report, three):
        json.dumps(figures, allow_nan=False)  # null, never NaN


def test_an_empty_split_gives_nulls():
    report = evaluation.classification_report(
        np.zeros(0, int), np.zeros((0, 7), np.float32), _labels(7), "test"
    )
    for key in ("ece", "roc_auc", "top_5_accuracy"):
        assert report[key] is None
    json.dumps(report, allow_nan=False)
    evaluation.format_table(report)


def test_ece_by_hand():
    # Bins are (b/15, (b+1)/15]. Confidences 0.95, 0.95 (bin 14, one right):
    # |1/2 - 0.95| * 2/5. 0.6 (bin 8, right) and 0.62 (bin 9, wrong):
    # |1 - 0.6| * 1/5 and |0 - 0.62| * 1/5. 0.4 exactly 6/15 (bin 5, right):
    # |1 - 0.4| * 1/5.
    probabilities = np.array(
        [
            [0.95, 0.05, 0.0],
            [0.05, 0.95, 0.0],
            [0.6, 0.3, 0.1],
            [0.2, 0.62, 0.18],
            [0.4, 0.3, 0.3],
        ],  # fmt: skip
    )
    y_true = np.array([0, 0, 0, 0, 0])
    expected = (0.45 * 2 + 0.4 + 0.62 + 0.6) / 5
    got = evaluation.expected_calibration_error(y_true, probabilities)
    assert got == pytest.approx(expected)
    perfect = evaluation.expected_calibration_error(
        np.array([0, 1]), np.array([[1.0, 0.0], [0.0, 1.0]])
    )
    assert perfect == 0.0
    assert _report("binary")["ece"] == pytest.approx(
        _ece_loop(*CASES["binary"])
    )


def _ece_loop(y_true, probabilities, bins=15):
    """The textbook loop (Guo et al.'s reference code)."""
    confidence = probabilities.max(axis=1).astype(np.float64)
    correct = probabilities.argmax(axis=1) == y_true
    total = 0.0
    for lower, upper in zip(np.linspace(0, 1, bins + 1)[:-1],
                            np.linspace(0, 1, bins + 1)[1:]):  # fmt: skip
        inside = (confidence > lower) & (confidence <= upper)
        if inside.any():
            gap = abs(correct[inside].mean() - confidence[inside].mean())
            total += inside.mean() * gap
    return total


# === The decision threshold ===


def _brute_force_best_f1(y_true, scores):
    candidates = np.unique(np.concatenate([scores, [0.0, 0.5, 1.0]]))
    candidates = np.concatenate(
        [candidates, (candidates[1:] + candidates[:-1]) / 2]
    )
    return max(_macro_f1(y_true, scores >= t) for t in candidates)


def _macro_f1(y_true, y_pred):
    return sk.f1_score(
        y_true, y_pred, labels=[0, 1], average="macro", zero_division=0
    )


@pytest.mark.parametrize("seed", range(8))
def test_tuned_threshold_maximizes_f1(seed):
    rng = np.random.default_rng(seed)
    count = int(rng.integers(5, 60))
    y_true = (rng.random(count) < rng.uniform(0.1, 0.6)).astype(int)
    y_true[:2] = [0, 1]
    # Rounded scores: ties between examples of both classes.
    scores = np.round(rng.random(count) * 0.5 + 0.3 * y_true, 2)
    scores = scores.astype(np.float32)
    value, f1 = threshold.tune_macro(y_true, scores)
    best = _brute_force_best_f1(y_true, scores)
    assert f1 == pytest.approx(best)
    assert _macro_f1(y_true, scores >= np.float32(value)) == pytest.approx(best)
    # Not on a score: between the cut and the next lower one, or 0.5.
    assert value == 0.5 or value not in set(scores.tolist())


def test_threshold_stays_at_half_where_argmax_is_best():
    y_true = np.array([0, 0, 1, 1])
    assert threshold.tune_macro(y_true, [0.1, 0.3, 0.7, 0.9]) == (0.5, 1.0)
    # Best cut below 0.5: the middle of the gap, 0.25 between 0.2 and 0.3.
    assert threshold.tune_macro(y_true, [0.1, 0.2, 0.3, 0.4]) == (0.25, 1.0)
    assert threshold.tune_macro(y_true, [0.6, 0.7, 0.8, 0.9]) == (0.75, 1.0)
    # A split of one class leaves nothing to weigh.
    assert threshold.tune_macro([1, 1], [0.2, 0.4]) is None
    assert threshold.tune_macro([0, 0], [0.2, 0.4]) is None
    # A multilabel label's F1 (`tune`): all present, the cut under the
    # lowest score; none present, nothing to tune.
    assert threshold.tune([1, 1], [0.6, 0.8]) == (0.5, 1.0)
    assert threshold.tune([1, 1], [0.2, 0.4]) == (pytest.approx(0.1), 1.0)
    assert threshold.tune([0, 0], [0.2, 0.4]) is None


@pytest.mark.parametrize("seed", range(4))
def test_the_threshold_does_not_depend_on_which_class_is_class_1(seed):
    """Class 1 is the second name in sorted order ('rotten' of fresh and
    rotten): renaming the classes must not move the decision. Tuning class
    1's F1 did: it favoured whichever class sorted second."""
    rng = np.random.default_rng(seed)
    y_true = (rng.random(200) < 0.3).astype(int)
    scores = np.clip(rng.normal(0.3 + 0.35 * y_true, 0.2), 0.001, 0.999)
    scores = scores.astype(np.float32)
    value, f1 = threshold.tune_macro(y_true, scores)
    mirrored, mirrored_f1 = threshold.tune_macro(1 - y_true, 1 - scores)
    assert f1 == pytest.approx(mirrored_f1)
    decided = scores >= np.float32(value)
    decided_mirrored = (1 - scores) >= np.float32(mirrored)
    # The same examples called class 1, up to ties at the cut itself.
    assert np.mean(decided != ~decided_mirrored) <= 0.01


def test_settings():
    assert threshold.parse("auto") == "auto"
    assert threshold.parse("ARGMAX") == "argmax"
    assert threshold.parse("0.3") == 0.3
    for bad in ("1.5", "best", "-0.1"):
        with pytest.raises(UserError, match="eval.threshold"):
            threshold.parse(bad)
    with pytest.raises(UserError, match="needs two classes"):
        threshold.check("0.3", 3)
    assert threshold.check("auto", 3) == "auto"


def test_choose_falls_back_to_argmax_and_says_so(tmp_path):
    lines = []
    labels = ["no", "yes"]
    assert threshold.choose("auto", labels, lambda: None, lines.append) is None
    assert "no validation split" in lines[-1] and "argmax" in lines[-1]
    no_positive = (np.zeros(3, int), _softmax(np.zeros((3, 2))))
    assert (
        threshold.choose("auto", labels, lambda: no_positive, lines.append)
        is None
    )
    assert "'yes'" in lines[-1]
    no_negative = (np.ones(3, int), _softmax(np.zeros((3, 2))))
    assert (
        threshold.choose("auto", labels, lambda: no_negative, lines.append)
        is None
    )
    assert "'no'" in lines[-1]

    def never_called():
        raise AssertionError("multi-class runs need no validation pass")

    assert threshold.choose("auto", _labels(3), never_called, print) is None
    assert threshold.choose("argmax", labels, never_called, print) is None
    fixed = threshold.choose("0.7", labels, never_called, print)
    assert fixed == {"threshold": 0.7, "source": "config"}
    y_true, probabilities = CASES["ties_binary"]
    record = threshold.choose(
        "auto", labels, lambda: (y_true, probabilities), lines.append
    )
    assert record["source"] == "validation"
    assert record["tuning"]["macro_f1"] == pytest.approx(
        _brute_force_best_f1(y_true, probabilities[:, 1])
    )
    assert "decision threshold" in lines[-1]
    # Stored, loaded back, overridden, removed when a rerun has none.
    threshold.save(record, tmp_path)
    assert threshold.load("auto", tmp_path, 2) == record
    assert threshold.load("argmax", tmp_path, 2) is None
    assert threshold.value(threshold.load("0.2", tmp_path, 2)) == 0.2
    threshold.save(None, tmp_path)
    assert threshold.load("auto", tmp_path, 2) is None


# === End to end: a two-class text run ===


def _binary_texts(count, seed):
    """Positive and negative texts, one positive for three negatives."""
    rows = [r for r in make_texts(count, seed) if r["label"] != "neutral"]
    negatives = [r for r in rows if r["label"] == "negative"]
    positives = [r for r in rows if r["label"] == "positive"]
    return negatives + positives[: max(len(negatives) // 3, 4)]


@pytest.fixture(scope="module")
def binary_run(tiny_bert, tmp_path_factory):
    folder = tmp_path_factory.mktemp("binary")
    train = write_csv(folder / "train.csv", _binary_texts(240, seed=1))
    model_dir = folder / "run"
    result = run_cli(
        "kft-train",
        "--experiment=text_classifier",
        f"--model_dir={model_dir}",
        f"--config.backbone={tiny_bert}",
        f"--config.data.train={train}",
        "--config.data.validation_fraction=0.25",
        "--config.data.test_fraction=0.25",
        "--config.verbose=0",
        "--config.plan=full",
        "--config.epochs=1",
        "--config.learning_rate=1e-3",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return model_dir, result.stdout + result.stderr


def test_binary_run_tunes_stores_and_applies_the_threshold(binary_run):
    model_dir, log = binary_run
    stored = json.loads((model_dir / threshold.FILE).read_text())
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert stored["source"] == "validation"
    assert metrics["threshold"] == stored["threshold"]
    assert metrics["threshold_tuning"] == stored["tuning"]
    assert "decision threshold" in log and "tuned on validation" in log
    # Whether the tuned cut changes any test decision depends on the
    # draw; test_a_stored_threshold_that_moves_decisions_is_served makes
    # sure of one that does.
    assert metrics["threshold"] != 0.5
    for key in ("roc_auc", "average_precision", "ece"):
        assert isinstance(metrics[key], float), key
    assert metrics["positive_label"] == "positive"
    check = json.loads(
        (model_dir / "export" / "1" / "kft_export_check.json").read_text()
    )
    assert check["threshold"] == stored["threshold"]
    assert check["class_id_mismatches"] == check["label_mismatches"] == 0


def _cut_that_moves(scores):
    """A cut on P(class 1) that decides at least one score otherwise than
    argmax (0.5), half-way between two scores far enough apart that the
    served probabilities' rounding cannot blur it."""
    values = sorted(set(np.round(scores, 6).tolist()))
    below = [0.0] + [v for v in values if v < 0.5 - 1e-4]
    pairs = list(zip(below, below[1:]))
    if not pairs:  # every score is over 0.5: move the lowest to class 0
        above = [v for v in values if v > 0.5 + 1e-4] + [1.0]
        pairs = list(zip(above, above[1:]))[:1]
    low, high = max(pairs, key=lambda pair: (pair[1] - pair[0] > 2e-4, pair[1]))
    assert high - low > 2e-4, values
    return (low + high) / 2


def test_a_stored_threshold_that_moves_decisions_is_served(
    binary_run, tmp_path
):
    """The export decides with threshold.json's cut, not argmax: a copy of
    the run given a cut that moves test decisions is exported again, and
    kft-predict and kft-evaluate decide at that cut."""
    model_dir, _ = binary_run
    _, lines = predict_cli(model_dir, model_dir / "test_split.jsonl")
    scores = np.array([line["probabilities"][1] for line in lines])
    cut = _cut_that_moves(scores)
    copy = tmp_path / "run"
    shutil.copytree(model_dir, copy, ignore=shutil.ignore_patterns("export"))
    record = json.loads((copy / threshold.FILE).read_text())
    (copy / threshold.FILE).write_text(json.dumps({**record, "threshold": cut}))
    result = run_cli(
        "kft-export", f"--model_dir={copy}", f"--export_dir={copy / 'export'}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    check = json.loads(
        (copy / "export" / "1" / "kft_export_check.json").read_text()
    )
    assert check["threshold"] == cut
    assert check["class_id_mismatches"] == check["label_mismatches"] == 0
    _, served = predict_cli(copy, copy / "test_split.jsonl")
    decided = (scores >= np.float32(cut)).astype(int)
    assert [line["class_id"] for line in served] == decided.tolist()
    argmax = np.array([line["probabilities"] for line in lines]).argmax(1)
    assert (decided != argmax).any()
    result = run_cli("kft-evaluate", f"--model_dir={copy}")
    assert result.returncode == 0, result.stderr[-3000:]
    again = json.loads(
        (copy / "eval" / "test_split" / "metrics.json").read_text()
    )
    labels = again["labels"]
    truth = [labels.index(line["true_label"]) for line in lines]
    expected = sk.confusion_matrix(truth, decided, labels=[0, 1]).tolist()
    assert again["threshold"] == cut
    assert again["confusion_matrix"] == expected
    assert again["confusion_matrix"] != again["at_argmax"]["confusion_matrix"]


def test_kft_predict_reproduces_the_thresholded_accuracy(binary_run):
    model_dir, _ = binary_run
    result, lines = predict_cli(model_dir, model_dir / "test_split.jsonl")
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert len(lines) == metrics["num_examples"]
    right = sum(line["label"] == line["true_label"] for line in lines)
    assert right / len(lines) == pytest.approx(metrics["accuracy"], abs=1e-9)
    # The served labels apply the threshold to the served probabilities.
    probabilities = np.array([line["probabilities"] for line in lines])
    cut = np.float32(metrics["threshold"])
    served = [line["class_id"] for line in lines]
    near = np.abs(probabilities[:, 1] - cut) < 1e-5  # rounded to 6 digits
    decided = (probabilities[:, 1] >= cut).astype(int)
    assert (np.array(served) == decided)[~near].all()
    truth = [metrics["labels"].index(line["true_label"]) for line in lines]
    argmax_right = np.mean(probabilities.argmax(1) == np.array(truth))
    assert argmax_right == pytest.approx(metrics["at_argmax"]["accuracy"])


def test_python_api_decides_as_kft_predict(binary_run):
    """kft.load(run).predict answers line for line as kft-predict: the
    tuned threshold is the export's."""
    import kft

    model_dir, _ = binary_run
    _, lines = predict_cli(model_dir, model_dir / "test_split.jsonl")
    model = kft.load(str(model_dir))
    assert model.path == str(model_dir / "export" / "1")
    got = model.predict([line["input"] for line in lines], batch_size=7)
    assert got == [
        {k: v for k, v in line.items() if k != "true_label"} for line in lines
    ]
    # One text is one input, not a list of characters.
    assert model.predict(lines[0]["input"]) == got[:1]
    for bad in ([5], [None], ["fine", {"text": 3}]):
        with pytest.raises(kft.UserError, match="takes texts"):
            model.predict(bad)


@pytest.mark.parametrize(
    "from_export, setting", [(False, ""), (True, ""), (True, "argmax")]
)
def test_kft_evaluate_applies_the_stored_threshold(
    binary_run, from_export, setting
):
    model_dir, _ = binary_run
    args = (
        [f"--saved_model={model_dir / 'export' / '1'}"] if from_export else []
    )
    if setting:
        args.append(f"--config.eval.threshold={setting}")
    result = run_cli("kft-evaluate", f"--model_dir={model_dir}", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    again = json.loads(
        (model_dir / "eval" / "test_split" / "metrics.json").read_text()
    )
    metrics = json.loads((model_dir / "metrics.json").read_text())
    if setting == "argmax":
        assert again["threshold"] is None and "at_argmax" not in again
        expected = metrics["at_argmax"]["confusion_matrix"]
    else:
        assert again["threshold"] == metrics["threshold"]
        expected = metrics["confusion_matrix"]
        assert again["at_argmax"] == metrics["at_argmax"]
    assert again["confusion_matrix"] == expected
    assert again["roc_auc"] == pytest.approx(metrics["roc_auc"], abs=1e-6)


def test_a_fixed_threshold_on_three_classes_is_a_user_error(
    tiny_bert, text_csv, tmp_path
):
    train, _ = text_csv
    result = run_cli(
        "kft-train",
        "--experiment=text_classifier",
        f"--model_dir={tmp_path / 'run'}",
        f"--config.backbone={tiny_bert}",
        f"--config.data.train={train}",
        "--config.eval.threshold=0.3",
    )
    assert result.returncode == 2
    assert "needs two classes" in result.stderr.strip().splitlines()[-1]
    result = run_cli(
        "kft-train",
        "--experiment=text_classifier",
        f"--model_dir={tmp_path / 'run'}",
        "--config.eval.threshold=best",
    )
    assert result.returncode == 2
    assert "eval.threshold" in result.stderr.strip().splitlines()[-1]


def test_interval_is_the_bootstrap_spread_of_the_test_figures():
    """The 95% interval over the evaluated examples: it holds the figure,
    its width is what the binomial standard error says for accuracy
    (1.96 * 2 * sqrt(p (1-p) / N)), and it narrows as N grows."""
    rng = np.random.default_rng(0)
    widths = {}
    for count in (400, 6400):
        y_true = rng.integers(0, 3, count)
        right = rng.random(count) < 0.75
        y_pred = np.where(right, y_true, (y_true + 1) % 3)
        probabilities = np.eye(3)[y_pred] * 0.8 + 0.2 / 3
        report = evaluation.classification_report(
            y_true, probabilities, ["a", "b", "c"], "test"
        )
        interval = report["interval"]
        for key in ("accuracy", "macro_f1"):
            low, high = interval[key]
            assert low <= report[key] <= high, key
        p = report["accuracy"]
        expected = 2 * 1.96 * np.sqrt(p * (1 - p) / count)
        low, high = interval["accuracy"]
        assert high - low == pytest.approx(expected, rel=0.2)
        widths[count] = high - low
        assert interval["level"] == 0.95
        text = evaluation.format_table(report)
        assert "95% interval over these examples" in text
        assert f"accuracy {low:.4f}-{high:.4f}" in text
    assert widths[6400] < widths[400] / 3
    # The same figures give the same interval: it is seeded.
    again = evaluation.classification_report(
        y_true, probabilities, ["a", "b", "c"], "test"
    )
    assert again["interval"] == report["interval"]


def test_interval_memory_stays_small_on_a_large_split():
    """The bootstrap resamples in batches: 100,000 examples stay well under
    the 800 MB one [1000, N] index array would take."""
    import tracemalloc

    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 3, 100_000)
    y_pred = np.where(rng.random(100_000) < 0.8, y_true, (y_true + 1) % 3)
    tracemalloc.start()
    try:
        interval = evaluation.interval(y_true, y_pred, 3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert interval["accuracy"][0] < 0.8 < interval["accuracy"][1]
    assert peak < 200 * 2**20, peak


def test_macro_f1_averages_the_classes_the_split_has_or_predicts():
    """A class neither in the split nor predicted has no F1 to average
    (scikit-learn's default labels): a class too small for a test example
    does not pull the headline figure down. One predicted but absent
    counts, as a wrong guess (F1 0)."""
    labels = ["a", "b", "solo"]
    y_true = np.array([0, 0, 1, 1, 0, 1])
    for y_pred in ([0, 0, 1, 0, 0, 1], [0, 2, 1, 0, 0, 1]):
        y_pred = np.array(y_pred)
        expected = sk.f1_score(y_true, y_pred, average="macro")
        figures = evaluation.decision_figures(y_true, y_pred, labels)
        assert figures["macro_f1"] == pytest.approx(expected)
        assert figures["per_class"]["solo"]["support"] == 0
        metric = evaluation.MacroF1(3)
        metric.update_state(y_true, np.eye(3, dtype=np.float32)[y_pred])
        assert float(metric.result()) == pytest.approx(expected, rel=1e-5)
        report = evaluation.classification_report(
            y_true, np.eye(3, dtype=np.float32)[y_pred], labels, "test"
        )
        low, high = report["interval"]["macro_f1"]
        assert low <= report["macro_f1"] <= high
    # Two classes, one of them never true nor predicted: all right.
    assert threshold.macro_f1([0, 0, 0], [0, 0, 0]) == 1.0
