"""Every task kft runs, by its `--config.task` name.

Each is one `Task` (kft/tasks/base.py) in its own module; this table is
the list the config check, the commands and the tests read. A new task
is a folder under kft/tasks/ with a `TASK` and one line here.
"""

from kft.core.errors import UserError
from kft.tasks import multilabel, regression
from kft.tasks.causal_lm import task as causal_lm
from kft.tasks.classification import task as classification
from kft.tasks.qa import task as qa
from kft.tasks.tokens import task as tokens

TASKS = {
    module.TASK.name: module.TASK
    for module in (
        classification,
        multilabel,
        regression,
        tokens,
        qa,
        causal_lm,
    )
}


def get(name):
    """The task called `name`; a UserError naming the valid ones."""
    if name not in TASKS:
        raise UserError(
            f"bad value '{name}' for --config.task; valid: " + ", ".join(TASKS)
        )
    return TASKS[name]
