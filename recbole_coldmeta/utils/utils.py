"""Ground-floor helpers: where our properties live, and a one-process view of a config."""

import contextlib
from pathlib import Path


def properties_dir() -> Path:
    """The folder that holds ``overall.yaml``, ``model/``, ``dataset/`` and ``hyper/``.

    After ``pip install .`` it is the package data ``recbole_coldmeta/properties``; in a source
    checkout (or an editable install) it is the top-level ``properties/`` beside the package.
    """
    package_root = Path(__file__).resolve().parent.parent
    for candidate in (package_root / "properties", package_root.parent / "properties"):
        if (candidate / "overall.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"recbole_coldmeta's properties/overall.yaml was found neither in {package_root} nor in "
        f"{package_root.parent}: the installation is incomplete; reinstall with `pip install .`."
    )


@contextlib.contextmanager
def as_single_process(config):
    """Inside, RecBole code built from ``config`` sees a one-process run (``single_spec``).

    RecBole decides at construction whether to shard a dataloader (a ``DistributedSampler``) or
    to wrap a model for one GPU per process. Evaluation loaders built inside are read whole by
    every process of a data-parallel run, and a trainer built inside leaves the model unwrapped
    (our trainer wraps a CPU model itself). Outside a data-parallel run it does nothing.
    """
    distributed = not config["single_spec"]
    if distributed:
        config["single_spec"] = True
    try:
        yield
    finally:
        if distributed:
            config["single_spec"] = False
