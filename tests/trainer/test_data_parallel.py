"""Data-parallel training on CPU: 2 processes, gloo, RecBole's own training loop.

Each test spawns two processes (torch.multiprocessing, the ``spawn`` start method), so the
worker functions live at module level.
"""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from recbole.data.interaction import Interaction

from recbole_coldmeta.data import create_dataset, data_preparation
from recbole_coldmeta.quick_start import build_config
from recbole_coldmeta.quick_start.quick_start import run_coldmeta, run_coldmeta_parallel
from recbole_coldmeta.registry import get_model, get_trainer
from recbole_coldmeta.utils import ConfigError


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return str(s.getsockname()[1])


def _distributed(config_dict, rank, port):
    return {
        **config_dict,
        "local_rank": rank,
        "world_size": 2,
        "nproc": 2,
        "offset": 0,
        "ip": "localhost",
        "port": port,
    }


def _one_step(rank, config_dict, port, out):
    """One meta-training step of MeLU on this rank's share of the first batch."""
    config = build_config("MeLU", "tiny", config_dict=_distributed(config_dict, rank, port))
    train_data, _, _ = data_preparation(config, create_dataset(config))
    torch.manual_seed(0)
    model = get_model("MeLU")(config, train_data.dataset)
    trainer = get_trainer(config["MODEL_TYPE"], "MeLU")(config, model)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    batch = next(iter(train_data))
    trainer.optimizer.zero_grad()
    trainer.set_reduce_hook()
    loss = model.calculate_loss(batch) + trainer.sync_grad_loss()
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    rows = dict(batch.interaction)
    torch.save({"batch": rows, "start": start, "grads": grads}, f"{out}/{rank}.pt")
    torch.distributed.destroy_process_group()


def test_meta_gradients_are_averaged_over_the_processes_tasks(tiny_config, tmp_path):
    config_dict = {**tiny_config, "task_batch_size": 8}
    os.makedirs("log/MeLU", exist_ok=True)  # RecBole's loggers would race to create it
    mp.spawn(_one_step, args=(config_dict, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"{r}.pt") for r in (0, 1)]
    users = [r["batch"]["user_id"] for r in ranks]
    assert len(users[0]) == len(users[1]) == 4  # task_batch_size 8 split over 2 processes
    assert not set(users[0].tolist()) & set(users[1].tolist())
    for name in ranks[0]["grads"]:  # same start (DDP broadcasts rank 0's), same averaged grads
        torch.testing.assert_close(ranks[0]["start"][name], ranks[1]["start"][name])
        torch.testing.assert_close(ranks[0]["grads"][name], ranks[1]["grads"][name])

    # one process, the same parameters, each rank's tasks: the mean of the two mean losses
    config = build_config("MeLU", "tiny", config_dict=config_dict)
    train_data, _, _ = data_preparation(config, create_dataset(config))
    model = get_model("MeLU")(config, train_data.dataset)
    model.load_state_dict({**model.state_dict(), **ranks[0]["start"]})
    losses = [model.calculate_loss(Interaction(r["batch"])) for r in ranks]
    (sum(losses) / 2).backward()
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.grad, ranks[0]["grads"][name], rtol=1e-4, atol=1e-6)


def test_the_entry_point_runs_two_processes_on_the_single_process_split(
    tiny_data_path, tiny_config, tmp_path
):
    import json

    from recbole_coldmeta.quick_start.cli import main

    flags = [f"--data_path={tiny_data_path}", "--load_col=None", "--epochs=2", "--state=WARNING"]
    out = tmp_path / "r.json"
    code = main(
        ["--model=MeLU", "--dataset=tiny", "--nproc=2", f"--port={_free_port()}",
         f"--result_file={out}", *flags]
    )  # fmt: skip
    assert code == 0
    parallel = json.loads(out.read_text())
    single = run_coldmeta("MeLU", "tiny", config_dict={**tiny_config, "epochs": 2})
    assert parallel["split"] == single["split"]
    assert set(parallel["test_result"]) == set(single["test_result"])
    assert 0.3 < parallel["test_result"]["mae"] < 2.0


def test_a_bad_config_in_the_processes_is_a_clear_error(tiny_config):
    with pytest.raises(ConfigError, match="Unknown config key 'epochz'"):
        run_coldmeta_parallel(
            "MeLU", "tiny", config_dict={**tiny_config, "epochz": 1}, nproc=2, port=_free_port()
        )


def test_ranks_that_do_not_fit_the_world_are_refused():
    with pytest.raises(ConfigError, match="do not fit in world_size=2"):
        run_coldmeta_parallel("MeLU", "tiny", nproc=2, world_size=2, group_offset=1)
