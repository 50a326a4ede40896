"""kft-predict: run an exported SavedModel on a file, one JSON line per input.

    kft-predict --saved_model=BASE/N --input=FILE [--batch_size=64]
    kft-predict --saved_model=MODEL_DIR/litert/model_<mode>.tflite --input=FILE

The export's signature says what to read: `serving_default`, or a causal
LM's `generate`; each of its inputs is read from the column of its name.
Text models read a CSV, TSV or JSONL file (the text column is `text` or
--text_column; a pair model's second text is `text_pair` or
--text_pair_column) or a .txt file of one text per line; a QA export
reads `question` and `context` columns, a causal LM's `prompt`; image
models read an image file, a folder of images (searched recursively; with
class sub-folders their names are the true labels; files beside them have
none), a .txt list of image paths, or a CSV/JSONL with an `image` column.
A relative image path in a list or table is read beside that file where
it is there, else from the current folder.
Files and folders are read by kft-train's readers (kft.data): malformed
rows and the links training skips are skipped, and counted on stderr with
the first few and why; a file that is not UTF-8, or holds nothing to
predict on, is a one-line error.
A token-classification (NER) export gives each line its `entities`
(type, start, end, text, score); a QA export its `answer` ("" for none),
its `start` and `end` character offsets in the context and its `score`,
with the input as `{"question", "context"}`; a causal LM `generated`, the
prompt and its continuation.
When the input holds a label column (--label_column, default `label`),
each line also gets `true_label` and the accuracy is printed on stderr
(multilabel: the subset accuracy; regression: the mean absolute error);
true labels that are no class of the model are named there, not scored.

Each line holds what the export answers: `label`, `class_id` and
`probabilities` (classification); `labels` (a list) and `probabilities`
(multilabel); `score` (regression).

A .tflite (kft-export --format=litert) is run by the LiteRT interpreter,
its inputs prepared by its run (MODEL_DIR, two folders up): images
decoded and resized, texts tokenized by the run's tokenizer.

For a SavedModel only TensorFlow and tensorflow_text are used: it answers,
as TF Serving would, without kft's model code. The SavedModel and the input
may be remote (`gs://...`): they are read through `tf.io.gfile`.
"""

import json
import os
import sys

from absl import flags

from kft.cli import common
from kft.core.errors import UserError

_SAVED_MODEL = common.define_path(
    "saved_model", None, "An export folder, BASE/N, or a run's .tflite."
)
_INPUT = common.define_path("input", None, "The file (or folder) to run.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Inputs per call.")
_TEXT_COLUMN = flags.DEFINE_string("text_column", "text", "Text column.")
_PAIR_COLUMN = flags.DEFINE_string(
    "text_pair_column", "text_pair", "Second text column (pair models)."
)
_IMAGE_COLUMN = flags.DEFINE_string("image_column", "image", "Image column.")
_LABEL_COLUMN = flags.DEFINE_string(
    "label_column", "label", "Column with true labels, if any."
)
_LABEL_DELIMITER = flags.DEFINE_string(
    "label_delimiter", ",", "Multilabel: what separates true labels."
)


# === Reading inputs: ([(input, true label or None)], BadRecords) ===


def table_inputs(path, columns, label_column):
    """The inputs of a CSV, TSV or JSONL file and its bad records.

    Read by kft-train's reader (kft.data.tables), so the malformed rows
    training skips (a stray quote, a line that is not UTF-8, a JSONL line
    without the column) are skipped and counted here too; an empty text
    is answered. With two columns the input is a text pair.
    """
    from kft.data import tables
    from kft.data.bad_records import BadRecords

    bad = BadRecords(path)
    extension = os.path.splitext(path)[1].lower()
    if extension == ".txt":
        return _text_lines(path, columns, bad)
    if extension not in (".csv", ".tsv", ".jsonl"):
        raise UserError(
            f"unsupported input file {path}; use .csv, .tsv, .jsonl or .txt "
            "(one text per line)"
        )
    rows = tables.read_rows(path, bad)
    names = tables.column_names(rows)
    for column in columns:
        if rows and column not in names:
            raise UserError(
                f"{path} has no column '{column}'; columns: "
                f"{', '.join(map(str, names))} (set --text_column, "
                "--text_pair_column or --image_column)"
            )
    items = []
    for where, row in rows:
        value = _values(row, columns, where, bad)
        if value is not None:
            items.append((value, _label(row.get(label_column))))
    return _some(items, bad, path)


def _text_lines(path, columns, bad):
    """A .txt file's inputs: each line that is not blank is a text."""
    from kft.data import tables
    from kft.data.bad_records import NOT_UTF8

    if len(columns) > 1:
        raise UserError(
            f"{path}: a .txt file holds one text per line; this export takes "
            f"{', '.join(columns)}: give a .csv, .tsv or .jsonl with a pair's "
            "columns"
        )
    items = []
    for number, text in tables.read_lines(path):
        if text is None:
            bad.add(f"{path}:{number}", NOT_UTF8)
        elif text.strip():
            items.append((text.rstrip("\r\n"), None))
    return _some(items, bad, path)


