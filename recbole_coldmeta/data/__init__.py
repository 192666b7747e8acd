from recbole_coldmeta.data.utils import create_dataset, data_preparation, get_dataset_class

__all__ = ["create_dataset", "data_preparation", "get_dataset_class"]
