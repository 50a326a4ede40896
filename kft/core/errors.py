"""The exception types entry points turn into one line instead of a trace.

`UserError` (a mistake the user can fix) exits with status 2, `ExportError`
(an export that failed its check) and `Diverged` (a loss that went NaN) with
1, `Interrupted` (SIGTERM or Ctrl-C, after a checkpoint) with 128 + the
signal number; anything else is a bug and keeps its traceback (status 1).
"""

import difflib
import signal


class UserError(Exception):
    """A problem in the command line, config or data that the user can fix."""


def close_matches(word, choices, limit=5):
    """Returns a hint such as "did you mean: a, b?" or the valid choices."""
    choices = sorted(choices)
    matches = difflib.get_close_matches(word, choices, n=limit, cutoff=0.5)
    if matches:
        return "did you mean: " + ", ".join(matches) + "?"
    shown = ", ".join(choices[:40])
    more = f", ... ({len(choices)} in all)" if len(choices) > 40 else ""
    return f"valid choices: {shown}{more}"


class ExportError(Exception):
    """A SavedModel that did not load or did not match the Keras model.

    Not the user's doing, so the commands exit with status 1, with one line.
    """


class Interrupted(Exception):
    """SIGTERM or Ctrl-C during training: a checkpoint is written and the
    same command resumes the run."""

    def __init__(self, signum, step):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)
        self.step = step


class Diverged(Exception):
    """The loss went NaN or Inf, and retrying at lower rates did not help."""
