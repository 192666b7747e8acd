"""Typed config keys: declarations read from the properties files, and the check of a config.

A key's type and accepted values are declared once, on its documentation line, as the
parenthesised start of the comment (RecBole's ``# (type) meaning`` grammar, extended)::

    epochs: 300                   # (int, >= 1) The number of training epochs.
    meta_feedback: explicit       # (str: explicit | implicit) ...
    new_user_max_inters: ~        # (int or None, >= 2) ...
    learner: adam                 # (str: adam | sgd | adagrad | rmsprop, any case) ...

``(TYPE[: CHOICE | CHOICE ...][, RULE]...)``:

- ``TYPE``: alternatives joined by ``or``, each one of ``int``, ``float`` (any number), ``str``,
  ``bool``, ``dict``, ``list``, ``tuple``, ``None`` or ``list of int|float|str|dict``;
- ``CHOICE``: a string value (or each string of a ``list of str``) must be one of them;
- ``RULE``: ``>= N``, ``> N``, ``<= N``, ``< N`` (a number, or each number of a list of numbers),
  ``non-empty`` (a string, list or mapping), ``any case`` (choices compared case-insensitively).

The files of a run are read in the order the Config layers them (:data:`RECBOLE_KEYS_FILE`
first); a later file restates a key's type (a test checks that the types agree) and may state its
own choices and rules, else it keeps the earlier ones. Keys whose accepted values span several
keys (``metrics``, ``valid_metric``, ``eval_args``, ``train_neg_sample_args``) are checked by the
functions at the end of this module.
"""

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from recbole.evaluator import register
from recbole.evaluator.base_metric import TopkMetric
from recbole.utils import EvaluatorType, ModelType

from recbole_coldmeta.evaluator import QueryNDCG
from recbole_coldmeta.utils import ConfigError, properties_dir

#: Declarations of the RecBole keys (overall and dataset), never layered into a config.
RECBOLE_KEYS_FILE = "recbole_keys.yaml"

_KEY_LINE = re.compile(r"^(?P<key>[A-Za-z_][\w\-]*):.*?\s#\s*\((?P<declaration>[^()]*)\)")
_BOUND = re.compile(r"^(?P<op>>=|<=|>|<)\s*(?P<number>-?[0-9][0-9_.eE+\-]*)$")
_OPERATORS = {
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
}
_SCALARS = {
    "int": ("an integer", "integers"),
    "float": ("a number", "numbers"),
    "str": ("a string", "strings"),
    "bool": ("True or False", "booleans"),
    "dict": ("a mapping", "mappings"),
    "list": ("a list", "lists"),
    "tuple": ("a tuple", "tuples"),
    "None": ("None", "None"),
}
_ELEMENTS = ("int", "float", "str", "dict")
NON_EMPTY = ("str", "list", "dict")


