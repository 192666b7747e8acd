"""Dataloaders of recbole_coldmeta."""

from recbole_coldmeta.data.dataloader.task_dataloader import MetaTaskDataLoader

__all__ = ["MetaTaskDataLoader"]
