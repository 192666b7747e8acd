"""A smoke run of every plugin model through the command line's entry point, on tiny data.

A model is fed by the protocol its class lists (``protocols``), so a new model is covered
without touching this file, and one of an unknown protocol fails here until its data is added.
Every model also runs at its defaults on the same data reduced to ids and ratings (no user or
item features: many real datasets look like that); the cross-domain data is so already.
"""

import json
import math

import pytest
import yaml

from recbole_coldmeta.quick_start.cli import main
from recbole_coldmeta.registry import get_model, plugin_model_names

#: ``(protocol, config fixture, dataset)``, most specific first: a model runs on the first
#: protocol of this list that its class lists.
DATA_OF_PROTOCOL = [
    ("cross_domain", "cdr_config", None),
    ("sequential_cold", "sequential_cold_config", "tiny"),
    ("rating", "tiny_config", "tiny"),
]

#: Smaller batches than the YAML defaults, so every model makes several steps on tiny data.
SMALL = {"train_batch_size": 64, "eval_batch_size": 256, "epochs": 1}

#: Settings of models whose defaults need more data than the tiny datasets hold (size only: what
#: feeds a model is its protocol).
FIT_TO_TINY_DATA = {"CCML": {"n_similar": 5, "n_negative": 10, "n_beneficial": 3, "pool_size": 20}}


#: The interaction columns of the tiny data: loading only these drops every user/item feature.
IDS_ONLY = {"load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]}}


def _cases():
    for model in plugin_model_names():
        yield pytest.param(model, False, id=model)
        if "cross_domain" not in getattr(get_model(model), "protocols", ()):
            yield pytest.param(model, True, id=f"{model}-ids_only")


@pytest.mark.parametrize("model, ids_only", _cases())
def test_model_runs_one_epoch_and_writes_its_result(model, ids_only, request, tmp_path):
    protocols = getattr(get_model(model), "protocols", ())
    known = [entry for entry in DATA_OF_PROTOCOL if entry[0] in protocols]
    if not known:
        pytest.fail(
            f"{model} lists protocols {protocols!r}, none of which this test can feed: add its "
            f"data to DATA_OF_PROTOCOL ({', '.join(p for p, _, _ in DATA_OF_PROTOCOL)})."
        )
    _, fixture, dataset = known[0]
    config = {**request.getfixturevalue(fixture), **SMALL, **FIT_TO_TINY_DATA.get(model, {})}
    if ids_only:
        config.update(IDS_ONLY)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    result_file = tmp_path / "result.json"
    argv = [f"--model={model}", f"--config_files={config_file}", f"--result_file={result_file}"]
    assert main(argv + ([f"--dataset={dataset}"] if dataset else [])) == 0

    result = json.loads(result_file.read_text())
    for part in ("valid_result", "test_result"):
        assert result[part], f"{model} reported no {part}"
        assert all(isinstance(v, float) and math.isfinite(v) for v in result[part].values()), (
            f"{model}'s {part} has a missing or non-finite metric: {result[part]}"
        )
    assert isinstance(result["best_valid_score"], float)  # plain() writes null when not finite
    split = result["split"]  # the cold-start and the cross-domain split count different parts
    assert split["valid_users"] > 0 and split["test_users"] > 0
    assert all(isinstance(count, int) and count >= 0 for count in split.values())