@dataclass(frozen=True)
class Declaration:
    """The accepted values of one config key, as its properties line declares them.

    Attributes:
        types: the alternatives, e.g. ``("int", "None")`` or ``("list of int",)``.
        choices: the accepted strings, or ``None`` for any string.
        bounds: ``(operator, number)`` pairs every number must satisfy.
        non_empty: strings, lists and mappings must not be empty.
        any_case: choices are compared case-insensitively.
        where: ``file:line`` of the declaration.
    """

    types: tuple
    choices: tuple | None = None
    bounds: tuple = ()
    non_empty: bool = False
    any_case: bool = False
    where: str = ""

    @property
    def has_rules(self):
        return self.choices is not None or bool(self.bounds) or self.non_empty

    def problem(self, value):
        """Why ``value`` is not accepted (a phrase after ``key=value``), or ``None``."""
        matched = next((kind for kind in self.types if _is_of_type(value, kind)), None)
        if matched is None:
            return f"must be {self.describe()}"
        items = value if matched.startswith("list") and isinstance(value, list) else [value]
        if self.non_empty and matched.split()[0] in NON_EMPTY and len(value) == 0:
            return f"must be {self.describe()}"
        for item in items:
            if self.choices is not None and isinstance(item, str) and not self._chosen(item):
                alternatives = ", ".join(self.choices)
                none = " (or None)" if "None" in self.types and "None" not in self.choices else ""
                each = "has an element that " if items is value else ""
                return f"{each}is not one of {alternatives}{none}"
            if _is_number(item) and not all(_OPERATORS[op](item, n) for op, n in self.bounds):
                return f"must be {self.describe()}"
        return None

    def _chosen(self, item):
        if self.any_case:
            return item.lower() in {choice.lower() for choice in self.choices}
        return item in self.choices

    def describe(self):
        """The accepted form in words: ``an integer >= 1``, ``a list of numbers, each > 0``."""
        bounds = " and ".join(f"{op} {_format_number(n)}" for op, n in self.bounds)
        phrases = []
        for kind in self.types:
            if kind.startswith("list of "):
                phrase = f"a list of {_SCALARS[kind[len('list of ') :]][1]}"
                if self.choices is not None and kind == "list of str":
                    phrase += f" from {', '.join(self.choices)}"
                if bounds and kind in ("list of int", "list of float"):
                    phrase += f", each {bounds}"
            else:
                phrase = _SCALARS[kind][0]
                if self.choices is not None and kind == "str":
                    phrase = f"one of {', '.join(self.choices)}"
                if bounds and kind in ("int", "float"):
                    phrase += f" {bounds}"
            if self.non_empty and phrase.startswith("a ") and kind.split()[0] in NON_EMPTY:
                phrase = "a non-empty " + phrase[len("a ") :]
            phrases.append(phrase)
        return " or ".join(phrases)


def _is_number(value):
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_of_type(value, kind):
    if kind.startswith("list of "):
        element = kind[len("list of ") :]
        return isinstance(value, list) and all(_is_of_type(item, element) for item in value)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return _is_number(value)
    if kind == "None":
        return value is None
    return isinstance(
        value, {"str": str, "bool": bool, "dict": dict, "list": list, "tuple": tuple}[kind]
    )


def _format_number(number):
    return str(int(number)) if float(number).is_integer() else str(number)


def parse_declaration(text, where=""):
    """``"int or None, >= 2"`` -> :class:`Declaration`.

    Raises:
        ValueError: the text does not follow the grammar (a mistake in a properties file).
    """
    head, *rules = (part.strip() for part in text.split(","))
    type_text, _, choice_text = head.partition(":")
    types = tuple(kind.strip() for kind in type_text.split(" or "))
    for kind in types:
        scalar = kind[len("list of ") :] if kind.startswith("list of ") else kind
        if scalar not in _SCALARS or (kind != scalar and scalar not in _ELEMENTS):
            raise ValueError(f"{where}: unknown type {kind!r} in declaration ({text})")
    choices = tuple(c.strip() for c in choice_text.split("|")) if choice_text.strip() else None
    bounds, non_empty, any_case = [], False, False
    for rule in rules:
        match = _BOUND.match(rule)
        if match:
            bounds.append((match["op"], float(match["number"])))
        elif rule == "non-empty":
            non_empty = True
        elif rule == "any case":
            any_case = True
        else:
            raise ValueError(f"{where}: unknown rule {rule!r} in declaration ({text})")
    return Declaration(types, choices, tuple(bounds), non_empty, any_case, where)


@functools.cache
def file_declarations(path):
    """``{key: Declaration}`` of the top-level key lines of one YAML file (read once)."""
    declarations = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            match = _KEY_LINE.match(line)
            if match:
                where = f"{Path(path).name}:{number}"
                declarations[match["key"]] = parse_declaration(match["declaration"], where)
    return declarations


def run_declarations(files):
    """The declarations of a run whose config layers ``files`` (lowest first) on RecBole's.

    A later file's declaration of a key replaces the earlier one's choices and rules only if it
    states some; the type is the first file's.
    """
    merged = dict(file_declarations(str(properties_dir() / RECBOLE_KEYS_FILE)))
    for file in files:
        for key, declaration in file_declarations(str(file)).items():
            earlier = merged.get(key)
            if earlier is not None and not declaration.has_rules:
                declaration = earlier
            elif earlier is not None:
                declaration = Declaration(
                    earlier.types,
                    declaration.choices,
                    declaration.bounds,
                    declaration.non_empty,
                    declaration.any_case,
                    declaration.where,
                )
            merged[key] = declaration
    return merged


