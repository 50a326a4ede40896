"""The one exception type for mistakes a user can fix.

Entry points catch `UserError`, print its message on one line and exit with
status 2; anything else is a bug and keeps its traceback (exit status 1).
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
