"""Ray Tune trials of the shared-split objective (``run_hyper(..., tool='Ray')``)."""

import json
import math
import os

from recbole_coldmeta.utils import ConfigError


def _ray_space(dimensions, algo):
    """The params file as a Ray Tune search space (``choice`` lines: a grid when exhaustive)."""
    from ray import tune

    space = {}
    for d in dimensions:
        if d.kind == "choice":
            values = list(d.values)
            space[d.name] = (
                tune.grid_search(values) if algo == "exhaustive" else tune.choice(values)
            )
        elif d.kind == "uniform":
            space[d.name] = tune.uniform(*d.values)
        elif d.kind == "quniform":
            space[d.name] = tune.quniform(*d.values)
        else:  # loguniform bounds are natural-log exponents, as in hyperopt
            space[d.name] = tune.loguniform(math.exp(d.values[0]), math.exp(d.values[1]))
    return space


def _ray_trial(params, objective, saved):
    """One Ray Tune trial: the shared-split objective on ``params``, reported as one record."""
    from ray.air import session

    objective(dict(params), saved=saved)
    record = objective.trials[-1]
    score = record["best_valid_score"]
    session.report(
        {"valid_score": math.nan if score is None else score, "record": json.dumps(record)}
    )


def run_ray_trials(objective, dimensions, algo, max_evals, saved, address, storage_dir):
    """Run the trials as Ray Tune trials; return their records in trial order.

    Ray is started locally (as many workers as CPUs) unless ``address`` names a running cluster
    (``auto`` after ``ray start --head``, or ``HOST:PORT``). The objective, with the dataset
    split once here, is put into Ray's object store once and shared by every trial
    (``tune.with_parameters``), so trials on any worker train on the same split. Each trial's
    own result (``result.json``, ``progress.csv``) is under ``storage_dir/trials``.

    NOTE: Ray 2.6 needs ``pyarrow`` (< 18 with numpy 1.x) to read its results back; it is in the
    ``ray`` and ``test`` extras. Trials keep the driver's working directory
    (``chdir_to_trial_dir=False``), so relative ``data_path``/``checkpoint_dir`` work on one
    machine; on a cluster give absolute paths that every node can read.
    """
    import ray
    from ray import air, tune

    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        tuner = tune.Tuner(
            tune.with_parameters(_ray_trial, objective=objective, saved=saved),
            param_space=_ray_space(dimensions, algo),
            tune_config=tune.TuneConfig(
                num_samples=1 if algo == "exhaustive" else max_evals,
                chdir_to_trial_dir=False,
            ),
            run_config=air.RunConfig(
                storage_path=os.path.abspath(storage_dir), name="trials", verbose=0
            ),
        )
        grid = tuner.fit()
    finally:
        if started:
            ray.shutdown()
    trials = []
    for index in range(len(grid)):
        result = grid[index]
        if result.error is not None:
            raise ConfigError(f"Ray trial {index + 1} failed: {result.error}") from None
        record = json.loads(result.metrics["record"])
        record["trial"] = index + 1
        trials.append(record)
    return trials[:max_evals]
