from recbole_coldmeta.data.dataloader.support import SupportMixin, SupportTable, with_support
from recbole_coldmeta.data.dataloader.task_dataloader import MetaTaskDataLoader

__all__ = ["MetaTaskDataLoader", "SupportMixin", "SupportTable", "with_support"]
