"""Train and evaluate one model, plugin or RecBole built-in, and return a JSON-ready result."""

import json
import math
import sys
import time
from logging import getLogger

from recbole.utils import init_logger, init_seed, set_color

from recbole_coldmeta.config import Config
from recbole_coldmeta.data import create_dataset, data_preparation
from recbole_coldmeta.utils import get_model, get_trainer


def plain(value):
    """Metric values as JSON numbers (``None`` for NaN/inf, which JSON cannot hold)."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def build_config(model=None, dataset=None, config_file_list=None, config_dict=None, cmd_args=None):
    """Config, seeded RNGs and RecBole's logger, as every run starts."""
    config = Config(model, dataset, config_file_list, config_dict, cmd_args)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    return config


def run_coldmeta(
    model=None,
    dataset=None,
    config_file_list=None,
    config_dict=None,
    cmd_args=None,
    saved=True,
):
    """Train ``model`` on ``dataset``, select it on validation data, evaluate it on test data.

    Args:
        model (str or type): a recbole_coldmeta or RecBole model name (or class).
        dataset (str): dataset name; ``ml-100k`` (bundled with RecBole) when omitted.
        config_file_list (list of str): YAML config files.
        config_dict (dict): parameter overrides.
        cmd_args (list of str): ``--key=value`` overrides, highest precedence.
        saved (bool): save the best checkpoint and reload it before testing.

    Returns:
        dict: ``model``, ``dataset``, ``seed``, ``best_valid_score``, ``valid_result``,
        ``test_result``, ``train_seconds``, ``test_seconds`` (the test evaluation, checkpoint
        reload included) and, on the cold-start split, ``split`` (user and
        interaction counts of its parts); metric values are plain floats.
    """
    config = build_config(model, dataset, config_file_list, config_dict, cmd_args)
    logger = getLogger()
    logger.info(config)

    dataset = create_dataset(config)
    logger.info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data.dataset).to(config["device"])
    logger.info(model)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)

    start = time.perf_counter()
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=config["show_progress"]
    )
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    test_result = trainer.evaluate(
        test_data, load_best_model=saved, show_progress=config["show_progress"]
    )
    test_seconds = time.perf_counter() - start
    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    result = {
        "model": config["model"],
        "dataset": config["dataset"],
        "seed": config["seed"],
        "best_valid_score": plain(float(best_valid_score)),
        "valid_result": plain(dict(best_valid_result or {})),
        "test_result": plain(dict(test_result or {})),
        "train_seconds": round(train_seconds, 3),
        "test_seconds": round(test_seconds, 3),
    }
    if getattr(dataset, "split_info", None) is not None:
        result["split"] = dict(dataset.split_info)
    return result


def write_result(result, result_file):
    """Write ``result`` as one JSON object to ``result_file``."""
    with open(result_file, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
        f.write("\n")


def print_test_result(result, stream=None):
    """Print the test metrics as one JSON line (the run's last line on stdout)."""
    print(json.dumps(result["test_result"]), file=stream or sys.stdout, flush=True)