def check_config(config, declarations, keys_first=(), origin=None):
    """Raise a one-line :class:`ConfigError` for the first value ``config`` may not hold.

    Args:
        config (dict): the assembled config (RecBole's ``final_config_dict``).
        declarations (dict): ``{key: Declaration}`` of the run (:func:`run_declarations`).
        keys_first: keys checked first (those the user set: the error names their mistake).
        origin (callable, optional): ``key -> " (from ...)"`` appended to the message.
    """
    origin = origin or (lambda key: "")
    ordered = list(dict.fromkeys([*keys_first, *config]))
    for key in ordered:
        declaration = declarations.get(key)
        if declaration is None or key not in config:
            continue
        problem = declaration.problem(config[key])
        if problem:
            raise ConfigError(f"{key}={config[key]!r} {problem}{origin(key)}.")
    _check_source_domain(config, declarations, origin)
    _check_eval_args(config, origin)
    _check_train_neg_sample_args(config, origin)
    _check_metrics(config, origin)
    if config.get("MODEL_TYPE") == ModelType.SEQUENTIAL and not config.get("repeatable"):
        raise ConfigError(
            f"repeatable={config.get('repeatable')!r}{origin('repeatable')}: sequential models "
            f"only support repeatable: True (RecBole)."
        )


def _check_source_domain(config, declarations, origin):
    block = config.get("source_domain")
    if not isinstance(block, dict):
        return
    for key, value in block.items():
        declaration = declarations.get(key)
        problem = declaration.problem(value) if declaration is not None else None
        if problem:
            raise ConfigError(f"source_domain: {key}={value!r} {problem}{origin('source_domain')}.")


#: What ``eval_args`` may hold: RecBole's forms (recbole.config.Config, Dataset.build).
EVAL_ARG_FORMS = {
    "order": ("RO", "TO"),
    "group_by": ("user", "none", "None", None),
}
_EVAL_MODE = re.compile(r"^(full|labeled|uni[1-9][0-9]*|pop[1-9][0-9]*)$")


def _check_eval_args(config, origin):
    eval_args = config.get("eval_args")
    if not isinstance(eval_args, dict):
        return  # the type check has spoken
    where = origin("eval_args")
    unknown = sorted(set(eval_args) - {"split", "order", "group_by", "mode"})
    if unknown:
        raise ConfigError(
            f"eval_args has unknown key(s) {unknown}{where}; it takes split, order, group_by "
            f"and mode."
        )
    for key, allowed in EVAL_ARG_FORMS.items():
        if key in eval_args and eval_args[key] not in allowed:
            raise ConfigError(
                f"eval_args {key}={eval_args[key]!r} is not one of "
                f"{', '.join(str(a) for a in allowed)}{where}."
            )
    mode = eval_args.get("mode", "full")
    modes_ok = all(isinstance(m, str) and _EVAL_MODE.match(m) for m in _eval_modes(config))
    if not modes_ok or isinstance(mode, dict) and not set(mode) <= {"valid", "test"}:
        raise ConfigError(
            f"eval_args mode={mode!r} must be full, labeled, uniN or popN (N >= 1), or a "
            f"mapping {{valid: ..., test: ...}} of them{where}."
        )
    split = eval_args.get("split", {"RS": [0.8, 0.1, 0.1]})
    ratios = split.get("RS") if isinstance(split, dict) and len(split) == 1 else None
    leave_one = split.get("LS") if isinstance(split, dict) and len(split) == 1 else None
    if not (
        isinstance(ratios, list) and ratios and all(_is_number(r) and r >= 0 for r in ratios)
    ) and leave_one not in ("valid_and_test", "test_only"):
        raise ConfigError(
            f"eval_args split={split!r} must be {{'RS': [train, valid, test]}} (non-negative "
            f"ratios) or {{'LS': 'valid_and_test'}} / {{'LS': 'test_only'}}{where}."
        )


