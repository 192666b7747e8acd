"""Base classes of the cold-start models."""

import torch
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType, ModelType

from recbole_coldmeta.data.dataset.cold_start_dataset import Role
from recbole_coldmeta.meta import pad_groups
from recbole_coldmeta.utils import ConfigError


class ColdStartRecommender(GeneralRecommender):
    """Base of the rating models evaluated on the cold-start protocol.

    Loads ``properties/protocol/rating.yaml`` (MAE, RMSE and QueryNDCG in RecBole's ``labeled``
    evaluation mode) under the model's own YAML. Provides the training label statistics and,
    for meta-learners, every valid/test user's support set, read from the train split.

    Buffers (not saved in checkpoints, rebuilt from the data):
        ``support_item``, ``support_label``, ``support_mask``: ``[n_users, S]``, the support set
        of each valid/test user (empty rows for everybody else).
    """

    type = ModelType.GENERAL
    input_type = InputType.POINTWISE
    protocols = ("rating",)

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.LABEL = config["LABEL_FIELD"]
        if self.LABEL not in dataset.inter_feat:
            raise ConfigError(
                f"{type(self).__name__} predicts ratings, but LABEL_FIELD={self.LABEL!r} is not a "
                f"loaded interaction field. Load the rating column (load_col['inter']) and set "
                f"LABEL_FIELD to it."
            )
        if config["normalize_all"] or self.LABEL in (config["normalize_field"] or []):
            raise ConfigError(
                f"{type(self).__name__} predicts {self.LABEL!r} on its own scale, but the config "
                f"rescales it (normalize_all={config['normalize_all']}, normalize_field="
                f"{config['normalize_field']}), which would make MAE/RMSE meaningless. Set "
                f"normalize_all: False and leave {self.LABEL!r} out of normalize_field."
            )
        labels = dataset.inter_feat[self.LABEL].float()
        self.register_buffer("global_mean", labels.mean())
        self._register_support(dataset)

    def _register_support(self, dataset):
        roles = getattr(dataset, "cold_roles", None)
        rows = (
            torch.nonzero((roles == Role.VALID_SUPPORT) | (roles == Role.TEST_SUPPORT)).squeeze(1)
            if roles is not None
            else torch.zeros(0, dtype=torch.long)
        )
        users = dataset.inter_feat[self.USER_ID][rows]
        index, mask = pad_groups(users, self.n_users)  # [n_users, S]
        chosen = rows[index]
        items = torch.where(mask, dataset.inter_feat[self.ITEM_ID][chosen], 0)
        labels = torch.where(mask, dataset.inter_feat[self.LABEL][chosen].float(), 0.0)
        self.register_buffer("support_item", items, persistent=False)
        self.register_buffer("support_label", labels, persistent=False)
        self.register_buffer("support_mask", mask, persistent=False)


class StatisticRecommender(ColdStartRecommender):
    """Base of closed-form rating baselines: statistics of the train split, no gradient training.

    Subclasses implement ``score(users, items)`` on broadcastable id tensors. The train split
    holds every meta-train interaction and the support interactions of valid/test users, so a
    cold user's statistics come from their support set only.
    """

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.register_buffer("train_user", dataset.inter_feat[self.USER_ID], persistent=False)
        self.register_buffer("train_item", dataset.inter_feat[self.ITEM_ID], persistent=False)
        self.register_buffer(
            "train_label", dataset.inter_feat[self.LABEL].float(), persistent=False
        )
        self.fake_loss = torch.nn.Parameter(torch.zeros(1))

    def grouped_mean(self, ids, values, size, shrinkage=0.0):
        """Per-id ``sum(values) / (count + shrinkage)``: ``[size]`` (0 where an id has no row)."""
        total = torch.zeros(size, device=values.device).index_add_(0, ids, values)
        count = torch.zeros(size, device=values.device).index_add_(0, ids, torch.ones_like(values))
        return total / (count + shrinkage).clamp(min=1e-12), count

    def calculate_loss(self, interaction):
        return self.fake_loss.sum()

    def predict(self, interaction):
        return self.score(interaction[self.USER_ID], interaction[self.ITEM_ID])

    def full_sort_predict(self, interaction):
        users = interaction[self.USER_ID].unsqueeze(1)  # [U, 1]
        items = torch.arange(self.n_items, device=users.device).unsqueeze(0)  # [1, N]
        return self.score(users, items).reshape(-1)  # [U * N]
