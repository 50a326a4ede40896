"""Bad records: skipped, counted and reported, or raised at the first one.

A bad record is one example that cannot be used: an image that does not
decode, an empty text, a missing label, a malformed CSV row, an invalid
JSONL line, a line that is not UTF-8. By default (`data.on_error=skip`) the
readers skip them, and loading reports how many and where; the run stops
only when more than `data.max_bad_fraction` of a spec's records are bad.
With `data.on_error=raise` the first one stops the run, named by file and
line. Either way no bad record reaches the tf.data pipeline, so an epoch
never fails halfway.
"""

import dataclasses
import re

from kft.core.errors import UserError

# How many bad records a report names; the rest are counted.
SHOWN = 3
NOT_UTF8 = "not UTF-8"


@dataclasses.dataclass
class BadRecords:
    """The bad records met while reading one spec.

    Args:
        source: the spec, as the report names it.
        on_error: "skip" (count and go on) or "raise" (UserError at once).
        count: how many were skipped.
        examples: the first few, as "where (reason)": by line where
            `where` ends in one (file:line), else in the order met.
    """

    source: str
    on_error: str = "skip"
    count: int = 0
    examples: list = dataclasses.field(default_factory=list)
    not_utf8: int = 0  # of `count`: lines that are not UTF-8

    def __post_init__(self):
        if self.on_error not in ("skip", "raise"):
            raise UserError(
                f"bad value '{self.on_error}' for --config.data.on_error; "
                "valid: skip, raise"
            )

    def add(self, where, reason):
        """Records one bad record at `where` (file:line), or raises."""
        if self.on_error == "raise":
            raise UserError(
                f"bad record at {where}: {reason} "
                "(--config.data.on_error=skip skips bad records)"
            )
        self.count += 1
        self.not_utf8 += reason == NOT_UTF8
        # Readers find bad records in more than one pass (parsing, then
        # columns): the first few by line are kept, not the first found.
        self.examples.append(f"{where} ({reason})")
        self.examples.sort(key=_line)
        del self.examples[SHOWN:]

    def listed(self):
        """The first few bad records, then '...' if there are more."""
        more = ", ..." if self.count > len(self.examples) else ""
        return ", ".join(self.examples) + more

    def check(self, kept, max_fraction):
        """Returns a report line, or None; raises if too many are bad.

        Args:
            kept: how many good records were read beside the bad ones.
            max_fraction: the largest share of bad records allowed.
        """
        if not self.count:
            return None
        total = kept + self.count
        share = self.count / total
        # Lines that are not UTF-8 come from a file saved in another
        # encoding (Latin-1, Windows-1252: Excel's CSV); re-saving keeps them.
        resave = (
            f"; {self.not_utf8} of them are not UTF-8: the file looks saved "
            "as Latin-1 or Windows-1252, re-save it as UTF-8"
            if self.not_utf8
            else ""
        )
        if share > max_fraction:
            fix = "; fix them or raise --config.data.max_bad_fraction"
            if self.not_utf8 * 2 >= self.count:
                fix = resave
            raise UserError(
                f"{self.count} of {total} records in {self.source} are bad "
                f"({share:.1%}, more than data.max_bad_fraction="
                f"{max_fraction:g}): {self.listed()}{fix}"
            )
        return (
            f"skipped {self.count} bad records of {total} in {self.source} "
            f"({share:.1%}): {self.listed()}{resave}"
        )


def _line(example):
    """The line number in "file:line (reason)", or 0 (a stable sort keeps
    records without one in the order met)."""
    found = re.search(r":(\d+) \(", example)
    return int(found.group(1)) if found else 0
