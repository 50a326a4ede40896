"""kft-evaluate: evaluate a finished run again, on its test split or another.

    kft-evaluate --model_dir=DIR [--saved_model=DIR/export/1]
        [--config.data.test=SPEC] [--config.KEY=VALUE ...]

Uses the run's best weights (or, with --saved_model, an export, to check
what a server would answer) and writes DIR/eval/<split>/metrics.json with
the fields of the training run's metrics.json. A two-class run decides with
the threshold kft-train stored in DIR/threshold.json;
--config.eval.threshold=argmax (or a number) overrides it. What the
weights were trained for (backbone, head, ensemble, the seed and shares of
held-out splits) cannot be overridden; keys that only steer training
(epochs, optimizer.*, ...) are named in the log as ignored.

Every task evaluates its own way (kft/run.py hands tokens, qa and
causal_lm runs to their task's `evaluate_run`): a QA run scores exact
match and F1 with the no-answer threshold it tuned (the export's served
answers with --saved_model) and writes predictions.jsonl and report.html
too; a causal LM run measures loss and perplexity of its weights
(--saved_model is refused: its export generates text and gives no loss).
"""

from kft.cli import common

_MODEL_DIR = common.define_path("model_dir", None, "A kft-train run folder.")
_SAVED_MODEL = common.define_path(
    "saved_model", "", "Evaluate this export instead of the best weights."
)


def main(argv):
    if len(argv) > 1:
        common.fail(f"unexpected arguments: {' '.join(argv[1:])}")
    common.require(_MODEL_DIR)
    common.import_tensorflow_quietly()
    from kft import commands

    commands.evaluate_run(
        _MODEL_DIR.value, common.config_overrides(), _SAVED_MODEL.value
    )


def run():
    common.run_main(main)
