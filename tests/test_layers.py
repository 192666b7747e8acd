"""The package's layers point down and its imports have no cycle.

Layer order, lowest first (README, "Development"); a module may import modules of its own layer
and of lower layers only:

0. ``utils``, ``meta``: the ground floor (errors, enums, random streams, the inner loop);
1. ``evaluator``, ``data``: metrics; datasets, splits, loaders, the index of rows by user;
2. ``model``: models and their building blocks (never a dataset or dataloader module: data
   reaches a model through the dataset object and the batches it is given);
3. ``trainer``;
4. ``registry``: model and trainer lookup by name;
5. ``config``;
6. ``quick_start``, ``benchmarks``: entry points.

Every import counts, a function-local one too (one that exists only to dodge a cycle is a cycle),
and importing ``a.b.c`` also runs the packages ``a`` and ``a.b`` (except those the importing module
is itself inside).
"""

import ast
from pathlib import Path

import pytest

import recbole_coldmeta

PACKAGE = "recbole_coldmeta"
ROOT = Path(recbole_coldmeta.__file__).resolve().parent
LAYERS = (
    ("utils", "meta"),
    ("evaluator", "data"),
    ("model",),
    ("trainer",),
    ("registry",),
    ("config",),
    ("quick_start", "benchmarks"),
)
LAYER_OF = {part: level for level, parts in enumerate(LAYERS) for part in parts}


def module_name(path):
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def _resolve(name):
    """The longest prefix of a dotted name that is one of our modules (``a.b.f`` -> ``a.b``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _with_parents(name):
    parts = name.split(".")
    return {".".join(parts[:end]) for end in range(2, len(parts) + 1)}


def imports_of(name):
    """Our modules that importing module ``name`` runs directly (and their parent packages)."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            targets = [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            if target == PACKAGE or not target.startswith(PACKAGE + "."):
                continue
            resolved = _resolve(target)
            if resolved is not None:
                found |= _with_parents(resolved)
    return found - _with_parents(name)  # a module's own packages are already running


GRAPH = {name: imports_of(name) for name in MODULES}


def layer(name):
    parts = name.split(".")
    return LAYER_OF.get(parts[1]) if len(parts) > 1 else None


def test_every_subpackage_and_top_module_has_a_layer():
    tops = {name.split(".")[1] for name in MODULES if "." in name}
    assert tops <= set(LAYER_OF), f"give these a layer in LAYERS: {sorted(tops - set(LAYER_OF))}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_down(name):
    if layer(name) is None:
        return
    upward = sorted(
        target
        for target in GRAPH[name]
        if layer(target) is not None and layer(target) > layer(name)
    )
    assert not upward, f"{name} (layer {layer(name)}) imports higher layers: {upward}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith(f"{PACKAGE}.model")))
def test_models_never_import_data_modules(name):
    data = sorted(target for target in GRAPH[name] if target.startswith(f"{PACKAGE}.data"))
    assert not data, f"{name} imports {data}: read data through the dataset object or the batch"


def find_cycle(graph):
    """One import cycle of ``graph`` as a list of modules, or None."""
    state = {}
    stack = []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return stack[stack.index(target) :] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_no_import_cycle():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checks_can_fail():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert layer(f"{PACKAGE}.utils.enums") < layer(f"{PACKAGE}.model.layers")


#: The most lines a module of the package may have (one file, one job).
MAX_MODULE_LINES = 450


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_a_grab_bag(name):
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{name} has {lines} lines: split it by job"
