"""Params files: reading RecBole's format, and checking a search space before any training."""

import ast
import difflib
import math
import os
from dataclasses import dataclass
from logging import getLogger

from recbole_coldmeta.config.configurator import parse_cmd_overrides
from recbole_coldmeta.data.dataloader.task_dataloader import MetaTaskDataLoader
from recbole_coldmeta.data.dataset.cold_start_dataset import ColdStartSplitMixin
from recbole_coldmeta.data.dataset.cross_domain_dataset import CrossDomainDataset
from recbole_coldmeta.utils import ConfigError, properties_dir
from recbole_coldmeta.utils.config_keys import known_config_keys

#: Search types of RecBole's params files and the number of comma-separated bounds they take.
BOUNDED_TYPES = {"uniform": 2, "loguniform": 2, "quniform": 3}
SEARCH_TYPES = ("choice", *BOUNDED_TYPES)

#: Classes that read config keys deciding the split; each declares them in ``split_keys``.
SPLIT_KEY_OWNERS = (ColdStartSplitMixin, CrossDomainDataset, MetaTaskDataLoader)
#: Keys of the cold-start and cross-domain splits and of the meta-training task cuts.
SPLIT_KEYS = frozenset().union(*(owner.split_keys for owner in SPLIT_KEY_OWNERS))
#: Keys that decide the data besides the dataset arguments (``config.parameters["Dataset"]``) and
#: :data:`SPLIT_KEYS`: the run's model and files (``raw_data_path``: where converters read the raw
#: files, see ``recbole_coldmeta.data.utils``; the data checks that decide which rows are kept,
#: see ``recbole_coldmeta.data.row_checks``) and its randomness.
RUN_SPLIT_KEYS = frozenset(
    {"model", "dataset", "data_path", "raw_data_path", "seed", "reproducibility"}
    | {"encoding", "drop_incomplete_rows", "duplicate_interactions", "rating_range"}
)
#: Keys that decide how a trial is scored: trials are only comparable when these are equal.
SELECTION_KEYS = frozenset(
    {
        "eval_args",
        "metrics",
        "topk",
        "valid_metric",
        "valid_metric_bigger",
        "metric_decimal_place",
        "repeatable",
        "query_ndcg_k",
        "valid_neg_sample_args",
        "test_neg_sample_args",
    }
)


@dataclass(frozen=True)
class SearchDimension:
    """One line of a params file.

    ``values`` holds the options of a ``choice``, ``(low, high)`` of ``uniform``/``loguniform``
    (for ``loguniform`` natural-log exponents, as in hyperopt) or ``(low, high, q)`` of
    ``quniform``.
    """

    name: str
    kind: str
    values: tuple
    line: int


def default_params_file(model_name):
    """``properties/hyper/<model>.hyper``, the params file this package ships for a model."""
    return str(properties_dir() / "hyper" / f"{model_name}.hyper")


def shipped_params_files():
    """Models with a params file in ``properties/hyper/``, sorted."""
    return sorted(path.stem for path in (properties_dir() / "hyper").glob("*.hyper"))


def read_params_file(path):
    """Read and check a RecBole params file; every problem is one :class:`ConfigError`.

    The grammar is exactly what ``recbole.trainer.HyperTuning`` reads (one space between
    ``name``, ``type`` and the values; list values of ``choice`` are Python literals), except that
    lines RecBole would skip silently or half-read are errors here.

    Returns:
        list of :class:`SearchDimension`, in file order.
    """
    if not os.path.isfile(path):
        raise ConfigError(
            f"Params file '{path}' does not exist (working directory: {os.getcwd()}). Fix the "
            f"path given to --params_file; shipped files: properties/hyper/<Model>.hyper for "
            f"{', '.join(shipped_params_files())}."
        )
    dimensions = {}
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, start=1):
            line = raw.strip()
            if not line:
                continue
            dimension = _read_params_line(path, number, line)
            if dimension.name in dimensions:
                first = dimensions[dimension.name].line
                raise ConfigError(
                    f"{path}, line {number}: '{dimension.name}' is already searched on line "
                    f"{first}. Keep one of the two lines."
                )
            dimensions[dimension.name] = dimension
    if not dimensions:
        raise ConfigError(
            f"Params file '{path}' holds no search dimension. Add lines such as "
            f"`learning_rate choice [0.001,0.01]`."
        )
    return list(dimensions.values())


def _read_params_line(path, number, line):
    where = f"{path}, line {number}"
    if line.startswith("#"):
        raise ConfigError(
            f"{where}: RecBole's params files have no comments (RecBole would read '{line}' as a "
            f"parameter named '#' or skip it). Remove the line."
        )
    parts = line.split(" ")  # RecBole's own split: one space between fields
    if len(parts) < 3 or not parts[0] or not parts[1]:
        raise ConfigError(
            f"{where}: cannot read '{line}'. Write `name type values` with one space between "
            f"fields, e.g. `learning_rate choice [0.001,0.01]` or `lambda_cl uniform 0,0.5`."
        )
    name, kind, text = parts[0], parts[1], "".join(parts[2:])
    if kind not in SEARCH_TYPES:
        raise ConfigError(
            f"{where}: unknown search type '{kind}' for '{name}'. Use one of "
            f"{', '.join(SEARCH_TYPES)}."
        )
    if kind == "choice":
        try:
            options = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            options = None
        if not isinstance(options, list | tuple):
            raise ConfigError(
                f"{where}: the options of '{name}' must be a Python list, e.g. "
                f"`{name} choice [0.01,0.1]`; got '{text}'."
            )
        if not options:
            raise ConfigError(f"{where}: '{name}' has an empty choice list. Give one or more.")
        return SearchDimension(name, kind, tuple(options), number)
    try:
        bounds = tuple(float(value) for value in text.split(","))
    except ValueError:
        bounds = ()
    size = BOUNDED_TYPES[kind]
    example = "1,5,1" if kind == "quniform" else "0,0.5"
    if len(bounds) != size or not all(map(math.isfinite, bounds)):
        raise ConfigError(
            f"{where}: '{name} {kind}' takes {size} numbers separated by commas, e.g. "
            f"`{name} {kind} {example}`; got '{' '.join(parts[2:])}'."
        )
    if bounds[0] >= bounds[1]:
        raise ConfigError(
            f"{where}: the range of '{name}' is empty ({bounds[0]:g} >= {bounds[1]:g}). Write the "
            f"lower bound first."
        )
    if kind == "quniform" and bounds[2] <= 0:
        raise ConfigError(f"{where}: the step q of '{name}' must be positive.")
    if kind == "loguniform" and bounds[0] >= 0:
        getLogger().warning(
            f"{where}: loguniform bounds are natural-log exponents, so '{name}' is drawn from "
            f"[{math.exp(bounds[0]):.4g}, {math.exp(bounds[1]):.4g}]."
        )
    return SearchDimension(name, kind, bounds, number)


