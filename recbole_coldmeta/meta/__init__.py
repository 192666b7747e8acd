"""Meta-learning building blocks shared by every model: the inner loop and task utilities."""

from recbole_coldmeta.meta.groups import pad_groups, rank_within
from recbole_coldmeta.meta.inner_loop import adapt, batched_call, task_gradients, task_params

__all__ = ["adapt", "batched_call", "pad_groups", "rank_within", "task_gradients", "task_params"]
