"""The docs are built and checked: the site builds with --strict, the run
folder reference matches the code, and what the docs name exists.

The site (mkdocs.yml, docs/) is read statically: mkdocstrings reads kft's
docstrings with griffe, without importing TensorFlow, so the build takes
seconds.
"""

import ast
import os
import pathlib
import re
import subprocess
import sys

import pytest

from kft import config as config_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
RUN_FOLDER_PAGE = DOCS / "run-folder.md"
RUN_FOLDER_MODULE = ROOT / "kft" / "core" / "run_folder.py"
MAX_README_LINES = 200

FILE_NAME = re.compile(
    r"^[\w.-]+(/[\w.-]+)*\.(json|jsonl|csv|txt|png|html|h5|tensor)$"
)


def _pages():
    return sorted(DOCS.rglob("*.md")) + [README]


def test_site_builds_strict(tmp_path):
    """A broken link, a missing page or a docstring griffe cannot read
    fails the build."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet"]
        + ["-f", str(ROOT / "mkdocs.yml"), "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "run-folder" / "index.html").is_file()
    reference = (tmp_path / "site" / "reference" / "index.html").read_text()
    assert "kft.run.train" in reference


def test_readme_is_short():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, len(lines)


def test_readme_holds_the_command_ci_runs():
    """.ci/run runs the README's test command; they must stay the same."""
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] in README.read_text().splitlines()


# === The run folder reference ===


def _documented_files():
    """The names in the first column of the page's `| file |` tables."""
    names, in_table = [], False
    for line in RUN_FOLDER_PAGE.read_text().splitlines():
        if line.startswith("| file |"):
            in_table = True
        elif not line.startswith("|"):
            in_table = False
        elif in_table and not line.startswith("|---"):
            first_cell = line.split("|")[1]
            names += re.findall(r"`([^`]+)`", first_cell)
    return names


def _strings(path):
    """Every string literal of a module, f-strings' literal parts too."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.add(node.value)
    return found


def _module_constants(path):
    """The values of a module's UPPER_CASE string constants."""
    values = set()
    for node in ast.parse(path.read_text()).body:
        if not isinstance(node, ast.Assign):
            continue
        target, value = node.targets[0], node.value
        pairs = [(target, value)]
        if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple):
            pairs = zip(target.elts, value.elts)  # A, B = "a", "b"
        for name, value in pairs:
            if (
                isinstance(name, ast.Name)
                and name.id.isupper()
                and isinstance(value, ast.Constant)
                and isinstance(value.value, str)
            ):
                values.add(value.value)
    return values


def _is_listed(name, documented):
    """A file or folder name of the code appears in the table, as itself
    or as the folder of a listed entry (`export` for `export/<N>/`)."""
    return any(
        entry.rstrip("/") == name or entry.startswith(name.rstrip("/") + "/")
        for entry in documented
    )


def test_run_folder_page_lists_every_file_name_of_run_folder_module():
    documented = _documented_files()
    assert len(documented) > 20, "the page's table was not found"
    names = _module_constants(RUN_FOLDER_MODULE) | {
        text for text in _strings(RUN_FOLDER_MODULE) if FILE_NAME.match(text)
    }
    names.discard("")
    missing = sorted(n for n in names if not _is_listed(n, documented))
    assert not missing, (
        f"kft/core/run_folder.py names {missing}, which docs/run-folder.md "
        "does not list"
    )


def _code_strings():
    found = set()
    for path in (ROOT / "kft").rglob("*.py"):
        found |= _strings(path)
    return found


def _named_in_code(entry, strings):
    """Each part of a documented path is a string in kft's source: whole
    (`checkpoints/best.weights.h5`), by part (`tensorboard`), or up to its
    placeholder (`ckpt-` of `ckpt-<step>.*`)."""
    if entry.rstrip("/") in strings:
        return True
    for part in entry.rstrip("/").split("/"):
        stem = re.split(r"[<*]", part)[0]
        if not stem:
            continue
        if stem == part and stem not in strings:
            return False
        if stem != part and not any(s.startswith(stem) for s in strings):
            return False
    return True


def test_every_file_the_run_folder_page_lists_is_named_in_the_code():
    strings = _code_strings()
    unknown = [
        entry
        for entry in _documented_files()
        if not _named_in_code(entry, strings)
    ]
    assert not unknown, (
        f"docs/run-folder.md lists {unknown}, which no kft module names; "
        "remove them from the page or fix the name"
    )


# === What the docs name exists ===


def _code_spans(text):
    """Inline code and fenced code blocks of a Markdown text."""
    return re.findall(r"`([^`\n]+)`", text) + re.findall(
        r"```[^\n]*\n(.*?)```", text, flags=re.S
    )


def test_paths_named_in_the_docs_exist():
    pattern = re.compile(
        r"(?<![\w./~$-])((?:kft|experiments|tests|tools|docs)/[\w./-]*)"
    )
    missing = []
    for page in _pages():
        for span in _code_spans(page.read_text()):
            for path in pattern.findall(span):
                path = path.rstrip(".")
                if not (ROOT / path).exists():
                    missing.append(f"{page.relative_to(ROOT)}: {path}")
    assert not missing


def test_experiments_named_in_the_docs_exist():
    names = {p.stem for p in (ROOT / "experiments").glob("*.py")}
    missing = []
    for page in _pages():
        text = page.read_text()
        for name in re.findall(r"--experiment=([\w./]+)", text):
            if name.endswith(".py"):  # a path, as the docs show one
                continue
            # NAME is a placeholder; text_clasifier, the misspelt name
            # the README shows kft's suggestion for.
            if name not in names | {"NAME", "text_clasifier"}:
                missing.append(f"{page.relative_to(ROOT)}: {name}")
    assert not missing


def _config_keys(config, prefix=""):
    keys = set()
    for key, value in config.items():
        keys.add(prefix + key)
        if hasattr(value, "items"):
            keys |= _config_keys(value, f"{prefix}{key}.")
    return keys


def test_config_keys_named_in_the_docs_exist():
    keys = _config_keys(config_lib.default_config())
    unknown = []
    for page in _pages():
        for key in re.findall(r"--config\.([\w.]+)", page.read_text()):
            key = key.rstrip(".")
            if key != "KEY" and key not in keys:
                unknown.append(f"{page.relative_to(ROOT)}: {key}")
    assert not unknown
