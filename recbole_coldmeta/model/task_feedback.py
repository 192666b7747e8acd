"""Explicit or implicit feedback of the task-batch models (``meta_feedback``): the check of the
setting, the label of implicit data and the rows a task learns from; the rating prior their
networks add to (``prior``)."""

from logging import getLogger

import torch

from recbole_coldmeta.model.layers import BiasPrior
from recbole_coldmeta.utils import ConfigError, DataError

FEEDBACKS = ("explicit", "implicit")
PRIORS = ("auto", "global_mean", "biases")
RATING_METRICS = ("mae", "rmse", "queryndcg")


def implicit_label(config, dataset):
    """``(label field or None, labels)`` of implicit feedback, where every row is a positive;
    ``DataError`` when the loaded label marks some rows as negatives (``<= 0``).

    NOTE: implicit feedback needs no label column, and the rating prior is unused (the model
    outputs logits): a loaded label (a rating) only sets ``global_mean``, which the implicit
    outputs never add. A label of 0 or less (a logged negative, a click label) would silently
    become a positive, so it stops the run instead.
    """
    label = config["LABEL_FIELD"]
    if label not in dataset.inter_feat:
        return None, torch.ones(1)
    labels = dataset.inter_feat[label].float()
    negative = int((labels <= 0).sum())
    if negative:
        raise DataError(
            f"meta_feedback=implicit takes every row as a positive, but {negative} rows have "
            f"{label} <= 0 (negatives?). Keep only the positive rows (val_interval: "
            f"{{{label}: '(0,inf)'}}) or leave {label!r} out of load_col['inter']."
        )
    return label, labels


class TaskFeedbackMixin:
    """``meta_feedback`` of a task-batch model and the rows it learns from (MeLU, TaNP, MAMO).

    ``explicit``: a task's rows are its rated rows. ``implicit``: every observed row is a
    positive labelled 1, followed by its ``task_neg_sample_num`` sampled negatives labelled 0,
    which the batch carries (``<prefix>_neg_item`` / ``<prefix>_neg_mask``, drawn by the data
    side in training and fixed per cold user at evaluation). Implicit data needs no label
    column (ids only is enough).
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


class TaskPriorMixin:
    """``prior`` of a task-batch rating model (MeLU, MAMO): what its network's output is added
    to, the training mean (``global_mean``) or the shrunk bias model ``μ + b_i + b_u``
    (``biases``, :class:`~recbole_coldmeta.model.layers.BiasPrior`, ``b_u`` from each task's
    support rows). Needs ``self.implicit`` set before :meth:`_build_prior`.

    NOTE: ``auto`` is ``biases`` for explicit ratings and ``global_mean`` (the base the implicit
    logit starts from) for ``meta_feedback: implicit``, where a rating prior means nothing; the
    choice is logged. ``self.prior`` holds the resolved value.
    NOTE: the bias prior's item statistics are those of the split the model was built on: a
    model trained once and tested on another state (``also_test_states``, ``train_once``) keeps
    its training split's, so a new item of an item-cold state has ``b_i = 0`` there, while a
    baseline refitted on that state's split estimates it from the test users' support rows.
    """

    def _build_prior(self, config, dataset):
        prior = config["prior"]
        if prior not in PRIORS:
            raise ConfigError(f"prior={prior!r} is not one of {', '.join(PRIORS)}.")
        if prior == "auto":
            prior = "global_mean" if self.implicit else "biases"
            getLogger().info(f"{type(self).__name__}: prior=auto -> {prior}")
        self.prior = prior
        if prior == "global_mean":
            return None
        if self.implicit:
            raise ConfigError("prior=biases is a rating prior; with meta_feedback=implicit use "
                              "prior: global_mean.")  # fmt: skip
        if not isinstance(config["prior_shrinkage"], int | float) or config["prior_shrinkage"] < 0:
            raise ConfigError(f"prior_shrinkage={config['prior_shrinkage']!r} must be >= 0.")
        inter = dataset.inter_feat
        return BiasPrior(
            inter[self.ITEM_ID], inter[self.LABEL], self.n_items, config["prior_shrinkage"]
        )

    def prior_bases(self, support, items, held_out=None):
        """The prior of each support row ``[T, S]`` and of each row of ``items [T, Q]``, or
        ``(None, None)`` with ``prior: global_mean`` (the model then adds the training mean).

        Args:
            support: ``(items, labels, mask)`` ``[T, S]``, the tasks' support rows.
            items: ``[T, Q]`` further rows of the same tasks.
            held_out: ``(labels, mask)`` of ``items`` whose ratings are in the train split
                (meta-train query rows in training), left out of their item biases.
        """
        if self.bias_prior is None:
            return None, None
        user_bias = self.bias_prior.user_bias(*support)
        return self.bias_prior(support[0], user_bias), self.bias_prior(items, user_bias, held_out)
