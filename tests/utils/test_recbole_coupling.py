"""The RecBole coupling table holds for the installed RecBole and lists everything our code touches.

``test_entry_holds`` fails when RecBole renames, moves or re-signs a member we depend on;
``test_table_is_complete`` walks our source and fails when we override or call a private RecBole
member that the table does not list (or when an entry is no longer used where it says).
"""

import ast
import dataclasses
import importlib
import inspect
import textwrap
import types
from collections import defaultdict
from pathlib import Path

import pytest

import recbole_coldmeta
from recbole_coldmeta.utils.recbole_coupling import (
    COUPLINGS,
    Kind,
    attributes_set_on_construction,
    check_coupling,
    check_entry,
)

PACKAGE_ROOT = Path(recbole_coldmeta.__file__).resolve().parent


def _is_recbole(obj) -> bool:
    name = obj.__name__ if inspect.ismodule(obj) else getattr(obj, "__module__", None) or ""
    return name.startswith("recbole.")


def _path(obj) -> str:
    return obj.__name__ if inspect.ismodule(obj) else f"{obj.__module__}.{obj.__qualname__}"


def _private(name) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _our_modules():
    """``(module, syntax tree)`` of every module of the package."""
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield importlib.import_module(name), ast.parse(path.read_text(encoding="utf-8"))


def _definer(recbole_class, name, nearest=True):
    """The RecBole class in ``recbole_class``'s MRO that defines ``name`` (a method, or an
    attribute its construction sets): the nearest one (what ``self.name`` finds), or the one
    that introduced it. None if RecBole does not define it."""
    mro = [k for k in recbole_class.__mro__ if _is_recbole(k)]
    for k in mro if nearest else reversed(mro):
        if name in vars(k):
            return k
    setters = [k for k in reversed(mro) if name in attributes_set_on_construction(k)]
    return setters[0] if setters else None


def _kind(owner, name) -> Kind:
    return Kind.CALL if callable(vars(owner).get(name)) else Kind.ATTRIBUTE


class _Finder(ast.NodeVisitor):
    """Every use of a private RecBole member in one module of ours.

    ``found`` gets ``(owner, name, kind, our class or None)``: a method of ours named like a
    private method of a RecBole base class (``override``); ``self._x`` / ``super()._x`` where a
    RecBole base class defines ``_x``; ``obj._x`` where a RecBole class that any of our classes
    derives from defines ``_x``; ``module._x`` or ``from recbole... import _x`` for RecBole
    modules. The RecBole bases of a mixin are those of our classes that use it.
    """

    def __init__(self, module, our_classes, universe):
        self.module = module
        self.our_classes = our_classes
        self.universe = universe
        self.recbole_bases = []
        self.our_class = None
        self.found = []

    def visit_ClassDef(self, node):
        outer = self.recbole_bases, self.our_class
        self.our_class = vars(self.module).get(node.name) if outer[1] is None else None
        users = [c for c in self.our_classes if self.our_class and issubclass(c, self.our_class)]
        # the first RecBole class in each MRO: where self._x and super()._x look
        self.recbole_bases = [
            next(k for k in c.__mro__ if _is_recbole(k))
            for c in users
            if any(_is_recbole(k) for k in c.__mro__)
        ]
        for statement in node.body:
            if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
                for owner in self._owners_in_bases(statement.name):
                    self.found.append((owner, statement.name, Kind.OVERRIDE, self.our_class))
        self.generic_visit(node)
        self.recbole_bases, self.our_class = outer

    def visit_Attribute(self, node):
        name, receiver = node.attr, node.value
        if _private(name):
            if isinstance(receiver, ast.Name) and receiver.id == "self":
                owners = self._owners_in_bases(name)
            elif (
                isinstance(receiver, ast.Call)
                and isinstance(receiver.func, ast.Name)
                and receiver.func.id == "super"
            ):
                owners = self._owners_in_bases(name)
            elif isinstance(receiver, ast.Name) and inspect.ismodule(
                vars(self.module).get(receiver.id)
            ):
                target = vars(self.module)[receiver.id]
                owners = {target} if _is_recbole(target) and hasattr(target, name) else set()
            else:
                owners = {_definer(k, name, nearest=False) for k in self.universe} - {None}
            for owner in owners:
                self.found.append((owner, name, _kind(owner, name), None))
        self.generic_visit(node)

    def visit_ImportFrom(self, node):
        if (node.module or "").startswith("recbole."):
            module = importlib.import_module(node.module)
            for alias in node.names:
                if _private(alias.name):
                    self.found.append((module, alias.name, _kind(module, alias.name), None))

    def _owners_in_bases(self, name):
        if not _private(name):
            return set()
        return {_definer(k, name) for k in self.recbole_bases} - {None}


