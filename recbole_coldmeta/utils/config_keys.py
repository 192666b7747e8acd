"""Every config key RecBole or recbole_coldmeta defines (for the unknown-key checks)."""

import functools
from pathlib import Path

import yaml
from recbole.utils.argument_list import (
    dataset_arguments,
    evaluation_arguments,
    general_arguments,
    training_arguments,
)

from recbole_coldmeta.utils.utils import properties_dir

#: Keys the entry points and RecBole's distributed launcher put into the config.
ENTRY_POINT_KEYS = {
    "model",
    "dataset",
    "config_files",
    "result_file",
    "nproc",
    "ip",
    "port",
    "world_size",
    "offset",
    "group_offset",
    "local_rank",
    "params_file",
    "output_file",
    "tool",
}


def _yaml_keys(folder: Path) -> set:
    keys = set()
    for path in folder.rglob("*.yaml"):
        with open(path, encoding="utf-8") as f:
            content = yaml.safe_load(f)
        if isinstance(content, dict):
            keys.update(content)
    return keys


@functools.cache
def known_config_keys() -> frozenset:
    """Every key RecBole or recbole_coldmeta defines in a properties file or argument list."""
    import recbole

    recbole_properties = Path(recbole.__file__).resolve().parent / "properties"
    keys = _yaml_keys(recbole_properties) | _yaml_keys(properties_dir())
    keys |= set(general_arguments + training_arguments + evaluation_arguments + dataset_arguments)
    return frozenset(keys | ENTRY_POINT_KEYS)
