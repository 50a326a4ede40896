"""Question-answering data: SQuAD JSON, JSONL and TFDS squad, as examples.

- SQuAD JSON (`.json`): `{"data": [{"paragraphs": [{"context": ...,
  "qas": [{"id", "question", "answers": [{"text", "answer_start"}],
  "is_impossible"}]}]}]}`, v1.1 and v2.0.
- JSONL (`.jsonl`): one object per line with `question`, `context` and
  `answers`, either `{"text": [...], "answer_start": [...]}` (as Hugging
  Face datasets write it) or `[{"text", "answer_start"}, ...]`; `id` is
  optional. An empty answer list is an unanswerable (v2) question.
- `tfds:squad/v1.1:train`, `tfds:squad/v2.0:validation`: the same fields.

An answer whose `answer_start` does not point at its text in the context
(an off-by-some offset is common in hand-made data) is looked up near the
given start; one that is nowhere in the context makes the question a bad
record (kft.data.bad_records).
"""

import collections
import dataclasses
import json

import numpy as np

from kft.core import files
from kft.core.errors import UserError
from kft.data import tables, tfds_source
from kft.data.bad_records import BadRecords


@dataclasses.dataclass
class Example:
    """One question on one context; `answers` empty when unanswerable.

    `answers` holds (text, start character) pairs; the first one is the
    training target, all of them count when scoring.
    """

    id: str
    question: str
    context: str
    answers: list

    @property
    def answer_span(self):
        """(start, end) characters of the training answer, or None."""
        if not self.answers:
            return None
        text, start = self.answers[0]
        return start, start + len(text)


def _locate(context, text, start):
    """The start of `text` in `context` nearest to `start`, or None."""
    if context[start : start + len(text)] == text:
        return start
    found = list(_occurrences(context, text))
    if not found:
        return None
    return min(found, key=lambda i: abs(i - start))


def _occurrences(context, text):
    index = context.find(text)
    while index >= 0:
        yield index
        index = context.find(text, index + 1)


def _answers(raw):
    """[(text, start)] from either JSON layout of an answer list."""
    if isinstance(raw, dict):
        return list(zip(raw.get("text", []), raw.get("answer_start", [])))
    return [(answer["text"], answer["answer_start"]) for answer in raw]


def make_example(row, where, bad, index):
    """An `Example` from one record's fields, or None (counted as bad)."""
    question, context = row.get("question"), row.get("context")
    if not isinstance(question, str) or not question.strip():
        bad.add(where, "no question")
        return None
    if not isinstance(context, str) or not context.strip():
        bad.add(where, "no context")
        return None
    try:
        raw = _answers(row.get("answers") or [])
    except (KeyError, TypeError):
        bad.add(where, "answers are not text and answer_start")
        return None
    if row.get("is_impossible"):
        raw = []
    answers = []
    for text, start in raw:
        found = _locate(context, str(text), int(start))
        if found is None:
            bad.add(where, f"answer '{str(text)[:40]}' is not in the context")
            return None
        answers.append((str(text), found))
    return Example(str(row.get("id", index)), question, context, answers)


def _read(path):
    try:
        return files.read_text(path)
    except files.Error as error:
        raise UserError(f"cannot read {path}: {error.message}") from None


def _squad_json(path, bad):
    try:
        document = json.loads(_read(path))
        articles = document["data"]
    except (ValueError, KeyError, TypeError):
        raise UserError(
            f"{path} is not SQuAD JSON (a 'data' list of articles with "
            "paragraphs and qas)"
        ) from None
    examples = []
    for article in articles:
        for paragraph in article.get("paragraphs", []):
            for qa in paragraph.get("qas", []):
                row = dict(qa, context=paragraph.get("context"))
                where = f"{path}: question {qa.get('id', len(examples))}"
                example = make_example(row, where, bad, len(examples))
                if example is not None:
                    examples.append(example)
    return examples


def _jsonl(path, bad):
    examples = []
    for where, row in tables.jsonl_rows(tables.read_lines(path), path, bad):
        example = make_example(row, where, bad, len(examples))
        if example is not None:
            examples.append(example)
    return examples


