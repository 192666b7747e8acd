from recbole_coldmeta.data.utils import (
    build_dataloaders,
    create_dataset,
    data_preparation,
    get_dataset_class,
)

__all__ = ["build_dataloaders", "create_dataset", "data_preparation", "get_dataset_class"]
