"""Which column of a file, or feature of a TFDS dataset, holds what.

The same config keys name columns of CSV/TSV/JSONL files and features of
TFDS datasets: `data.text_column`, `data.text_pair_column`,
`data.label_column` and `data.image_column` (a column of image paths, or
a TFDS image feature). Left empty, the text is the first known text name
found (`text`, `sentence`, ...) or, when the data has one, a known pair
such as `sentence1`/`sentence2`; the image is `image`.
"""

import dataclasses

from kft.core.errors import UserError

TEXT_NAMES = ("text", "sentence", "content", "review", "document")
# Known text pairs, as GLUE, SQuAD-style and NLI datasets name them.
PAIR_NAMES = (
    ("sentence1", "sentence2"),
    ("question", "context"),
    ("premise", "hypothesis"),
    ("question1", "question2"),
    ("question", "sentence"),
)


@dataclasses.dataclass(frozen=True)
class Columns:
    """Column or feature names: `text` or `image` is set, `pair` may be."""

    label: str
    text: str | None = None
    pair: str | None = None
    image: str | None = None

    @property
    def modality(self):
        return "image" if self.image else "text"

    def describe(self):
        """E.g. "text 'sentence1', pair 'sentence2', label 'label'"."""
        names = dataclasses.asdict(self)
        used = [f"{key} '{names[key]}'" for key in ("text", "pair", "image")]
        used = [item for item in used if not item.endswith("'None'")]
        return ", ".join(used + [f"label '{self.label}'"])


SEPARATORS = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe"}


def _require(name, available, source, key):
    if name not in available:
        raise UserError(
            f"{source} has no column '{name}'; {_why(name, available)} "
            f"(set --config.data.{key})"
        )
    return name


def _why(name, available):
    """What the column names found suggest: another separator than the
    file's extension reads, or a name spelled in another case."""
    if len(available) == 1:
        for separator, word in SEPARATORS.items():
            if separator in str(available[0]):
                fix = ".tsv" if separator == "\t" else ".csv"
                rename = (
                    "convert it" if separator in ";|" else f"rename it to {fix}"
                )
                return (
                    f"its header is one column, so the file looks {word}-"
                    "separated, but .csv files are read as comma- and .tsv "
                    f"as tab-separated: {rename}"
                )
    same = [n for n in available if str(n).strip().lower() == name.lower()]
    hint = f"did you mean '{same[0]}'? " if same else ""
    shown = ", ".join(f"'{n}'" for n in available)
    return f"{hint}columns: {shown}"


def _auto_text(available, config, source):
    """The (text, pair) names when `text_column` is empty."""
    if not config.text_pair_column:
        for first, second in PAIR_NAMES:
            if first in available and second in available:
                return first, second
    for name in TEXT_NAMES:
        if name in available:
            return name, None
    raise UserError(
        f"{source} has no text column (looked for {', '.join(TEXT_NAMES)}); "
        f"columns: {', '.join(map(str, available))} (set "
        "--config.data.text_column)"
    )


def holds_images(available, config):
    """Whether a table's rows (or a TFDS dataset's examples) are images:
    `data.image_column` is set, or there is an `image` column and no text
    column is named or found among TEXT_NAMES."""
    if config.image_column:
        return True
    return (
        not config.text_column
        and "image" in available
        and not any(name in available for name in TEXT_NAMES)
    )


def pick_columns(available, config, source, images=False):
    """Returns the `Columns` of `config` found among `available` names.

    Args:
        available: the file's column names or the dataset's feature names.
        config: the `data` config block.
        source: the spec, for error messages.
        images: pick an image feature rather than text.
    """
    label = _require(config.label_column, available, source, "label_column")
    if images:
        image = config.image_column or "image"
        _require(image, available, source, "image_column")
        return Columns(label=label, image=image)
    if config.text_column:
        text = _require(config.text_column, available, source, "text_column")
        pair = None
    else:
        text, pair = _auto_text(available, config, source)
    if config.text_pair_column:
        pair = _require(
            config.text_pair_column, available, source, "text_pair_column"
        )
    for role, name in (("pair", pair), ("label", label)):
        if name == text:
            raise UserError(
                f"{source}: column '{text}' is both the text and the {role} "
                "(--config.data.text_column, text_pair_column and "
                "label_column must name different columns)"
            )
    return Columns(label=label, text=text, pair=pair)