def _some(items, bad, path):
    """(items, bad), or a UserError when there is nothing to predict on."""
    if not items:
        found = f": {bad.count} bad records, {bad.listed()}"
        raise UserError(f"{path} holds no inputs{found if bad.count else ''}")
    return items, bad


def _values(row, columns, where, bad):
    """The input of one row (a tuple for a pair), or None if it is bad."""
    from kft.data import tables

    values = []
    for column in columns:
        value = row.get(column)
        problem = f"no {column}" if value is None else None
        problem = problem or tables.not_a_text(column, value)
        if problem:
            bad.add(where, problem)
            return None
        values.append(str(value))
    return tuple(values) if len(values) > 1 else values[0]


def _label(value):
    """The true label as training reads it: text, JSON true as "true"; a
    list (multilabel JSONL) of such texts."""
    from kft.data import targets

    if isinstance(value, list):
        return [targets.label_text(item) for item in value]
    if value is None or targets.label_text(value) == "":
        return None
    return targets.label_text(value)


def image_inputs(path, column, label_column):
    """The image files of a folder, an image, a .txt list of paths, or a
    table with an image column; and the bad records met.

    A folder is searched as kft-train searches it (kft.data.images): each
    real file once, links into or above it not followed. With class
    sub-folders their names are the true labels.
    """
    from kft.core import files
    from kft.data import images, tables
    from kft.data.bad_records import BadRecords

    if files.isdir(path):
        bad = BadRecords(path)
        found = images.image_files(path, bad)
        classes = [
            name
            for name in files.listdir(path)
            if files.isdir(os.path.join(path, name))
        ]
        labelled = [
            (file, _class_of(file, path) if classes else None) for file in found
        ]
        return _some(labelled, bad, path)
    if images.is_image(path):
        return [(path, None)], BadRecords(path)
    if path.lower().endswith(".txt"):
        lines = files.read_text(path).splitlines()
        names = [line.strip() for line in lines if line.strip()]
        return [
            (tables.located(name, path), None) for name in names
        ], BadRecords(path)
    if not path.lower().endswith((".csv", ".tsv", ".jsonl")):
        raise UserError(
            f"unsupported input file {path}; an image model reads an image "
            f"({', '.join(images.IMAGE_EXTENSIONS)}), a folder of them, a "
            ".txt list of their paths, or a .csv, .tsv or .jsonl with an "
            f"'{column}' column"
        )
    items, bad = table_inputs(path, [column], label_column)
    return [(tables.located(name, path), label) for name, label in items], bad


def _class_of(file, top):
    """The class folder `file` is in, or None for a file beside them."""
    parts = os.path.relpath(file, top).split(os.sep)
    return parts[0] if len(parts) > 1 else None


# Inputs that answer with a class (or score) a label column can check.


def _inputs(source, names, labelled):
    """([(input, true label)], BadRecords) for the signature's inputs.

    Each input reads the column of its own name (`question`, `context`,
    `prompt`), but `text` and `text_pair`, whose columns are flags.
    """
    if names == ["image_bytes"]:
        return image_inputs(source, _IMAGE_COLUMN.value, _LABEL_COLUMN.value)
    flagged = {"text": _TEXT_COLUMN.value, "text_pair": _PAIR_COLUMN.value}
    columns = [flagged.get(name, name) for name in names]
    return table_inputs(
        source, columns, _LABEL_COLUMN.value if labelled else None
    )


