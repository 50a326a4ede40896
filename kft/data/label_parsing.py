"""Parsing label values for the tasks to come: multi-label and regression.

The builder supports classification only today (one label name per
example, read as a string). These helpers turn a label cell into what a
multi-label or regression task needs, so the tasks issue can wire them; a
value they cannot parse raises ValueError, which the readers can count as
a bad record.
"""

import json
import math


def parse_multi_label(value, delimiter="|"):
    """Returns the label names of one multi-label cell, sorted, no repeats.

    Args:
        value: a JSON list (from JSONL, or a cell such as '["a", "b"]') or
            a delimited string ("a|b").
        delimiter: what separates names in a string cell.

    Example:
        >>> parse_multi_label("sports|news")
        ['news', 'sports']
    """
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"invalid JSON list: {error.msg}") from None
    if isinstance(value, list):
        names = [str(item).strip() for item in value]
    elif isinstance(value, str):
        names = [part.strip() for part in value.split(delimiter)]
    else:
        raise ValueError(f"expected a list or a string, got {value!r}")
    return sorted({name for name in names if name})


def parse_number(value):
    """Returns one regression target as a finite float.

    Example:
        >>> parse_number(" 4.5 ")
        4.5
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {value!r}")
    return number
