"""Dataset classes of recbole_coldmeta, found by name (``<Model>Dataset``) or by configuration."""

from recbole_coldmeta.data.dataset.cold_start_dataset import (
    ColdStartDataset,
    ColdStartSequentialDataset,
    ColdStartSplitMixin,
    Role,
)

__all__ = ["ColdStartDataset", "ColdStartSequentialDataset", "ColdStartSplitMixin", "Role"]
