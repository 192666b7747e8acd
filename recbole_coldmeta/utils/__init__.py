from recbole_coldmeta.utils.errors import ColdMetaError, ConfigError, DataError
from recbole_coldmeta.utils.utils import (
    get_model,
    get_trainer,
    plugin_model_names,
    properties_dir,
)

__all__ = [
    "ColdMetaError",
    "ConfigError",
    "DataError",
    "get_model",
    "get_trainer",
    "plugin_model_names",
    "properties_dir",
]
