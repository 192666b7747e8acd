"""``run_hyper``: the tuning driver, with RecBole's ``HyperTuning`` (hyperopt) or Ray Tune."""

import math
import os
import time
from functools import partial
from logging import getLogger

import numpy as np
from recbole.utils import set_color

from recbole_coldmeta.quick_start.hyper.objective import SharedSplitObjective
from recbole_coldmeta.quick_start.hyper.params import (
    check_search_space,
    default_params_file,
    read_params_file,
    shipped_params_files,
)
from recbole_coldmeta.quick_start.hyper.ray_runner import run_ray_trials
from recbole_coldmeta.quick_start.hyper.report import (
    plot_trials,
    write_output_file,
    write_trials_csv,
)
from recbole_coldmeta.registry import get_model
from recbole_coldmeta.utils import ConfigError
from recbole_coldmeta.utils.atomic import check_writable_file

ALGOS = ("exhaustive", "random", "bayes")
TOOLS = ("Hyperopt", "Ray")


def _seeded(suggest, seed):
    """``suggest`` fed from a ``RandomState(seed)``, as ``fmin(rstate=...)`` would do."""
    generator = np.random.RandomState(seed)

    def algo(new_ids, domain, trials, _unseeded):
        return suggest(new_ids, domain, trials, generator.randint(2**31 - 1))

    return algo


def select_best(trials, bigger):
    """Index of the trial with the best validation score (the first on ties; NaN never wins)."""

    def key(index):
        score = trials[index]["best_valid_score"]
        if score is None or math.isnan(score):
            return math.inf
        return -score if bigger else score

    return min(range(len(trials)), key=key)


