"""SQuAD's exact match and F1, as its official evaluation computes them
(tests/test_qa.py checks them against that script)."""

import collections
import re
import string

import numpy as np


def normalize_answer(text):
    """SQuAD's normalization: lower case, no punctuation, no articles,
    single spaces."""
    text = text.lower()
    text = "".join(char for char in text if char not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


_PUNCTUATION = set(string.punctuation)


def exact_match(prediction, answer):
    return float(normalize_answer(prediction) == normalize_answer(answer))


def f1_score(prediction, answer):
    """Token-overlap F1 of normalized texts (1.0 when both are empty)."""
    predicted = normalize_answer(prediction).split()
    gold = normalize_answer(answer).split()
    if not predicted or not gold:
        return float(predicted == gold)
    common = collections.Counter(predicted) & collections.Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(predicted)
    recall = same / len(gold)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions, answers):
    """Exact match and F1 in percent, as SQuAD's evaluation reports them.

    Args:
        predictions: predicted answer texts ("" for no answer).
        answers: for each question, the list of gold answer texts; an
            empty list is an unanswerable (SQuAD v2) question, which only
            the empty prediction gets right.

    Returns:
        {"exact_match", "f1", "count"}, plus "has_answer_*" and
        "no_answer_*" figures when both kinds of question are present.
    """
    if len(predictions) != len(answers):
        raise ValueError(
            f"{len(predictions)} predictions for {len(answers)} questions"
        )
    exact, f1 = [], []
    for prediction, golds in zip(predictions, answers):
        golds = [gold for gold in golds if normalize_answer(gold)] or [""]
        exact.append(max(exact_match(prediction, gold) for gold in golds))
        f1.append(max(f1_score(prediction, gold) for gold in golds))
    result = _percent(exact, f1)
    answerable = np.array([bool(golds) for golds in answers])
    if answerable.any() and not answerable.all():
        exact, f1 = np.array(exact), np.array(f1)
        for name, mask in (("has", answerable), ("no", ~answerable)):
            part = _percent(exact[mask], f1[mask])
            result.update({f"{name}_answer_{k}": v for k, v in part.items()})
    return result


def _percent(exact, f1):
    count = len(exact)
    if not count:
        return {"exact_match": 0.0, "f1": 0.0, "count": 0}
    return {
        "exact_match": 100.0 * float(np.sum(exact)) / count,
        "f1": 100.0 * float(np.sum(f1)) / count,
        "count": count,
    }
