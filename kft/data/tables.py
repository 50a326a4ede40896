"""CSV, TSV and JSONL files, and folders of class folders of .txt files,
to texts, text pairs and labels.

Files are read line by line, so one bad line (not UTF-8, invalid JSON, a
CSV row with a stray quote or the wrong number of fields, an empty text, a
missing label) is a bad record (kft.data.bad_records) and the rest of the
file is kept. A whole file in UTF-16 or UTF-32, an empty file and a bad
header are one-line errors. Long texts are not bad, however long: the
tokenizer truncates them to the sequence length. kft-predict reads its
files with `read_rows` too, so it skips the rows training skips.
"""

import csv
import ctypes
import json
import os

from kft.core import files
from kft.core.errors import UserError
from kft.data import targets
from kft.data.bad_records import NOT_UTF8
from kft.data.columns import holds_images, pick_columns

# A quoted CSV field may span lines; a stray quote would otherwise swallow
# the rest of the file into one field.
MAX_RECORD_LINES = 50

# The csv module refuses a field over 131,072 characters ("field larger
# than field limit"); a text may be longer. The limit is a C long, 32 bits
# on Windows.
csv.field_size_limit(2 ** (8 * ctypes.sizeof(ctypes.c_long) - 1) - 1)

# Byte-order marks of the encodings a text editor saves "Unicode" files in;
# UTF-32's come first, since UTF-16-LE's is the start of UTF-32-LE's.
WIDE_MARKS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


def _wide_encoding(raw):
    """The wide encoding `raw` looks to be in: "UTF-16", "UTF-32" or None.

    By the byte-order mark, or without one by the NUL bytes that fill
    half (UTF-16) or three quarters (UTF-32) of mostly ASCII text; a stray
    NUL in a UTF-8 file is far below that.
    """
    for mark, name in WIDE_MARKS:
        if raw.startswith(mark):
            return name
    sample = raw[:4096]
    share = sample.count(0) / max(len(sample), 1)
    if share >= 0.4:
        return "UTF-32" if share >= 0.7 else "UTF-16"
    return None


def read_lines(path):
    """Returns [(line number, text)]; the text is None where not UTF-8.

    A file in UTF-16 or UTF-32 is a UserError: every line would be bad.
    """
    try:
        raw = files.read_bytes(path)
    except files.Error as error:
        raise UserError(f"cannot read {path}: {error.message}") from None
    wide = _wide_encoding(raw)
    if wide:
        raise UserError(
            f"{path} is not UTF-8 (it looks like {wide}); re-save it as UTF-8"
        )
    if raw.startswith(b"\xef\xbb\xbf"):  # a byte-order mark
        raw = raw[3:]
    lines = raw.splitlines(keepends=True)
    return [(number, _decode(line)) for number, line in enumerate(lines, 1)]


def _decode(line):
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return None


def jsonl_rows(lines, path, bad):
    """Yields (where, dict) for each valid JSON object line."""
    for number, text in lines:
        where = f"{path}:{number}"
        if text is None:
            bad.add(where, NOT_UTF8)
            continue
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as error:
            bad.add(where, f"invalid JSON: {error.msg}")
            continue
        if not isinstance(row, dict):
            bad.add(where, "not a JSON object")
            continue
        yield where, row


def _csv_record(lines, start, delimiter):
    """Parses the record starting at lines[start]; returns (fields, end).

    fields is None where the record is malformed: a quote that never
    closes (within MAX_RECORD_LINES) or a stray quote inside a field.
    """
    end = start + 1
    while True:
        texts = [text for _, text in lines[start:end]]
        if None in texts:
            return None, start + 1
        try:
            reader = csv.reader(texts, delimiter=delimiter, strict=True)
            return next(reader, []), end
        except csv.Error as error:
            unclosed = "unexpected end of data" in str(error)
            if not unclosed or end >= min(len(lines), start + MAX_RECORD_LINES):
                return None, start + 1
            end += 1


def _csv_rows(lines, path, delimiter, bad):
    """Yields (where, dict) for each well-formed row after the header."""
    header, index = None, 0
    while index < len(lines):
        number, text = lines[index]
        where = f"{path}:{number}"
        if text is None:
            if header is None:
                raise UserError(f"cannot read {where}: the header is not UTF-8")
            bad.add(where, NOT_UTF8)
            index += 1
            continue
        fields, end = _csv_record(lines, index, delimiter)
        if fields == []:  # a blank line
            index = end
            continue
        if header is None and fields is None:
            raise UserError(f"cannot read {where}: a malformed header line")
        if fields is None:
            bad.add(where, "malformed row (a stray quote?)")
        elif header is None:
            header = _header(fields, where)
        elif len(fields) != len(header):
            count = f"{len(fields)} fields, the header has {len(header)}"
            bad.add(where, count)
            end = index + 1  # resynchronize after a stray quote
        else:
            yield where, dict(zip(header, fields))
        index = end


