"""Entity tag schemes, entity spans and entity-level metrics.

Tags are "O" or PREFIX-TYPE ("B-PER"). Two schemes: "bio" (IOB2: B, I)
and "bioes" (B, I, E, S). `check_tags` refuses a tag outside the scheme.

`entities` finds spans as seqeval's default mode does (conlleval's rules:
a stray I-PER still opens an entity); `strict_entities` as seqeval's
strict mode with the IOB2 or IOBES scheme (only well-formed spans count).
`entity_report` gives seqeval's micro precision, recall and F1 and the
per-type figures; tests/test_entities.py checks all of it against seqeval.
"""

import numpy as np

from kft.core.errors import UserError

SCHEMES = {"bio": ("B", "I"), "bioes": ("B", "I", "E", "S")}


def split_tag(tag):
    """(prefix, type) of a tag; "O" is ("O", "")."""
    if tag == "O":
        return "O", ""
    prefix, _, kind = tag.partition("-")
    return prefix, kind


def check_tags(sentences, scheme, where):
    """Raises UserError for the first tag that is not in `scheme`."""
    prefixes = SCHEMES[scheme]
    for index, tags in enumerate(sentences):
        for tag in tags:
            prefix, kind = split_tag(tag)
            if tag != "O" and (prefix not in prefixes or not kind):
                if str(tag).lstrip("-").isdigit():
                    raise UserError(
                        f"{where} sentence {index + 1}: tag '{tag}' is a "
                        "number: kft reads tag names (B-PER, O); map the "
                        "ids to their names in the file (a Hugging Face "
                        "dataset's features name them)"
                    )
                valid = ", ".join(f"{p}-TYPE" for p in prefixes)
                raise UserError(
                    f"{where} sentence {index + 1}: tag '{tag}' is not in "
                    f"the {scheme} scheme (valid: O, {valid}); set "
                    "--config.data.tag_scheme to the data's scheme"
                )


def tag_names(sentences):
    """The tag vocabulary: "O" first, then by type and prefix order."""
    tags = {tag for tags in sentences for tag in tags} - {"O"}
    return ["O"] + sorted(tags, key=_tag_order)


def _tag_order(tag):
    prefix, kind = split_tag(tag)
    return kind, "BIES".find(prefix)


# === seqeval's default mode (conlleval) ===


def _chunk_end(prev_tag, tag, prev_type, kind):
    if prev_tag in ("E", "S"):
        return True
    if prev_tag in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev_tag not in ("O", ".") and prev_type != kind


def _chunk_start(prev_tag, tag, prev_type, kind):
    if tag in ("B", "S"):
        return True
    if prev_tag in ("E", "S", "O") and tag in ("E", "I"):
        return True
    return tag not in ("O", ".") and prev_type != kind


def entities(tags):
    """[(type, first, last)] word spans, as seqeval's get_entities."""
    spans = []
    prev_tag, prev_type, begin = "O", "", 0
    for index, tag in enumerate(list(tags) + ["O"]):
        prefix = tag[0]
        kind = tag[1:].split("-", maxsplit=1)[-1] or "_"
        if _chunk_end(prev_tag, prefix, prev_type, kind):
            spans.append((prev_type, begin, index - 1))
        if _chunk_start(prev_tag, prefix, prev_type, kind):
            begin = index
        prev_tag, prev_type = prefix, kind
    return spans


# === seqeval's strict mode (IOB2, IOBES) ===

# (previous prefix, prefix) pairs that continue an entity (same type).
_INSIDE = {
    "bio": {("B", "I"), ("I", "I")},
    "bioes": {("B", "I"), ("B", "E"), ("I", "I"), ("I", "E")},
}


def _strict_end(scheme, prev, token):
    """Whether `prev` ends a well-formed entity, `token` following it."""
    (prev_prefix, prev_type), (prefix, kind) = prev, token
    if scheme == "bioes":
        return prev_prefix in ("E", "S")
    if prev_prefix not in ("B", "I"):
        return False
    return prefix in ("O", "B") or (prefix == "I" and kind != prev_type)


