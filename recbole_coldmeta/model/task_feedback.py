"""Explicit or implicit feedback of the task-batch models (``meta_feedback``): the check of the
setting and the rows a task learns from."""

import torch

from recbole_coldmeta.utils import ConfigError

FEEDBACKS = ("explicit", "implicit")
RATING_METRICS = ("mae", "rmse", "queryndcg")


class TaskFeedbackMixin:
    """``meta_feedback`` of a task-batch model and the rows it learns from (MeLU, TaNP).

    ``explicit``: a task's rows are its rated rows. ``implicit``: every observed row is a
    positive labelled 1, followed by its ``task_neg_sample_num`` sampled negatives labelled 0,
    which the batch carries (``<prefix>_neg_item`` / ``<prefix>_neg_mask``, drawn by the data
    side in training and fixed per cold user at evaluation).
    """

    def _check_feedback(self, config):
        """True for ``meta_feedback: implicit``; ``ConfigError`` on a bad setting."""
        feedback = config["meta_feedback"]
        if feedback not in FEEDBACKS:
            raise ConfigError(f"meta_feedback={feedback!r} is not one of {', '.join(FEEDBACKS)}.")
        if feedback == "explicit":
            return False
        if config["task_neg_sample_num"] < 1:
            raise ConfigError(
                "meta_feedback=implicit learns positives against sampled negatives: set "
                "task_neg_sample_num >= 1."
            )
        rating = [m for m in config["metrics"] if m.lower() in RATING_METRICS]
        if rating:
            raise ConfigError(
                f"meta_feedback=implicit outputs ranking scores, not ratings, so {rating} "
                f"would be meaningless. Evaluate by ranking: "
                f"--config_files=properties/protocol/ranking.yaml."
            )
        return True

    def task_rows(self, items, labels, mask, neg_items=None, neg_mask=None):
        """A task's training rows: as given (explicit), or positives labelled 1 followed by
        the negatives labelled 0 (implicit). Returns ``(items, labels, mask)``."""
        if not self.implicit:
            return items, labels, mask
        items = torch.cat([items, neg_items], dim=1)
        labels = torch.cat([mask.float(), torch.zeros_like(neg_mask, dtype=torch.float)], dim=1)
        return items, labels, torch.cat([mask, neg_mask], dim=1)

    def _row_fields(self):
        return ["item", "label", "mask"] + (["neg_item", "neg_mask"] if self.implicit else [])

    def _batch_rows(self, interaction, prefix):
        return self.task_rows(*(interaction[f"{prefix}_{field}"] for field in self._row_fields()))
