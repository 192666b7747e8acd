"""Hyper-parameter tuning through RecBole's own ``HyperTuning``, on one split shared by every trial.

``run_hyper_coldmeta.py`` takes RecBole's ``run_hyper.py`` flags (``--model``, ``--dataset``,
``--config_files``, ``--params_file``, ``--output_file``, ``--tool``) plus ``--algo``,
``--max_evals`` and ``--early_stop``; any other ``--key=value`` is a config override for every
trial. A params file is RecBole's: one search dimension a line, ``name type values`` with one
space between the three fields and commas between the values::

    local_lr choice [0.01,0.05]
    learning_rate loguniform -9,-4      # bounds are natural-log exponents: e^-9 .. e^-4
    lambda_cl uniform 0,0.5
    local_steps quniform 1,5,1

(RecBole's format has no comments: the one above is for this docstring only.) Without
``--params_file`` the model's file in ``properties/hyper/`` is used.

Outputs: ``output_file`` (RecBole's ``export_result`` text for every trial, then the selected
parameters with their valid and test results), ``<output_file stem>_trials.csv`` (one row per
trial: parameters, validation score, valid and test metrics, seconds, which trial was selected)
and ``<output_file stem>_trials.png`` (validation score per trial). The trial with the best
validation score is selected; its test numbers are reported and are never used to choose.

One module per job: :mod:`.params` (params files, search-space checks, frozen keys),
:mod:`.objective` (the shared-split objective), :mod:`.hyperopt_runner` (:func:`run_hyper`,
:func:`select_best`), :mod:`.ray_runner` (Ray Tune trials), :mod:`.report` (result text, trials
CSV, plot) and :mod:`.cli` (``run_hyper_coldmeta.py``).
"""

from recbole_coldmeta.quick_start.hyper.cli import build_parser, main
from recbole_coldmeta.quick_start.hyper.hyperopt_runner import ALGOS, TOOLS, run_hyper, select_best
from recbole_coldmeta.quick_start.hyper.objective import SharedSplitObjective
from recbole_coldmeta.quick_start.hyper.params import (
    BOUNDED_TYPES,
    RUN_SPLIT_KEYS,
    SEARCH_TYPES,
    SELECTION_KEYS,
    SPLIT_KEY_OWNERS,
    SPLIT_KEYS,
    SearchDimension,
    check_search_space,
    default_params_file,
    frozen_keys,
    read_params_file,
    shipped_params_files,
)
from recbole_coldmeta.quick_start.hyper.ray_runner import run_ray_trials
from recbole_coldmeta.quick_start.hyper.report import (
    plot_trials,
    write_output_file,
    write_trials_csv,
)

__all__ = [
    "ALGOS",
    "BOUNDED_TYPES",
    "RUN_SPLIT_KEYS",
    "SEARCH_TYPES",
    "SELECTION_KEYS",
    "SPLIT_KEYS",
    "SPLIT_KEY_OWNERS",
    "TOOLS",
    "SearchDimension",
    "SharedSplitObjective",
    "build_parser",
    "check_search_space",
    "default_params_file",
    "frozen_keys",
    "main",
    "plot_trials",
    "read_params_file",
    "run_hyper",
    "run_ray_trials",
    "select_best",
    "shipped_params_files",
    "write_output_file",
    "write_trials_csv",
]