def _header(fields, where):
    """The column names of a header line, stripped; a name twice is a
    UserError (which column is meant would be a guess)."""
    names = [field.strip() for field in fields]
    for index, name in enumerate(names):
        if name in names[:index]:
            first = names.index(name) + 1
            raise UserError(
                f"the header of {where} names column '{name}' twice "
                f"(columns {first} and {index + 1}); rename one"
            )
    return names


def column_names(rows):
    """The column names of `rows` ((where, dict) pairs) in the order they
    first appear: a JSONL line may lack some."""
    names = {}
    for _, row in rows:
        names.update(dict.fromkeys(row))
    return list(names)


def not_a_text(name, value):
    """Why the JSON `value` of column `name` is not a text, or None:
    numbers are texts; objects, lists, true and false are not."""
    if isinstance(value, bool):
        return f"{name} is {json.dumps(value)}, not a text"
    if isinstance(value, dict | list):
        kind = "an object" if isinstance(value, dict) else "a list"
        return f"{name} is {kind}, not a text"
    return None


def _example(row, columns, where, bad, task, delimiter):
    """Returns (text, pair, label) of one row, or None if it is bad."""
    if row and all(str(v).strip() == key for key, v in row.items()):
        bad.add(where, "the header again (files joined?)")
        return None
    label, problem = targets.parse(row.get(columns.label), task, delimiter)
    if problem:
        bad.add(where, problem)
        return None
    values = []
    for name in (columns.text or columns.image, columns.pair):
        value = row.get(name) if name else ""
        problem = not_a_text(name, value)
        if name and (value is None or not str(value).strip()):
            problem = f"empty {name}"
        if problem:
            bad.add(where, problem)
            return None
        values.append(str(value))
    return values[0], values[1], label


def read_rows(path, bad):
    """[(where, row dict)] of a .csv, .tsv or .jsonl file.

    Bad lines go to `bad`; a file without a single row, good or bad (empty,
    or a header alone), is a UserError.
    """
    lines = read_lines(path)
    if os.path.splitext(path)[1].lower() == ".jsonl":
        rows = list(jsonl_rows(lines, path, bad))
    else:
        delimiter = "\t" if path.lower().endswith(".tsv") else ","
        rows = list(_csv_rows(lines, path, delimiter, bad))
    if not rows and not bad.count:
        raise UserError(f"{path} holds no rows")
    return rows


def located(name, listing):
    """An image path as a table or list names it: a relative one is read
    beside that file where it is there, else from the current folder."""
    if os.path.isabs(name) or not files.is_local(name):
        return name
    beside = os.path.join(os.path.dirname(listing), name)
    if not files.exists(beside):
        return os.path.abspath(name)
    return os.path.abspath(beside) if files.is_local(beside) else beside


def read_table(path, config, bad, task="classification"):
    """Reads a .csv, .tsv or .jsonl file, skipping bad records.

    Args:
        path: the file's path, local or remote (kft.files).
        config: the `data` config block (column names).
        bad: the spec's `BadRecords`.
        task: what a label is (kft.data.targets).

    Returns:
        (texts, pairs or None, labels, `Columns`): labels as
        `targets.parse` reads them for `task`.
    """
    columns, texts, pairs, labels = None, [], [], []
    rows = read_rows(path, bad)
    if rows:
        names = column_names(rows)
        columns = pick_columns(names, config, path, holds_images(names, config))
    for where, row in rows:
        example = _example(
            row, columns, where, bad, task, config.label_delimiter
        )
        if example is not None:
            value = example[0]
            texts.append(located(value, path) if columns.image else value)
            pairs.append(example[1])
            labels.append(example[2])
    has_pairs = columns is not None and columns.pair is not None
    return texts, pairs if has_pairs else None, labels, columns


def text_files(path):
    """The .txt files in the class folders of folder `path` (not beside
    them), sorted."""
    top = path.rstrip("/")
    found = [
        os.path.join(folder, name)
        for folder, _, names in files.walk(path)
        if folder.rstrip("/") != top
        for name in names
        if name.lower().endswith(".txt")
    ]
    return sorted(found, key=lambda file: file.split("/"))


def read_text_folder(path, bad):
    """(texts, labels) of a folder of class folders of .txt files, one
    text a file (the layout keras.utils.text_dataset_from_directory reads);
    a file that is not UTF-8 or is empty is a bad record."""
    texts, labels = [], []
    for file in text_files(path):
        try:
            text = files.read_bytes(file).decode("utf-8-sig")
        except UnicodeDecodeError:
            bad.add(file, NOT_UTF8)
            continue
        if not text.strip():
            bad.add(file, "empty text")
            continue
        texts.append(text.strip())
        labels.append(os.path.relpath(file, path).split(os.sep)[0])
    return texts, labels