#: RecBole's training negative sampling (recbole.config.Config._set_train_neg_sample_args).
TRAIN_NEG_SAMPLE_FORMS = {
    "distribution": Declaration(("str", "None"), ("uniform", "popularity", "None")),
    "sample_num": Declaration(("int",), bounds=((">=", 1),)),
    "alpha": Declaration(("float",)),
    "dynamic": Declaration(("bool",)),
    "candidate_num": Declaration(("int",), bounds=((">=", 0),)),
}


def _check_train_neg_sample_args(config, origin):
    args = config.get("train_neg_sample_args")
    if not isinstance(args, dict):
        return
    unknown = sorted(set(args) - set(TRAIN_NEG_SAMPLE_FORMS))
    if unknown:
        raise ConfigError(
            f"train_neg_sample_args has unknown key(s) {unknown}{origin('train_neg_sample_args')}"
            f"; it takes {', '.join(TRAIN_NEG_SAMPLE_FORMS)}."
        )
    for key, declaration in TRAIN_NEG_SAMPLE_FORMS.items():
        problem = declaration.problem(args[key]) if key in args else None
        if problem:
            raise ConfigError(
                f"train_neg_sample_args {key}={args[key]!r} {problem}"
                f"{origin('train_neg_sample_args')}."
            )


def metric_class(name):
    """The metric class RecBole's registry (with ours added) holds for ``name``, or ``None``."""
    return register.metrics_dict.get(name.lower()) if isinstance(name, str) else None


def metric_results(metric, config):
    """The names under which ``metric``'s values appear in a result dict (lower case).

    E.g. ``NDCG`` -> ``ndcg@5, ndcg@10`` for ``topk: [5, 10]``; ``MAE`` -> ``mae``;
    ``QueryNDCG`` -> ``query_ndcg@1, ...`` for ``query_ndcg_k``.
    """
    cls = metric_class(metric)
    topk = config.get("topk")
    if issubclass(cls, TopkMetric):
        return [f"{metric.lower()}@{k}" for k in ([topk] if isinstance(topk, int) else topk)]
    if cls is QueryNDCG:
        return [f"query_ndcg@{k}" for k in config.get("query_ndcg_k") or []]
    return [metric.lower()]


def _check_metrics(config, origin):
    metrics = config.get("metrics")
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    unknown = [m for m in metrics if metric_class(m) is None]
    if unknown:
        known = sorted({cls.__name__ for cls in register.metrics_dict.values()}, key=str.lower)
        raise ConfigError(
            f"metrics={config['metrics']!r} names unknown metric(s) {unknown}{origin('metrics')}; "
            f"known: {', '.join(known)}."
        )
    kinds = {register.metric_types[m.lower()] for m in metrics}
    if len(kinds) > 1:
        raise ConfigError(
            f"metrics={config['metrics']!r} mixes ranking and value metrics{origin('metrics')}; "
            f"RecBole evaluates one kind per run (ranking: Recall, NDCG, ...; value: MAE, RMSE)."
        )
    if kinds == {EvaluatorType.VALUE} and "full" in _eval_modes(config):
        raise ConfigError(
            f"metrics={config['metrics']!r} are value metrics, which score labelled rows, and "
            f"eval_args mode is full (ranking all items){origin('metrics')}. Set eval_args mode: "
            f"labeled, or use ranking metrics."
        )
    results = [name for metric in metrics for name in metric_results(metric, config)]
    valid_metric = config.get("valid_metric")
    if not isinstance(valid_metric, str) or valid_metric.lower() not in results:
        topk = any(issubclass(metric_class(m), TopkMetric) for m in metrics)
        with_topk = f" with topk={config.get('topk')!r}" if topk else ""
        raise ConfigError(
            f"valid_metric={valid_metric!r} must name a result of metrics={config['metrics']!r}"
            f"{with_topk}{origin('valid_metric')}: one of {', '.join(results)}."
        )


def _eval_modes(config):
    mode = (config.get("eval_args") or {}).get("mode", "full")
    return list(mode.values()) if isinstance(mode, dict) else [mode]