def plain_param(value, default):
    """A trial's value as a plain Python value of its key's type (hyperopt gives tuples, floats):
    a whole float for a key whose ``default`` is an int becomes an int."""
    if isinstance(value, tuple | list):
        return [plain_param(item, None) for item in value]
    if hasattr(value, "item"):
        value = value.item()
    if (
        isinstance(default, int)
        and not isinstance(default, bool)
        and isinstance(value, float)
        and value.is_integer()
    ):
        return int(value)
    return value


def trial_values(dimension):
    """The values of a dimension that every value a trial takes lies between: each option of a
    ``choice``, the bounds of a range (``loguniform``'s as ``e**bound``)."""
    if dimension.kind == "choice":
        return dimension.values
    low, high = dimension.values[:2]
    return (math.exp(low), math.exp(high)) if dimension.kind == "loguniform" else (low, high)


def _check_trial_values(dimension, declaration, default, where):
    """Every value of ``dimension`` passes the key's declared type, range and choices, as a
    command-line value would (:mod:`recbole_coldmeta.config.checks`).

    NOTE: a range is checked at its bounds (every accepted form is an interval or a type, so
    the bounds decide); ``uniform``/``loguniform`` draw non-integers, so they are refused for an
    integer-only key (``quniform`` draws whole numbers).
    """
    name, kind = dimension.name, dimension.kind
    integer_only = "int" in declaration.types and "float" not in declaration.types
    if kind in ("uniform", "loguniform") and integer_only:
        raise ConfigError(
            f"{where}: '{name} {kind}' draws non-integers, and {name} must be "
            f"{declaration.describe()}. Write `{name} quniform LOW,HIGH,1` or a choice line."
        )
    for value in trial_values(dimension):
        value = plain_param(value, default)
        problem = declaration.problem(value)
        if problem:
            shown = "option" if kind == "choice" else f"{kind} bound"
            raise ConfigError(
                f"{where}: the {shown} {name}={value!r} {problem} ({declaration.where}). Fix "
                f"the params file."
            )


def frozen_keys(config):
    """Keys every trial must share: the split's and the scoring's (see :func:`run_hyper`)."""
    return set(config.parameters["Dataset"]) | SPLIT_KEYS | RUN_SPLIT_KEYS | SELECTION_KEYS


def check_search_space(dimensions, config, path, cmd_args=None, algo="exhaustive"):
    """Fail before any training when a params file cannot give comparable, working trials.

    Raises:
        ConfigError: an unknown key (with a spelling hint), a key this model's configuration does
            not define, a split or scoring key (see :func:`run_hyper`), a key also given on the
            command line (which would override every trial), a value a trial could take that the
            key's declaration refuses (:func:`_check_trial_values`), or a non-``choice`` line
            with ``algo='exhaustive'``.
    """
    declarations = config.declarations
    overridden = parse_cmd_overrides(cmd_args or [])
    frozen = frozen_keys(config)
    check_names = not config["allow_unknown_config_keys"]
    defined = set(config.final_config_dict)
    for dimension in dimensions:
        name, where = dimension.name, f"{path}, line {dimension.line}"
        if check_names and name not in known_config_keys():
            close = difflib.get_close_matches(name, sorted(defined), n=3, cutoff=0.75)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(f"{where}: unknown config key '{name}'.{hint} Fix the spelling.")
        if check_names and name not in defined:
            raise ConfigError(
                f"{where}: '{name}' is a config key, but {config['model']}'s configuration does "
                f"not define it (it is not in its model YAML), so tuning it would change nothing. "
                f"Remove the line."
            )
        if name in frozen:
            why = (
                "decides how trials are scored, and trials are compared on one validation score"
                if name in SELECTION_KEYS
                else "decides the dataset or its split, which every trial shares"
            )
            raise ConfigError(
                f"{where}: '{name}' {why}, so it cannot vary between trials. Set it for the whole "
                f"run with --{name}=VALUE (or in --config_files) and tune once per value."
            )
        if name in overridden:
            raise ConfigError(
                f"{where}: '{name}' is tuned here and also given as --{name} on the command line, "
                f"which would override every trial's value. Remove one of the two."
            )
        if name in declarations:
            default = config.final_config_dict.get(name)
            _check_trial_values(dimension, declarations[name], default, where)
        if algo == "exhaustive" and dimension.kind != "choice":
            raise ConfigError(
                f"{where}: exhaustive search enumerates choice lines only, and '{name}' is "
                f"{dimension.kind}. Write it as `{name} choice [...]` or use --algo=random or "
                f"--algo=bayes."
            )