def run_hyper(
    model=None,
    dataset=None,
    config_file_list=None,
    params_file=None,
    output_file=None,
    tool="Hyperopt",
    algo="exhaustive",
    max_evals=None,
    early_stop=10,
    config_dict=None,
    cmd_args=None,
    saved=True,
    ray_address=None,
):
    """Tune ``model`` with RecBole's ``HyperTuning`` (or Ray Tune) on one split shared by every
    trial.

    Args:
        model (str): a recbole_coldmeta or RecBole model name.
        dataset (str): dataset name; ``ml-100k`` when omitted.
        config_file_list (list of str): YAML config files, for every trial.
        params_file (str): RecBole params file; default ``properties/hyper/<model>.hyper``.
        output_file (str): RecBole's result text; default ``hyper_<model>.result``. The trial
            table and the plot are written beside it (``<stem>_trials.csv``/``.png``).
        tool (str): ``Hyperopt`` (RecBole's ``HyperTuning``, trials in this process) or ``Ray``
            (Ray Tune trials on local workers or a cluster: :func:`run_ray_trials`).
        algo (str): ``exhaustive`` (every combination of the ``choice`` lines), ``random``
            (hyperopt's ``rand.suggest``) or ``bayes`` (``tpe.suggest``).
        max_evals (int): most trials; default the whole grid for ``exhaustive``, else 100.
        early_stop (int): stop after this many trials without a better validation score.
        config_dict (dict): config overrides for every trial (the trial's parameters win).
        cmd_args (list of str): ``--key=value`` overrides for every trial; they may not name a
            tuned key.
        saved (bool): keep each trial's best-validation checkpoint and test it.
        ray_address (str): with ``tool='Ray'``, a running cluster (``auto`` or ``HOST:PORT``);
            ``None`` starts Ray locally.

    Returns:
        dict: ``model``, ``dataset``, ``algo``, ``valid_metric``, ``valid_score_bigger``,
        ``best_trial`` (1-based), ``best_params``, ``best_valid_score``, ``best_valid_result``,
        ``test_result`` (of the selected trial), ``trials`` (every trial's record), ``split``,
        ``output_file``, ``trials_file``, ``plot_file``, ``seconds``.

    Raises:
        ConfigError: before any training, for a missing or malformed params file, an unknown or
            frozen key, an empty range or choice list, an unknown tool or algo, or outputs that
            cannot be written.

    NOTE: the dataset is built and split once, from the base configuration, and every trial
    trains on that split: trials are then compared on the same validation users, which is what
    selecting by validation score needs. A params-file key that would change the split (RecBole's
    dataset arguments, the cold-start split keys such as ``support_size`` or
    ``user_split_ratio``, ``seed``) or the scoring (``valid_metric``, ``metrics``, ``eval_args``,
    ...) is therefore an error, not a reason to rebuild: scores from different splits or metrics
    are not comparable, so the "best" trial would mean nothing. Set such a key for the whole run
    and tune once per value.

    NOTE: the search is seeded: RecBole's ``HyperTuning`` leaves hyperopt's random state unseeded,
    so the same command would try other points; here the suggestion algorithm draws from
    ``RandomState(seed)``. The best trial is chosen here from the trial records
    (:func:`select_best`) rather than read from ``HyperTuning.best_params``, which skips a
    first score of 0 (``if not self.best_score``) and keys results by a params string.
    """
    start = time.perf_counter()
    if tool not in TOOLS:
        raise ConfigError(f"Unknown --tool={tool}: use Hyperopt or Ray.")
    if algo not in ALGOS:
        raise ConfigError(f"Unknown --algo={algo}: use one of {', '.join(ALGOS)}.")
    if tool == "Ray" and algo == "bayes":
        raise ConfigError("--tool=Ray runs --algo=exhaustive or random; bayes is Hyperopt's.")
    if model is None:
        raise ConfigError("No model given: pass --model=NAME (e.g. --model=MeLU).")
    model_name = get_model(model).__name__
    if params_file is None:
        params_file = default_params_file(model_name)
        if not os.path.isfile(params_file):
            raise ConfigError(
                f"recbole_coldmeta ships no params file for {model_name} (it has params files "
                f"for {', '.join(shipped_params_files())}). Pass --params_file=FILE."
            )
    dimensions = read_params_file(params_file)
    output_file = output_file or f"hyper_{model_name}.result"
    stem = os.path.splitext(output_file)[0]
    trials_file, plot_file = f"{stem}_trials.csv", f"{stem}_trials.png"
    for path in (output_file, trials_file, plot_file):  # all three, before any trial
        check_writable_file(path, "--output_file")

    from hyperopt import rand, tpe
    from recbole.trainer import HyperTuning
    from recbole.trainer.hyper_tuning import exhaustive_search

    objective = SharedSplitObjective(model, dataset, config_file_list, config_dict, cmd_args)
    config = objective.base_config
    check_search_space(dimensions, config, params_file, cmd_args, algo)
    grid_size = math.prod(len(d.values) for d in dimensions)
    if algo == "exhaustive":
        suggest = partial(exhaustive_search, nbMaxSucessiveFailures=1000)
        max_evals = grid_size if max_evals is None else min(grid_size, max_evals)
    else:
        suggest = rand.suggest if algo == "random" else tpe.suggest
        max_evals = 100 if max_evals is None else max_evals
    if max_evals < 1 or early_stop < 1:
        raise ConfigError(
            f"--max_evals={max_evals} and --early_stop={early_stop} must be at least 1."
        )

    objective.shared_dataset()
    logger = getLogger()
    logger.info(
        set_color("hyper", "green")
        + f": {algo} search of {model_name} over {[d.name for d in dimensions]} with {tool}, at "
        + f"most {max_evals} trials, selected on valid {config['valid_metric']}"
    )
    tuner = None
    if tool == "Ray":
        trials = run_ray_trials(
            objective, dimensions, algo, max_evals, saved, ray_address, f"{stem}_ray"
        )
    else:
        tuner = HyperTuning(
            partial(objective, saved=saved),
            params_file=params_file,
            fixed_config_file_list=config_file_list,
            algo=_seeded(suggest, config["seed"]),
            max_evals=max_evals,
            early_stop=early_stop,
        )
        tuner.run()
        trials = objective.trials
    best = trials[select_best(trials, config["valid_metric_bigger"])]
    result = {
        "model": config["model"],
        "dataset": config["dataset"],
        "algo": algo,
        "valid_metric": config["valid_metric"],
        "valid_score_bigger": bool(config["valid_metric_bigger"]),
        "best_trial": best["trial"],
        "best_params": best["params"],
        "best_valid_score": best["best_valid_score"],
        "best_valid_result": best["valid_result"],
        "test_result": best["test_result"],
        "trials": trials,
        "split": getattr(objective.dataset, "split_info", None),
        "output_file": output_file,
        "trials_file": trials_file,
        "plot_file": plot_file,
    }
    write_output_file(tuner, result, output_file)
    write_trials_csv(result, trials_file)
    plot_trials(result, plot_file)
    result["seconds"] = round(time.perf_counter() - start, 3)
    logger.info(
        set_color("hyper best", "yellow")
        + f": trial {best['trial']} {best['params']}, valid {best['valid_result']}, "
        + f"test {best['test_result']}"
    )
    return result
