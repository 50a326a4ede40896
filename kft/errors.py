"""The exception types entry points turn into one line instead of a trace.

`UserError` (a mistake the user can fix) exits with status 2, `ExportError`
(an export that failed its check) with 1; anything else is a bug and keeps
its traceback (exit status 1).
"""

import difflib


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
