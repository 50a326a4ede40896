"""The package's shape, read from its source: imports point down the layers,
no cycles, no private names across modules, no oversized modules.

Each rule has a list of today's known exceptions. The lists may only
shrink: an exception that no longer occurs fails the test too, so whoever
fixes one deletes its line, and nobody adds one without a diff to review.
"""

import ast
import json
import pathlib

from kft import config as config_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "kft"
MAX_LINES = 450

# The layers, top to bottom: a module imports its own layer and those
# below, never one above. Adding a task must not mean editing the layers
# under the tasks.
LAYERS = (
    # Entry points: console scripts, benchmarks, the Python API (which
    # `import kft` re-exports, loading it on first use).
    ("kft.cli", "kft.bench", "kft.api", "kft"),
    ("kft.run", "kft.fit", "kft.commands"),  # a run, and the commands on one
    ("kft.tasks",),  # what each task adds
    ("kft.model", "kft.data", "kft.serving", "kft.report"),  # libraries
    ("kft.core", "kft.config"),  # what everything uses
)

KNOWN_CYCLES = set()
KNOWN_LARGE = set()
KNOWN_PRIVATE = set()
# Private attributes of objects other than `self`: a library's internals
# belong in kft/core/compat.py, which names the versions it was checked with.
COMPAT_MODULE = "kft.core.compat"
KNOWN_PRIVATE_ATTRIBUTES = {("kft.data.pipeline", "_steps")}
KNOWN_UPWARD = set()
# Multilabel and tokens share classification's metrics and threshold
# search; they belong in a module of their own under kft/tasks/.
KNOWN_ACROSS_TASKS = {
    ("kft.tasks.multilabel", "kft.tasks.classification.metrics"),
    ("kft.tasks.multilabel", "kft.tasks.classification.threshold"),
    ("kft.tasks.tokens.tagging", "kft.tasks.classification.metrics"),
}


def _module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules():
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def _target(name):
    """The kft module `name` refers to: itself, or the package above a
    name imported from it."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(module, tree):
    """(kft module imported, private name used or None) pairs, every
    import at any depth, `importlib.import_module("kft...")` strings
    included; module aliases are followed to their attribute uses."""
    found, aliases = [], {}
    package = module if MODULES[module].name == "__init__.py" else None
    base = package or module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("kft"):
                    found.append((_target(alias.name), None))
                    aliases[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                parts = base.split(".")
                parent = parts[: len(parts) - node.level + 1]
                source = ".".join(parent + ([source] if source else []))
            if not source.startswith("kft"):
                continue
            for alias in node.names:
                full = f"{source}.{alias.name}"
                if full in MODULES:
                    found.append((full, None))
                    aliases[alias.asname or alias.name] = full
                else:
                    private = full if alias.name.startswith("_") else None
                    found.append((_target(source), private))
        elif isinstance(node, ast.Call) and _is_import_module(node):
            found.append((_target(_string_prefix(node.args[0])), None))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            owner = aliases[node.value.id]
            found.append((owner, f"{owner}.{node.attr}"))
    return [(t, p) for t, p in found if t and t != module]


def _is_import_module(node):
    function = node.func
    name = getattr(function, "attr", getattr(function, "id", ""))
    return name == "import_module" and node.args


def _string_prefix(node):
    """The constant text an import_module argument starts with."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
        if isinstance(first, ast.Constant):
            return first.value.rstrip(".")
    return ""


def _graph():
    graph = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        graph[module] = _imports(module, tree)
    return graph


GRAPH = _graph()


def _cycles():
    """The strongly connected groups of two or more modules (Tarjan)."""
    edges = {m: {t for t, _ in targets} for m, targets in GRAPH.items()}
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(tuple(sorted(group)))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return set(groups)


def layer_of(module):
    for depth, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if prefix != "kft" or module == "kft":
                    return depth
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


# Modules of kft/tasks/ that belong to no one task.
SHARED_TASK_MODULES = {"base", "labelled", "registry"}


def task_of(module):
    """The task a module of kft.tasks belongs to ("" for the shared ones)."""
    parts = module.split(".")
    if len(parts) < 3 or parts[1] != "tasks" or parts[2] in SHARED_TASK_MODULES:
        return ""
    return parts[2]


def test_no_import_cycles_but_the_known():
    assert _cycles() == KNOWN_CYCLES


def test_no_module_over_the_size_limit_but_the_known():
    large = {
        module
        for module, path in MODULES.items()
        if len(path.read_text().splitlines()) > MAX_LINES
    }
    assert large == KNOWN_LARGE


def test_no_private_name_used_across_modules_but_the_known():
    used = {
        (module, private)
        for module, targets in GRAPH.items()
        for _, private in targets
        if private
    }
    assert used == KNOWN_PRIVATE


def test_imports_point_down_the_layers_but_the_known():
    upward = {
        (module, target)
        for module, targets in GRAPH.items()
        for target, _ in targets
        if layer_of(target) < layer_of(module)
    }
    assert upward == KNOWN_UPWARD


def test_a_task_imports_no_other_task_but_the_known():
    across = {
        (module, target)
        for module, targets in GRAPH.items()
        for target, _ in targets
        if task_of(module)
        and task_of(target)
        and task_of(module) != task_of(target)
    }
    assert across == KNOWN_ACROSS_TASKS


def test_every_module_is_in_a_layer():
    for module in MODULES:
        layer_of(module)


def _private_attributes(tree):
    """Names of `x._name` reads and writes where x is not self or cls."""
    names = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not (
                isinstance(node.value, ast.Name)
                and node.value.id in ("self", "cls")
            )
        ):
            names.add(node.attr)
    return names


def test_library_internals_are_reached_only_through_compat():
    used = {
        (module, name)
        for module, path in MODULES.items()
        if module != COMPAT_MODULE
        for name in _private_attributes(ast.parse(path.read_text()))
    }
    assert used == KNOWN_PRIVATE_ATTRIBUTES


def test_the_import_reader_sees_function_level_and_string_imports():
    source = (
        "import importlib\n"
        "def f():\n"
        "    from kft import run\n"
        "    importlib.import_module(f'kft.{name}')\n"
        "    return run._log\n"
    )
    found = _imports("kft.core.files", ast.parse(source))
    assert ("kft.run", None) in found
    assert ("kft.run", "kft.run._log") in found
    assert ("kft", None) in found


def test_default_config_is_unchanged():
    """Config keys and defaults are the public surface: a change here is
    deliberate, made together with tests/data/default_config.json."""
    expected = json.loads(
        (ROOT / "tests" / "data" / "default_config.json").read_text()
    )
    assert json.loads(config_lib.to_json(config_lib.default_config())) == (
        expected
    )
