"""What a QA run prints and its report.html: exact match and F1 by split,
and the questions answered wrong. A kft-evaluate folder (eval/<name>/)
gets the same page for the split it scored."""

from kft.report import page as report_lib
from kft.report.markup import escape, lookup, note, section, table
from kft.tasks.qa import squad_metrics


def format_table(report):
    lines = ["split        questions  exact_match      f1"]
    for name in ("validation", "test"):
        if name in report:
            figures = report[name]
            lines.append(
                f"{name:<12} {figures['count']:>9}  "
                f"{figures['exact_match']:>11.2f}  {figures['f1']:>6.2f}"
            )
    return "\n".join(lines)


def write_report(folder, config=None, count=20):
    """report.html of a QA run, or of a kft-evaluate folder (pass the run's
    `config` dict for it): EM/F1 and the questions answered wrong."""

    def summary(run):
        m = run.metrics
        test = m["test"]
        text = (
            f"kft fine-tuned <b>{escape(lookup(run.config, 'backbone'))}"
            f"</b> to answer questions from passages of "
            f"{escape(lookup(run.config, 'data.train'))}. On "
            f"{test['count']} test questions: exact match "
            f"<b>{test['exact_match']:.2f}</b>, F1 <b>{test['f1']:.2f}</b> "
            "(SQuAD's normalization)."
        )
        threshold = m.get("null_threshold")
        if threshold is not None:
            text += f" No-answer threshold: {threshold:.3f}."
        return section("Summary", f"<p>{text}</p>")

    def sections(run):
        rows = [
            (r["id"], r["question"], " | ".join(r["answers"]), r["predicted"])
            for r in run.predictions
            if squad_metrics.squad_scores([r["predicted"]], [r["answers"]])[
                "f1"
            ]
            < 100
        ]
        figures = [
            (name, f["count"], f"{f['exact_match']:.2f}", f"{f['f1']:.2f}")
            for name in ("validation", "test")
            if (f := run.metrics.get(name))
        ]
        return [
            section(
                "Exact match and F1",
                table(("split", "questions", "exact match", "F1"), figures),
            ),
            section(
                "Questions not answered exactly",
                table(("id", "question", "answers", "predicted"), rows[:count])
                if rows
                else note("None."),
            ),
        ]

    shown = {"task", "validation", "test", "null_threshold"}
    return report_lib.write_task_page(folder, summary, sections, shown, config)


def _f1(predicted, answers):
    return squad_metrics.squad_scores([predicted], [answers])["f1"]
