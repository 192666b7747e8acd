"""Meta-learning building blocks shared by every model: the inner loop and task utilities."""

from recbole_coldmeta.meta.inner_loop import adapt, batched_call, pad_groups, task_params

__all__ = ["adapt", "batched_call", "pad_groups", "task_params"]
