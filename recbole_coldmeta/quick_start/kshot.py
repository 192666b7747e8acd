"""K-shot curves of one run (``shots: [0, 1, 3, 5, 10, 20]``): the selected model scored with each
test user's support cut to their first ``K`` rows, for every ``K``, on the same users.

The first ``K`` rows of a user are the first by time where the data has a time field, else in
the train split's row order (:func:`~recbole_coldmeta.data.dataloader.support.support_slots`).
The users are the test users with at least ``max(shots)`` support rows, so every ``K`` scores the
same users; the metrics are those of the run's test result that have per-user values
(:func:`~recbole_coldmeta.evaluator.aggregate` over those users; AUC, LogLoss and the like have
none and are left out).

- A meta-learner (a model evaluated on batches that carry the support rows) is evaluated from
  its one selected checkpoint: the test loader carries the first ``K`` support rows
  (:meth:`~recbole_coldmeta.data.dataloader.SupportMixin.support_limit`), and the model adapts
  (or conditions) on them; ``K = 0`` is an empty support (every slot masked).
- A model fitted on the train split (whose support rows it learns from) is refitted for each
  ``K`` on the train split with every valid/test user's support cut to ``K`` rows
  (:func:`~recbole_coldmeta.data.dataloader.support.limit_support`), selected on the run's
  validation loader and scored on its test loader, the loaders of the plain run.

NOTE: a refitted model is selected on validation users whose support is cut to ``K`` rows too
(the train split holds every cold user's support; cutting only the test users' would give the
model more shots in selection than in testing). A meta-learner keeps the checkpoint selected at
full support: one training, every ``K`` from it.

NOTE: the evaluation loaders are the plain run's, so a ranking evaluation excludes each user's
whole support from the candidates at every ``K``; only what the model learns from changes.

NOTE: with an empty support (``K = 0``) MeLU's inner loss is zero on every slot, so its inner
loop leaves the meta-parameters as they are (its unadapted prediction); TaNP encodes an empty
context (a zero mean of no rows); CCML still adapts on the support rows of its collaborators
(picked by the candidate pool and a zero support gradient, whose cosine with every candidate is
0), its cross-task term. With ``also_test_states`` the sweep scores ``test_state`` only.
"""

import time
from logging import getLogger

import torch
from recbole.utils import ModelType, set_color

from recbole_coldmeta.data import build_dataloaders
from recbole_coldmeta.data.dataloader.support import limit_support, support_slots
from recbole_coldmeta.evaluator import aggregate, per_user_metrics
from recbole_coldmeta.utils import ConfigError


def check_shots_config(config):
    """``shots`` only where a cut support set means fewer shots, checked before data loads.

    Raises:
        ConfigError: a sequential model (its query rows carry the whole history in their item
            sequence), a split other than the user-level cold-start split, or a data-parallel run.
    """
    if not config["shots"]:
        return
    if config["MODEL_TYPE"] == ModelType.SEQUENTIAL:
        raise ConfigError(
            f"shots cuts support rows, but {config['model']} is sequential: its query rows carry "
            f"the user's whole history in their item sequence. Remove shots."
        )
    if not config["cold_start_split"] or config["source_domain"] is not None:
        raise ConfigError(
            "shots needs the user-level cold-start split (cold_start_split: True, no "
            "source_domain), whose cold users have support rows. Remove shots."
        )
    if not config["single_spec"]:
        raise ConfigError("shots is evaluated in one process; drop --nproc/--world_size.")


def shot_users(config, train_dataset, test_dataset):
    """The test users scored at every ``K``: those with at least ``max(shots)`` support rows.

    Returns:
        torch.Tensor: ``[U]`` user ids, ascending.

    Raises:
        ConfigError: no test user has ``max(shots)`` support rows (checked before training).
    """
    _, mask, _ = support_slots(train_dataset)
    sizes = mask.sum(dim=1)  # [n_users]
    users = torch.unique(test_dataset.inter_feat[test_dataset.uid_field])
    largest = max(config["shots"])
    eligible = users[sizes[users] >= largest]
    if not len(eligible):
        raise ConfigError(
            f"shots: the largest K={largest} exceeds every test user's support "
            f"(at most {int(sizes[users].max())} rows); lower it, or raise support_size."
        )
    return eligible


def shot_results(config, dataset, trainer, loaders, build):
    """Evaluate every ``K`` of ``shots`` (see the module docstring).

    Args:
        config: the run's Config.
        dataset: the whole dataset (the samplers' base).
        trainer: the run's trainer, its model the selected one.
        loaders: the run's ``(train_data, valid_data, test_data)``.
        build: ``(config, train_dataset) -> (model, trainer)``, as the run builds them.

    Returns:
        dict: ``shot_results`` (``{K: {metric: value}}``, K as a string), ``shot_users`` (the
        number of users), ``shot_refit`` (True where the model was refitted per K) and
        ``shot_seconds`` (the sweep's wall time).
    """
    start = time.perf_counter()
    per_shot = evaluate_shots(config, dataset, trainer, loaders, build)
    users = next(iter(per_shot.values()))[0]
    result = {
        "shot_results": {str(shots): metrics for shots, (_, metrics) in per_shot.items()},
        "shot_users": len(users),
        "shot_refit": not config["MODEL_TASK_BATCHES"],
        "shot_seconds": round(time.perf_counter() - start, 3),
    }
    getLogger().info(
        set_color("shots", "yellow") + f" ({len(users)} test users): {result['shot_results']}"
    )
    return result


def evaluate_shots(config, dataset, trainer, loaders, build):
    """``{K: (users [U], {metric: value})}`` for every ``K`` of ``shots``, ascending (the same
    users at every ``K``; :func:`shot_results`'s arguments)."""
    train_data, valid_data, test_data = loaders
    users = shot_users(config, train_data.dataset, test_data.dataset)
    per_shot = {}
    for shots in sorted(set(config["shots"])):
        if config["MODEL_TASK_BATCHES"]:
            with test_data.support_limit(shots):
                struct = _evaluate(trainer, test_data, load_best_model=False)
        else:
            per_shot_trainer = _refit(config, dataset, train_data, valid_data, shots, build)
            struct = _evaluate(per_shot_trainer, test_data, load_best_model=True)
            per_shot_trainer.remove_checkpoints()
        per_shot[shots] = (users, _metrics(config, struct, users))
    return per_shot


def _refit(config, dataset, train_data, valid_data, shots, build):
    """A fresh model fitted on the train split with ``shots`` support rows a cold user."""
    train_part = limit_support(train_data.dataset, shots)
    train_loader = build_dataloaders(config, train_part, base=dataset)[0]
    _, trainer = build(config, train_part)
    trainer.fit(train_loader, valid_data, saved=True, show_progress=config["show_progress"])
    return trainer


def _evaluate(trainer, loader, load_best_model):
    trainer.eval_collector.keep_users = True
    trainer.evaluate(loader, load_best_model=load_best_model, show_progress=False)
    return trainer.eval_collector.last_struct


def _metrics(config, struct, users):
    """The metrics with per-user values, over ``users`` only (``mse``, the column ``rmse`` is
    computed from, only where it is a metric of the run)."""
    ids, n_rows, columns = per_user_metrics(config, struct)
    keep = torch.isin(ids, users)
    assert int(keep.sum()) == len(users), "every K scores the same users"
    columns = {name: values[keep].numpy() for name, values in columns.items()}
    n_rows = n_rows[keep].numpy()
    metrics = [name.lower() for name in config["metrics"]]
    names = [name for name in columns if name != "mse" or "mse" in metrics]
    return {name: float(aggregate(name, columns, n_rows)) for name in names}
