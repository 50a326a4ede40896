"""What a label is, by task: a class, a set of labels, or a number.

`parse` reads one record's raw label (a CSV cell, a JSON value, a TFDS
feature) for `config.task`; a label of the wrong shape is a bad record
(kft.data.bad_records) with the reason. A class or label name is the text
a file would spell it as, in one spelling (`label_text`: JSON true and
"True" are "true", 1.0 and "1.0" are "1"), and
one holding a control character (a NUL, a newline) is a bad record: it is
almost surely corrupt data, and labels.txt holds one name per line.
`vocabulary` names the model's outputs from the training labels, `encode`
turns labels into the arrays the model trains on, and `decode` turns them
back into what a file says.

- classification: one label per example; class ids [N] (int64).
- multilabel: a set of labels per example, given as a delimited string
  (`data.label_delimiter`, "sports,politics") or a JSON list
  (["sports", "politics"]); a JSON [] is an example with none of the
  labels. Multi-hot rows [N, L] (float32).
- regression: a number per example; targets [N] (float32). The one
  output is named after the label column.
"""

import math
import re
import unicodedata

import numpy as np

from kft.core.errors import UserError

TASKS = ("classification", "multilabel", "regression")


def label_text(value):
    """A label as text, one spelling per class whatever wrote the file:
    JSON true, "true" and "True" are "true"; 1, 1.0, "1" and "1.0" are
    "1" (pandas writes a column of whole numbers with a missing value as
    1.0, and booleans as True); a float NaN is "" (missing); accented
    letters in one Unicode form (NFC), however they were typed."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isnan(value):
        return ""
    text = unicodedata.normalize("NFC", str(value).strip())
    if text.lower() in ("true", "false"):
        return text.lower()
    if re.fullmatch(r"-?\d+\.0+", text):
        return text[: text.index(".")]
    return text


def _control_character(names):
    """Why a name holding a control character is bad, or None."""
    for name in names:
        for character in name:
            if unicodedata.category(character) == "Cc":
                return (
                    f"label holds control character U+{ord(character):04X} "
                    "(corrupt data?)"
                )
    return None


def _class_label(value):
    if isinstance(value, list | dict):
        return None, (
            "label is not one value (several labels per example: set "
            "--config.task=multilabel)"
        )
    if value is None or label_text(value) == "":
        return None, "missing label"
    name = label_text(value)
    problem = _control_character([name])
    return (None, problem) if problem else (name, None)


_NO_LABEL_SET = "missing label (write [] for none)"


def _label_set(value, delimiter):
    if isinstance(value, list):
        if any(isinstance(item, list | dict) for item in value):
            return None, "label list holds a list or an object"
        names = [label_text(item) for item in value]
    elif isinstance(value, dict) or value is None or label_text(value) == "":
        return None, _NO_LABEL_SET
    elif "".join(label_text(value).split()) == "[]":
        return (), None  # a table cell's "none of the labels", as JSON's
    else:
        text = label_text(value)
        names = text.split(delimiter) if delimiter else [text]
        names = [label_text(name) for name in names]
        if not any(names):
            return None, _NO_LABEL_SET
    problem = _control_character(names)
    if problem:
        return None, problem
    return tuple(sorted({name for name in names if name})), None


def _number(value):
    if isinstance(value, list | dict) or value is None:
        return None, "label is not a number (a regression target)"
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value).strip()
    if not text:
        return None, "missing label"
    try:
        number = float(text)
    except ValueError:
        return None, (
            f"label '{text[:40]}' is not a number (regression needs "
            "numeric targets; --config.data.label_column names the column)"
        )
    if not math.isfinite(number):
        return None, f"label '{text}' is not a finite number"
    return number, None


def parse(value, task, delimiter=","):
    """Returns (label, None), or (None, why) where the label is bad."""
    if task == "multilabel":
        return _label_set(value, delimiter)
    if task == "regression":
        return _number(value)
    return _class_label(value)


def _sorted_names(names):
    names = sorted(set(names))
    if all(re.fullmatch(r"-?\d+", name) for name in names):
        names = sorted(names, key=int)
    return names


def _one_line_names(names, source):
    """`names`, or a UserError for one that breaks a line (labels.txt,
    which every later command reads, holds one name a line)."""
    for name in names:
        if "\n" in name or "\r" in name:
            raise UserError(
                f"{source}: the class name {name!r} holds a line break; "
                "rename it (labels.txt holds one class a line)"
            )
    return names


def vocabulary(labels, task, source, column="label"):
    """The model's output names, from the training labels.

    Classes (classification, at least two) or labels (multilabel, at
    least one); for regression the one target, named `column`.
    """
    if task == "regression":
        return [column]
    if task == "multilabel":
        names = _sorted_names(name for row in labels for name in row)
        if not names:
            raise UserError(
                f"{source} holds no labels: every example's label set is "
                "empty; multilabel needs at least one label in use"
            )
        return _one_line_names(names, source)
    names = _one_line_names(_sorted_names(labels), source)
    if len(labels) >= 20 and len(names) > 0.9 * len(labels):
        raise UserError(
            f"{source}: column '{column}' has {len(names)} different labels "
            f"in {len(labels)} rows, almost one class per row; is "
            "--config.data.label_column right? (a number to predict: "
            "--config.task=regression)"
        )
    if len(names) < 2:
        raise UserError(
            f"{source} has a single class ('{names[0]}'); "
            "classification needs at least two"
        )
    return names


def _unseen(names, vocabulary, source):
    unseen = sorted(set(names) - set(vocabulary))
    if unseen:
        raise UserError(
            f"label '{unseen[0]}' in {source} never occurs in the training "
            f"data (training labels: {', '.join(vocabulary)})"
        )


def encode(labels, vocabulary, task, source):
    """The training arrays of `labels`: ids, multi-hot rows or targets.

    A label outside `vocabulary` (classification, multilabel) or a value
    that is not a number (regression) is a UserError naming `source`.
    """
    if task == "regression":
        numbers = []
        for label in labels:
            number, problem = _number(label)
            if problem:
                raise UserError(f"{source}: {problem}")
            numbers.append(number)
        return np.array(numbers, dtype=np.float32)
    index = {name: i for i, name in enumerate(vocabulary)}
    if task == "multilabel":
        rows = [
            label if isinstance(label, tuple) else (label,) for label in labels
        ]
        _unseen({name for row in rows for name in row}, vocabulary, source)
        hot = np.zeros((len(rows), len(vocabulary)), dtype=np.float32)
        for i, row in enumerate(rows):
            hot[i, [index[name] for name in row]] = 1.0
        return hot
    _unseen(labels, vocabulary, source)
    return np.array([index[label] for label in labels], dtype=np.int64)


def decode(encoded, vocabulary, task):
    """What a data file says for each example: the inverse of `encode`."""
    if task == "regression":
        return [float(value) for value in encoded]
    if task == "multilabel":
        return [[vocabulary[j] for j in np.flatnonzero(row)] for row in encoded]
    return [vocabulary[int(i)] for i in encoded]


def strata(labels, task):
    """What held-out splits stratify by: the class, or nothing (random)."""
    if task == "classification":
        return labels
    return [0] * len(labels)
