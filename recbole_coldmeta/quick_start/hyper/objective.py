"""RecBole's tuning objective on one split shared by every trial."""

import time
from logging import getLogger

from recbole.utils import set_color

from recbole_coldmeta.config import Config
from recbole_coldmeta.data import create_dataset, data_preparation
from recbole_coldmeta.quick_start.hyper.params import frozen_keys, plain_param
from recbole_coldmeta.quick_start.quick_start import build_config, build_model_and_trainer, plain
from recbole_coldmeta.utils import ConfigError


class SharedSplitObjective:
    """RecBole's ``objective_function(config_dict, config_file_list, saved)`` on one shared split.

    The base configuration is built on creation, the dataset and its split once, by the first
    :meth:`shared_dataset` call; each call of the objective builds the trial's Config (the base
    layers with the trial's ``config_dict`` on top), fresh dataloaders over the shared split, a
    fresh model and trainer, and trains, selects on validation and tests as
    :func:`~recbole_coldmeta.quick_start.run_coldmeta` does. A trial therefore gives the numbers of
    a single ``run_coldmeta`` with the same parameters.

    NOTE: the dataloaders are rebuilt per trial rather than kept and ``update_config``-ed. RecBole
    1.2.1's ``update_config`` sets ``step`` but not the batch size of torch's batch sampler (fixed
    when the loader is built), so a tuned ``train_batch_size``/``task_batch_size`` would silently
    not apply; on a rating-protocol eval loader (no sampler) it raises ``AttributeError``; and a
    kept loader's shuffling generator would carry its state from one trial into the next, so a
    trial's numbers would depend on the trials before it. Loaders are cheap; the split is what is
    built once.

    Attributes:
        base_config (Config): the configuration without trial parameters (built on creation).
        dataset: the dataset, built and split by the first :meth:`shared_dataset` call (the first
            trial's at the latest); ``dataset.build()`` then returns that split again.
        trials (list of dict): one record per call: ``trial``, ``params``, ``best_valid_score``,
            ``valid_result``, ``test_result``, ``seconds``.
    """

    def __init__(self, model, dataset=None, config_file_list=None, config_dict=None, cmd_args=None):
        self.config_file_list = config_file_list
        self.config_dict = dict(config_dict or {})
        self.cmd_args = list(cmd_args or [])
        self.base_config = build_config(model, dataset, config_file_list, config_dict, cmd_args)
        getLogger().info(self.base_config)
        self.dataset = None
        self.trials = []

    def shared_dataset(self):
        """The dataset of every trial, built and split on the first call only."""
        if self.dataset is None:
            dataset = create_dataset(self.base_config)
            getLogger().info(dataset)
            split = dataset.build()
            dataset.build = lambda: split  # every trial's data_preparation reuses this split
            self.dataset = dataset
        return self.dataset

    def trial_config(self, params, config_file_list=None):
        """The Config of one trial; raises ConfigError if it changed a frozen key."""
        base = self.base_config
        params = {key: plain_param(value, base[key]) for key, value in params.items()}
        config = Config(
            base["model"],
            base["dataset"],
            self.config_file_list if config_file_list is None else config_file_list,
            {**self.config_dict, **params},
            self.cmd_args,
        )
        for key in sorted(frozen_keys(base)):
            if config.final_config_dict.get(key) != base.final_config_dict.get(key):
                raise ConfigError(
                    f"Trial parameters {params} change '{key}' ({base[key]!r} -> {config[key]!r}), "
                    f"which every trial must share: the split is built once."
                )
        return config, params

    def __call__(self, config_dict=None, config_file_list=None, saved=True):
        """Train and evaluate one trial; return RecBole's objective result dict."""
        config, params = self.trial_config(config_dict or {}, config_file_list)
        number = len(self.trials) + 1
        logger = getLogger()
        logger.info(set_color(f"hyper trial {number}", "green") + f": {params}")
        start = time.perf_counter()
        train_data, valid_data, test_data = data_preparation(config, self.shared_dataset())
        _, trainer = build_model_and_trainer(config, train_data.dataset)
        best_valid_score, best_valid_result = trainer.fit(
            train_data, valid_data, saved=saved, show_progress=config["show_progress"]
        )
        test_result = trainer.evaluate(
            test_data, load_best_model=saved, show_progress=config["show_progress"]
        )
        trainer.remove_checkpoints(keep_best=config["keep_checkpoints"])  # as a single run does
        self.trials.append(
            {
                "trial": number,
                "params": params,
                "best_valid_score": plain(float(best_valid_score)),
                "valid_result": plain(dict(best_valid_result or {})),
                "test_result": plain(dict(test_result or {})),
                "seconds": round(time.perf_counter() - start, 3),
            }
        )
        logger.info(
            set_color(f"hyper trial {number}", "green")
            + f": valid score {best_valid_score}, test {dict(test_result or {})}"
        )
        return {
            "model": config["model"],
            "best_valid_score": best_valid_score,
            "valid_score_bigger": config["valid_metric_bigger"],
            "best_valid_result": best_valid_result,
            "test_result": test_result,
        }
