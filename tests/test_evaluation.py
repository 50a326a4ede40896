"""kft's metrics against scikit-learn on fixed predictions."""

import numpy as np
import pytest
from conftest import assert_decisions_match_sklearn
from sklearn import metrics as sk

from kft.tasks.classification import metrics as evaluation

CASES = {
    "random": (
        np.random.default_rng(0).integers(0, 4, 50),
        np.random.default_rng(1).integers(0, 4, 50),
    ),
    "never_predicted": (
        np.array([0, 1, 2, 2, 1, 0]),
        np.array([0, 1, 1, 1, 1, 0]),
    ),
    "absent_from_truth": (np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1])),
    "perfect": (np.array([2, 1, 0]), np.array([2, 1, 0])),
}


def _probabilities(predicted, classes):
    return np.eye(classes)[predicted] * 0.7 + 0.1


@pytest.mark.parametrize("name", sorted(CASES))
def test_report_matches_sklearn(name):
    y_true, y_pred = CASES[name]
    labels = ["a", "b", "c", "d"][: max(y_true.max(), y_pred.max()) + 1]
    classes = len(labels)
    report = evaluation.classification_report(
        y_true, _probabilities(y_pred, classes), labels, "test"
    )
    assert_decisions_match_sklearn(report, y_true, y_pred, classes)
    assert report["num_examples"] == len(y_true)
    assert report["labels"] == labels


def test_streaming_macro_f1_matches_sklearn():
    y_true, y_pred = CASES["random"]
    metric = evaluation.MacroF1(4)
    probabilities = _probabilities(y_pred, 4)
    metric.update_state(y_true[:20], probabilities[:20])
    metric.update_state(y_true[20:], probabilities[20:])
    expected = sk.f1_score(y_true, y_pred, average="macro")
    assert float(metric.result()) == pytest.approx(expected, rel=1e-5)