def main(argv):
    if len(argv) > 1:
        common.fail(f"unexpected arguments: {' '.join(argv[1:])}")
    common.require(_SAVED_MODEL, _INPUT)
    if _BATCH_SIZE.value < 1:
        common.fail(f"--batch_size must be at least 1, not {_BATCH_SIZE.value}")
    path, source = _SAVED_MODEL.value, _INPUT.value
    common.import_tensorflow_quietly(("tensorflow_text",))
    import tensorflow as tf

    from kft.core import files
    from kft.serving import predict as predict_lib
    from kft.serving import publish

    tflite = path.endswith(".tflite")
    if not files.exists(
        path if tflite else os.path.join(path, "saved_model.pb")
    ):
        newest = publish.newest_in(path)
        hint = f"an export base: its newest version is {newest}"
        if newest is None:
            newest = publish.newest_checked(path)
            hint = f"a run folder: its newest export is {newest}"
        common.fail(
            f"no SavedModel at {path} "
            f"({hint if newest else 'expected BASE/N or a .tflite'})"
        )
    if not files.exists(source):
        common.fail(f"input not found: {source}")

    if tflite:
        from kft.serving import litert_predict

        model = litert_predict.Predictor(path)
        names, is_image, label_names = model.names, model.is_image, model.labels
        answer = model.answers
    else:
        serve = predict_lib.signature(tf.saved_model.load(path), path)
        names = predict_lib.input_names(serve)
        is_image = names == ["image_bytes"]
        label_names = predict_lib.label_names(path)

        def answer(values):
            return predict_lib.answers(serve, names, values, is_image)

    labelled = set(names) in predict_lib.CLASS_INPUTS
    items, bad = _inputs(source, names, labelled)
    note = bad.check(len(items), max_fraction=1.0)
    if note:
        print(f"kft-predict: {note}", file=sys.stderr)
    scores = Agreement(_LABEL_COLUMN.value, _LABEL_DELIMITER.value, label_names)
    size = _BATCH_SIZE.value
    for start in range(0, len(items), size):
        batch = items[start : start + size]
        replies = answer([value for value, _ in batch])
        for (value, true_label), reply in zip(batch, replies):
            line = predict_lib.line(value, reply, label_names, names)
            scores.add(line, true_label)
            print(json.dumps(line, ensure_ascii=False))
        if sys.stderr.isatty():  # a terminal sees how far it has come
            done = min(start + size, len(items))
            print(f"\r{done}/{len(items)} inputs", end="", file=sys.stderr)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(scores.summary(len(items)), file=sys.stderr)
    if scores.failed_all(len(items)):
        sys.exit(1)


class Agreement:
    """Counts errors and how the answers agree with the true labels, each
    read as the task reads its labels (a number, a list of labels)."""

    def __init__(self, label_column, delimiter, known=()):
        self.label_column, self.delimiter = label_column, delimiter
        self.known = set(known)  # the model's classes; empty: unchecked
        self.unknown = {}  # true labels that are none of them: count
        self.errors = self.labelled = self.right = self.not_numbers = 0
        self.absolute_error = 0.0
        self.scores = self.sets = False

    def add(self, line, true_label):
        """Counts `line` and gives it its `true_label` (when it has one)."""
        self.errors += "error" in line
        if true_label is None or "error" in line:
            return
        if "score" in line:
            self.scores = True
            try:
                truth = float(true_label)
            except (TypeError, ValueError):
                self.not_numbers += 1
                return
            line["true_label"] = truth
            self.absolute_error += abs(line["score"] - truth)
            self.labelled += 1
            return
        self.sets = "labels" in line
        if self.sets:
            if "".join(str(true_label).split()) == "[]":
                true_label = []  # a table cell's "none", as training reads
            elif not isinstance(true_label, list):
                true_label = true_label.split(self.delimiter)
            truth = sorted({n.strip() for n in true_label if n.strip()})
            names = truth
        else:
            truth, names = true_label, [true_label]
        line["true_label"] = truth
        if self._unknown(names):
            return
        said = set(line["labels"]) if self.sets else line["label"]
        self.right += said == (set(truth) if self.sets else truth)
        self.labelled += 1

    def _unknown(self, names):
        """Counts the names that are no class of the model; True if any."""
        strange = [
            name for name in names if self.known and name not in self.known
        ]
        for name in strange:
            self.unknown[name] = self.unknown.get(name, 0) + 1
        return bool(strange)

    def failed_all(self, count):
        """Whether there were inputs and none could be answered."""
        return count > 0 and self.errors == count

    def summary(self, count):
        text = f"kft-predict: {count} inputs"
        if self.errors:
            text += f", {self.errors} could not be read"
        if self.not_numbers:
            some = (
                "1 true label is"
                if self.not_numbers == 1
                else (f"{self.not_numbers} true labels are")
            )
            text += f", {some} not a number (not scored)"
        if self.unknown:
            text += self._unknown_note()
        if not self.labelled:
            return text
        against = f"against '{self.label_column}'"
        if self.scores:
            mae = self.absolute_error / self.labelled
            return f"{text}; mean absolute error {mae:.4f} {against}"
        kind = "subset accuracy" if self.sets else "accuracy"
        return (
            f"{text}; {kind} {self.right / self.labelled:.4f} "
            f"({self.right}/{self.labelled}) {against}"
        )

    def _unknown_note(self):
        count = sum(self.unknown.values())
        names = ", ".join(repr(name) for name in sorted(self.unknown)[:5])
        more = ", ..." if len(self.unknown) > 5 else ""
        some = (
            "1 true label is not a class"
            if count == 1
            else f"{count} true labels are not classes"
        )
        hint = ""
        if self.sets:
            hint = (
                f"; split at '{self.delimiter}': give the run's "
                "--label_delimiter"
            )
        return f", {some} of the model ({names}{more}; not scored{hint})"


def run():
    common.run_main(main)
