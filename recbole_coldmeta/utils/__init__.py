from recbole_coldmeta.utils.errors import ColdMetaError, ConfigError, DataError
from recbole_coldmeta.utils.utils import as_single_process, properties_dir

__all__ = [
    "as_single_process",
    "ColdMetaError",
    "ConfigError",
    "DataError",
    "properties_dir",
]