def _uses():
    """``{(owner path, name): (kind, {our modules}, [our overriding classes])}``, package-wide."""
    modules = list(_our_modules())
    our_classes = {
        value
        for module, _ in modules
        for value in vars(module).values()
        if inspect.isclass(value) and value.__module__.startswith("recbole_coldmeta")
    }
    universe = {k for ours in our_classes for k in ours.__mro__ if _is_recbole(k)}
    uses = defaultdict(lambda: [None, set(), []])
    for module, tree in modules:
        finder = _Finder(module, our_classes, universe)
        finder.visit(tree)
        for owner, name, kind, our_class in finder.found:
            use = uses[(_path(owner), name)]
            use[0] = Kind.OVERRIDE if Kind.OVERRIDE in (use[0], kind) else kind
            use[1].add(module.__name__)
            if kind is Kind.OVERRIDE:
                use[2].append(our_class)
    return uses


def test_finder_sees_overrides_and_calls():
    """A mixin's override and super() call, a self call and a call on another object."""
    module = types.ModuleType("recbole_coldmeta.probe")
    source = textwrap.dedent(
        """
        from recbole.trainer import Trainer

        class Mixin:
            def _valid_epoch(self, valid_data, show_progress=False):
                return super()._valid_epoch(valid_data, show_progress)

            def _ours(self):
                return self._ours

        class Probe(Mixin, Trainer):
            def fit(self, other):
                self._check_nan(0.0)
                other._save_checkpoint(0)
        """
    )
    exec(compile(source, "probe", "exec"), vars(module))
    our_classes = {module.Mixin, module.Probe}
    universe = {k for ours in our_classes for k in ours.__mro__ if _is_recbole(k)}
    finder = _Finder(module, our_classes, universe)
    finder.visit(ast.parse(source))
    found = {(_path(owner), name, kind) for owner, name, kind, _ in finder.found}
    trainer = "recbole.trainer.trainer.Trainer"
    assert found == {
        (trainer, "_valid_epoch", Kind.OVERRIDE),
        (trainer, "_valid_epoch", Kind.CALL),
        (trainer, "_check_nan", Kind.CALL),
        (trainer, "_save_checkpoint", Kind.CALL),
    }


@pytest.fixture(scope="module")
def uses():
    return _uses()


@pytest.mark.parametrize("entry", COUPLINGS, ids=[entry.key for entry in COUPLINGS])
def test_entry_holds(entry):
    assert check_entry(entry) == []


def _entry(key):
    return next(entry for entry in COUPLINGS if entry.key == key)


@pytest.mark.parametrize(
    "key, change, problem",
    [
        ("Trainer._train_epoch", {"signature": "(self, train_data, epoch)"}, "signature is"),
        ("Trainer._train_epoch", {"name": "_train_one_epoch"}, "no longer defined there"),
        ("Config._init_device", {"owner": "recbole.config.Configuration"}, "not found"),
        ("Trainer.cur_step", {"name": "n_steps", "read_by": ()}, "no longer set by RecBole"),
        ("Trainer.cur_step", {"read_by": ("recbole.trainer.trainer.Trainer.evaluate",)}, "reads"),
        ("register.metric_types", {"name": "kinds", "read_by": ()}, "no longer set by RecBole"),
    ],
)
def test_check_entry_reports_drift(key, change, problem):
    """What RecBole renaming, moving or re-signing a member looks like to the check."""
    problems = check_entry(dataclasses.replace(_entry(key), **change))
    assert problems and all(problem in line for line in problems)


def test_check_coupling_is_clean():
    assert check_coupling() == []


def test_one_entry_per_member():
    keys = [entry.key for entry in COUPLINGS]
    assert len(keys) == len(set(keys))
    for entry in COUPLINGS:
        assert (entry.signature is None) == (entry.kind is Kind.ATTRIBUTE), entry.key
        assert entry.recbole_sets or entry.read_by, entry.key


def test_table_is_complete(uses):
    table = {(entry.owner, entry.name): entry for entry in COUPLINGS}
    problems = []
    for (owner, name), (kind, modules, _) in sorted(uses.items()):
        entry = table.get((owner, name))
        if entry is None:
            problems.append(f"{owner}.{name} ({kind.value}, in {sorted(modules)}) is not listed")
            continue
        if entry.kind is not kind:
            problems.append(f"{entry.key}: listed as {entry.kind.value}, used as {kind.value}")
        if set(entry.used_in) != modules:
            problems.append(f"{entry.key}: listed in {entry.used_in}, used in {sorted(modules)}")
    for key, entry in table.items():
        if key not in uses and (entry.kind is not Kind.ATTRIBUTE or _private(entry.name)):
            problems.append(f"{entry.key}: listed but no longer used")
    assert problems == []


def test_listed_attributes_are_used_where_listed():
    stale = []
    for entry in COUPLINGS:
        if entry.kind is not Kind.ATTRIBUTE:
            continue
        for module_name in entry.used_in:
            tree = ast.parse(inspect.getsource(importlib.import_module(module_name)))
            names = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
            if entry.name not in names:
                stale.append(f"{entry.key} in {module_name}")
    assert stale == []


def test_overrides_keep_recbole_signature(uses):
    table = {(entry.owner, entry.name): entry for entry in COUPLINGS}
    mismatched = []
    for key, (_, _, our_classes) in uses.items():
        for our_class in our_classes:
            signature = str(inspect.signature(getattr(our_class, key[1])))
            if key in table and signature != table[key].signature:
                mismatched.append(f"{_path(our_class)}.{key[1]}{signature}")
    assert mismatched == []
