"""Dataset classes of recbole_coldmeta, found by name (``<Model>Dataset``) or by configuration."""

from recbole_coldmeta.data.dataset.cold_start_dataset import (
    ColdStartDataset,
    ColdStartSequentialDataset,
    ColdStartSplitMixin,
)
from recbole_coldmeta.data.dataset.cross_domain_dataset import (
    CrossDomainDataset,
    domain_config,
)
from recbole_coldmeta.utils.enums import Phase, Role

__all__ = [
    "ColdStartDataset",
    "ColdStartSequentialDataset",
    "ColdStartSplitMixin",
    "CrossDomainDataset",
    "Phase",
    "Role",
    "domain_config",
]