def strict_entities(tags, scheme):
    """[(type, first, last)] as seqeval's strict mode finds them."""
    tokens = [split_tag(tag) for tag in tags] + [("O", "")]
    starts = ("B",) if scheme == "bio" else ("B", "S")
    spans, index = [], 0
    while index < len(tokens):
        prefix, kind = tokens[index]
        if prefix not in starts:
            index += 1
            continue
        end = index + 1
        while (tokens[end - 1][0], tokens[end][0]) in _INSIDE[scheme] and (
            tokens[end][1] == kind
        ):
            end += 1
        if _strict_end(scheme, tokens[end - 1], tokens[end]):
            spans.append((kind, index, end - 1))
        index = end
    return spans


# === Metrics ===


def _figures(true_count, predicted_count, hits):
    precision = hits / predicted_count if predicted_count else 0.0
    recall = hits / true_count if true_count else 0.0
    total = precision + recall
    f1 = 2 * precision * recall / total if total else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": true_count,
    }


def _spans(sentences, find):
    return {
        (index, *span)
        for index, tags in enumerate(sentences)
        for span in find(tags)
    }


def scores(true_tags, predicted_tags, find=entities):
    """Micro figures and {type: figures} of entity spans found by `find`."""
    truth = _spans(true_tags, find)
    guess = _spans(predicted_tags, find)
    types = sorted({span[1] for span in truth | guess})
    per_type = {}
    for kind in types:
        true_set = {s for s in truth if s[1] == kind}
        guess_set = {s for s in guess if s[1] == kind}
        per_type[kind] = _figures(
            len(true_set), len(guess_set), len(true_set & guess_set)
        )
    return _figures(len(truth), len(guess), len(truth & guess)), per_type


def entity_report(true_tags, predicted_tags, scheme, split):
    """The metrics.json dict of a token-classification run.

    Args:
        true_tags, predicted_tags: per sentence, one tag per word.
        scheme: "bio" or "bioes" (the strict figures' scheme).
        split: the split's name.
    """
    micro, per_type = scores(true_tags, predicted_tags)
    strict, strict_per_type = scores(
        true_tags, predicted_tags, lambda tags: strict_entities(tags, scheme)
    )
    flat_true = [tag for tags in true_tags for tag in tags]
    flat_guess = [tag for tags in predicted_tags for tag in tags]
    words = len(flat_true)
    right = sum(a == b for a, b in zip(flat_true, flat_guess))
    return {
        "split": split,
        "task": "tokens",
        "num_examples": len(true_tags),
        "num_words": words,
        "num_entities": micro["support"],
        "precision": micro["precision"],
        "recall": micro["recall"],
        "f1": micro["f1"],
        "word_accuracy": right / words if words else 0.0,
        "per_type": per_type,
        "strict": {
            "scheme": scheme,
            "precision": strict["precision"],
            "recall": strict["recall"],
            "f1": strict["f1"],
            "per_type": strict_per_type,
        },
        "labels": sorted(per_type),
    }


def format_table(report):
    """A plain-text table of the entity figures, for the console."""
    lines = [
        f"{'type':<14}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}"
    ]
    rows = list(report["per_type"].items())
    rows.append(("micro", {**report, "support": report["num_entities"]}))
    for name, row in rows:
        lines.append(
            f"{name:<14}{row['precision']:>10.4f}{row['recall']:>10.4f}"
            f"{row['f1']:>10.4f}{row['support']:>9}"
        )
    strict = report["strict"]
    lines.append(
        f"strict ({strict['scheme']}): precision {strict['precision']:.4f}, "
        f"recall {strict['recall']:.4f}, f1 {strict['f1']:.4f}; word "
        f"accuracy {report['word_accuracy']:.4f}"
    )
    return "\n".join(lines)


# === Word probabilities to entities ===


def decode(probabilities, labels):
    """Per sentence [words, tags] probabilities to (tags, spans).

    Spans are (type, first word, last word, score), found as `entities`
    finds them; the score is the mean over the span's words of the chosen
    tag's probability. The export computes the same in its graph.
    """
    ids = np.argmax(probabilities, axis=-1)
    tags = [labels[i] for i in ids]
    best = probabilities[np.arange(len(ids)), ids] if len(ids) else ids
    spans = [
        (kind, first, last, float(np.mean(best[first : last + 1])))
        for kind, first, last in entities(tags)
    ]
    return tags, spans
