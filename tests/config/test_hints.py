"""Every ``--key`` a message of ours suggests is a key or flag the command it names accepts.

The messages are the string literals of the package (f-string parts joined), docstrings and the
flag definitions themselves (``add_argument("--x")``) aside. A flag is right when it is a config key
(``known_config_keys``), a flag of ``run_recbole_coldmeta.py`` or ``run_hyper_coldmeta.py``, or a
flag of another command of ours that the message names (``python -m recbole_coldmeta.data.
converters ...``) or that the module belongs to (its own command line).
"""

import ast
import re
from pathlib import Path

import pytest

import recbole_coldmeta
from recbole_coldmeta.utils.config_keys import known_config_keys

ROOT = Path(recbole_coldmeta.__file__).resolve().parent
#: The flags of the two entry points are defined in these modules.
ENTRY_POINTS = ("quick_start/cli.py", "quick_start/hyper/cli.py")
#: Other commands: module name -> the modules that define its flags and print its messages.
COMMANDS = {
    "recbole_coldmeta.data.converters": ("data/converters/__main__.py",),
    "recbole_coldmeta.data.converters.amazon_reviews": ("data/converters/amazon_reviews.py",),
    "recbole_coldmeta.benchmarks.speed": ("benchmarks/speed/",),
    "recbole_coldmeta.benchmarks.epoch_cost": ("benchmarks/epoch_cost.py",),
    "recbole_coldmeta.benchmarks.parity": ("benchmarks/parity/",),
    "recbole_coldmeta.quick_start.splits": ("quick_start/splits.py",),
}
#: Words a message may write as a flag that are no key: ``--key=value`` (any config override)
#: and argparse's own ``--help``.
PLACEHOLDERS = {"key", "help"}
FLAG = re.compile(r"(?<![\w-])--([a-z_]+)(?![\w-])")


def _modules(prefixes):
    return [p for p in sorted(ROOT.rglob("*.py")) if str(p.relative_to(ROOT)).startswith(prefixes)]


def _is_add_argument(node):
    return isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument"


def _flags_defined(paths):
    flags = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and _is_add_argument(node):
                for arg in node.args:
                    if isinstance(arg, ast.Constant) and str(arg.value).startswith("--"):
                        flags.add(arg.value[2:])
    return flags


def _docstrings(tree):
    nodes = [tree, *ast.walk(tree)]
    defs = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    for node in nodes:
        if isinstance(node, defs) and node.body and isinstance(node.body[0], ast.Expr):
            value = node.body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                yield value


def _messages(path):
    """``(line, text)`` of each string literal of ``path`` that may carry a hint."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {id(node) for node in _docstrings(tree)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _is_add_argument(node):
            skipped.update(id(arg) for arg in node.args)
        if isinstance(node, ast.JoinedStr):
            skipped.update(id(part) for part in node.values)
            text = "".join(p.value if isinstance(p, ast.Constant) else "{}" for p in node.values)
            yield node.lineno, text
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in skipped:
                yield node.lineno, node.value


def _suggested_flags():
    cases = []
    for path in _modules(("",)):
        relative = str(path.relative_to(ROOT))
        for line, text in _messages(path):
            for flag in sorted(set(FLAG.findall(text))):
                cases.append(pytest.param(relative, text, flag, id=f"{relative}:{line}:--{flag}"))
    return cases


ENTRY_POINT_FLAGS = _flags_defined(_modules(ENTRY_POINTS))
COMMAND_FLAGS = {name: _flags_defined(_modules(modules)) for name, modules in COMMANDS.items()}


def test_the_walk_finds_the_flags_of_every_command():
    assert {"model", "result_file", "benchmark", "params_file", "algo"} <= ENTRY_POINT_FLAGS
    assert all(COMMAND_FLAGS.values())
    assert len(_suggested_flags()) > 20


@pytest.mark.parametrize("module, message, flag", _suggested_flags())
def test_a_suggested_flag_exists(module, message, flag):
    accepted = known_config_keys() | ENTRY_POINT_FLAGS | PLACEHOLDERS
    for command, modules in COMMANDS.items():
        if command in message or module.startswith(modules):
            accepted |= COMMAND_FLAGS[command]
    assert flag in accepted, f"{module}: --{flag} is no key or flag of the command: {message!r}"
