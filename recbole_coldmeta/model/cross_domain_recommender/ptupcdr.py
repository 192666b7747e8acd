"""PTUPCDR: personalised transfer of user preferences with a meta-learned bridge.

Reference: Yongchun Zhu et al. "Personalized Transfer of User Preferences for Cross-domain
Recommendation." in WSDM 2022 (doi:10.1145/3488560.3498392); code:
https://github.com/easezyc/WSDM2022-PTUPCDR.
"""

import torch

from recbole_coldmeta.model.abstract_recommender import CrossDomainRecommender
from recbole_coldmeta.model.layers import CharacteristicEncoder, MetaBridge
from recbole_coldmeta.utils import ConfigError


class PTUPCDR(CrossDomainRecommender):
    """A characteristic encoder over the user's source items and a meta network that emits a
    personalised bridge ``W_u``; a cold user's target embedding is ``u_s W_u``.

    The characteristic encoder attends over the ID embeddings (frozen, from source pre-training)
    of the user's source items rated above ``history_min_rating`` (3, as in the authors' code),
    the last ``history_max_len`` (20) of them. The bridge is trained with the task-oriented loss
    (MSE of the target ratings of training overlap users scored with the transferred embedding);
    ``bridge_objective: mapping`` trains it on ``||u_s W_u - u_t||^2`` instead, ``both`` on the sum.

    NOTE: model selection is on validation users (the authors' code reports the best test epoch).
    NOTE: a user without any source item above the threshold gets a learned characteristic vector
    (the authors' code gives them an untrained random item).
    """

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # load parameters
        self.bridge_objective = config["bridge_objective"]
        if self.bridge_objective not in ("task", "mapping", "both"):
            raise ConfigError(
                f"bridge_objective={self.bridge_objective!r} must be 'task', 'mapping' or 'both'."
            )

        # define layers
        size = self.characteristic_size(config, dataset)
        self.encoder = CharacteristicEncoder(size, size)
        self.bridge = MetaBridge(size, self.embedding_size, config["meta_dim"])

    def characteristic_size(self, config, dataset):
        """``D``, the size of the item vectors the encoder attends over."""
        return self.embedding_size

    def history_features(self, source_items):
        """Item vectors ``[*, D]`` of source items ``[*]`` for the encoder."""
        return self.source_model.item(source_items).detach()

    def characteristic(self, target_users):
        """``(p_u [B, D], attention [B, L])`` of target users ``[B]``."""
        source_users = self.source_user_of[target_users]
        # h(v_j) depends on the item only: score each distinct item of the batch once
        items, position = torch.unique(self.history_item[source_users], return_inverse=True)
        features = self.history_features(items)  # [I, D]
        logits = self.encoder.score(features).squeeze(-1)  # [I]
        mask = self.history_mask[source_users]
        return self.encoder(features[position], mask, logits[position])  # [B, L, D] gathered

    def transfer(self, target_users):
        characteristic, _ = self.characteristic(target_users)
        return self.bridge(characteristic, self.source_user_embedding(target_users))

    def bridge_loss(self, interaction):
        loss = 0.0
        if self.bridge_objective in ("task", "both"):
            loss = loss + self.task_loss(interaction)
        if self.bridge_objective in ("mapping", "both"):
            loss = loss + self.mapping_loss(interaction[self.USER_ID])
        return loss