def _tfds(spec, config, bad):
    import tensorflow_datasets as tfds

    name, split = tfds_source.parse_spec(spec)
    with tfds_source.quiet_info_logs():
        try:
            builder = tfds.builder(name, data_dir=config.tfds_data_dir or None)
            builder.download_and_prepare()
            dataset = builder.as_dataset(split=split)
        except Exception as error:  # tfds raises many kinds
            first = str(error).splitlines()[0][:300] if str(error) else ""
            raise UserError(
                f"cannot load {spec}: {type(error).__name__}: {first}"
            ) from None
    examples = []
    for record in tfds.as_numpy(dataset):
        answers = record.get("answers", {})
        row = {
            "id": record["id"].decode(),
            "question": record["question"].decode(),
            "context": record["context"].decode(),
            "answers": {
                "text": [t.decode() for t in answers.get("text", [])],
                "answer_start": list(answers.get("answer_start", [])),
            },
            "is_impossible": bool(record.get("is_impossible", False)),
        }
        where = f"{spec}: {row['id']}"
        example = make_example(row, where, bad, len(examples))
        if example is not None:
            examples.append(example)
    return examples


def read(spec, config):
    """The examples of one spec; bad records skipped and reported.

    Args:
        spec: a `.json` (SQuAD), `.jsonl` file, or `tfds:squad...` spec.
        config: the `data` config (on_error, max_bad_fraction,
            tfds_data_dir).

    Returns:
        (examples, note): the note is a line about skipped records, or None.
    """
    bad = BadRecords(spec, config.on_error)
    if spec.startswith("tfds:"):
        examples = _tfds(spec, config, bad)
    elif spec.endswith(".json"):
        examples = _squad_json(spec, bad)
    elif spec.endswith(".jsonl"):
        examples = _jsonl(spec, bad)
    else:
        raise UserError(
            f"question-answering data must be SQuAD .json, .jsonl or a "
            f"tfds: spec, not {spec}"
        )
    note = bad.check(len(examples), config.max_bad_fraction)
    if not examples:
        raise UserError(f"{spec} holds no usable questions")
    return examples, note


def _held_out(examples, fraction, seed):
    """(kept, held out): whole contexts go out, a seeded `fraction` of
    the questions, so no passage is on both sides; the last context is
    never held out, so training keeps one at least."""
    contexts = sorted({example.context for example in examples})
    order = np.random.default_rng(seed).permutation(len(contexts))
    goal = int(round(len(examples) * fraction))
    per_context = collections.Counter(e.context for e in examples)
    out, count = set(), 0
    for index in order:
        if count >= goal or len(out) == len(contexts) - 1:
            break
        out.add(contexts[index])
        count += per_context[contexts[index]]
    kept = [e for e in examples if e.context not in out]
    return kept, [e for e in examples if e.context in out]


def load_splits(data_config, seed):
    """{"train", "validation", "test"} example lists, and log notes.

    A split without a spec is held out of the training data by its
    fraction (validation may be empty when its fraction is 0).
    """
    if not data_config.train:
        raise UserError("no training data; set --config.data.train")
    notes = []
    splits = {}
    for name in ("train", "validation", "test"):
        spec = data_config[name]
        if spec:
            splits[name], note = read(spec, data_config)
            if note:
                notes.append(note)
    for name in ("test", "validation"):
        fraction = data_config[f"{name}_fraction"]
        if name in splits or fraction <= 0:
            continue
        before = len(splits["train"])
        splits["train"], splits[name] = _held_out(
            splits["train"], fraction, seed
        )
        held = len(splits[name])
        if not held:
            if name == "test":
                raise UserError(
                    f"{data_config.train}: all its questions share 1 context,"
                    " and test questions are held out by whole contexts: "
                    "give --config.data.test (and --config.data.validation)"
                )
            notes.append(
                "validation: none held out (the one context left trains)"
            )
            continue
        notes.append(
            f"{name}: {held} questions ({held / before:.0%}) held out of "
            f"{data_config.train} (whole contexts, {fraction:.0%} asked, "
            f"seed {seed})"
        )
    if not splits.get("test"):
        raise UserError(
            "no test questions: set --config.data.test or a test_fraction"
        )
    splits.setdefault("validation", [])
    return splits, notes
