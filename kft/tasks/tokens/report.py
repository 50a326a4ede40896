"""report.html of a token-classification run: entity figures per type.

Shares kft/report/page.py's page, sections, configuration, curves and timing;
the summary and tables are the entity-level ones of metrics.json
(kft/tasks/tokens/entities.py), and the examples shown are the test sentences
with the
most wrong tags.
"""

from kft.report import page as report_lib
from kft.report.markup import escape, lookup, note, section, table

_SHOWN = {"split", "source", "per_type", "strict", "labels", "timing", "task"}


def write(folder, config=None, mistakes=10):
    """Writes `folder`/report.html (and curves.png); returns the path.
    `config`: the run's config dict, for a kft-evaluate folder."""

    def sections(run):
        return [_per_type(run.metrics), _mistakes(run.predictions, mistakes)]

    return report_lib.write_task_page(
        folder, _summary, sections, _SHOWN, config
    )


def _summary(run):
    m = run.metrics
    backbone = lookup(run.config, "backbone")
    train = lookup(run.config, "data.train")
    strict = m["strict"]
    text = (
        f"kft fine-tuned <b>{escape(backbone)}</b> to tag words of "
        f"{escape(train)}. On the {escape(m['split'])} split "
        f"({m['num_examples']} sentences, {m['num_words']} words, "
        f"{m['num_entities']} entities) it found entities with precision "
        f"<b>{m['precision']:.4f}</b>, recall <b>{m['recall']:.4f}</b> and "
        f"F1 <b>{m['f1']:.4f}</b> (micro, seqeval's default mode); strict "
        f"{escape(strict['scheme'])}: F1 {strict['f1']:.4f}. Word accuracy "
        f"{m['word_accuracy']:.4f}."
    )
    return section(
        "Summary",
        f"<p>{text}</p>",
        note(
            "An entity counts as found only when its type and its first "
            "and last word are all right. The default mode reads spans as "
            "conlleval does (a stray I- tag opens an entity); the strict "
            "mode counts only well-formed spans of the scheme."
        ),
    )


def _per_type(metrics):
    columns = ("precision", "recall", "f1", "support")
    rows = [
        [kind] + [values[c] for c in columns]
        for kind, values in metrics["per_type"].items()
    ]
    rows.append(
        ["micro"]
        + [metrics[c] for c in columns[:3]]
        + [metrics["num_entities"]]
    )
    return section(
        "Per-type precision, recall and F1",
        table(["entity type", *columns], rows),
        note("Support is the number of true entities of the type."),
    )


def _mistakes(predictions, count):
    wrong = [
        row
        for row in predictions
        if row.get("tags") and row["tags"] != row["predicted"]
    ]
    wrong.sort(
        key=lambda row: (
            -sum(a != b for a, b in zip(row["tags"], row["predicted"]))
        )
    )
    if not wrong:
        return section("Sentences with wrong tags", note("None."))
    rows = [
        (
            row["index"],
            " ".join(row["words"]),
            " ".join(row["tags"]),
            " ".join(row["predicted"]),
        )
        for row in wrong[:count]
    ]
    return section(
        "Sentences with wrong tags",
        table(("index", "words", "true tags", "predicted tags"), rows),
    )
