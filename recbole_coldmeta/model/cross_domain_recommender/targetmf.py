"""TargetMF: matrix factorisation on the target domain alone (the cross-domain lower bound).

Reference: the "TGT" baseline of Zhu et al. "Personalized Transfer of User Preferences for
Cross-domain Recommendation." in WSDM 2022 (doi:10.1145/3488560.3498392); code:
https://github.com/easezyc/WSDM2022-PTUPCDR.
"""

import torch

from recbole_coldmeta.model.abstract_recommender import CrossDomainRecommender
from recbole_coldmeta.utils import ConfigError
from recbole_coldmeta.utils.enums import Phase

COLD_USER_FALLBACKS = ("embedding", "global_mean", "item_mean")


class TargetMF(CrossDomainRecommender):
    """MF (or GMF) trained on the target domain's training interactions only.

    ``cold_user_fallback`` decides what a user without target training data gets:

    - ``embedding``: their never-trained random embedding, as PTUPCDR's code does (its "TGT"
      numbers, MAE around 4.4 on Amazon, come from this);
    - ``global_mean``: the mean training rating;
    - ``item_mean``: the item's mean training rating, shrunk toward the global mean by
      ``item_mean_shrinkage`` pseudo-ratings (the honest target-only baseline, the default).

    NOTE: with ``cdr_feedback: implicit`` the ``item_mean`` fallback is the item's popularity in
    the target training data (every stored interaction is a positive, so its mean says nothing).
    NOTE: the source domain is loaded (same split as the other models) but never used.
    """

    phases = (Phase.TARGET_PRETRAIN,)

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # load parameters
        self.cold_user_fallback = config["cold_user_fallback"]
        if self.cold_user_fallback not in COLD_USER_FALLBACKS:
            raise ConfigError(
                f"cold_user_fallback={self.cold_user_fallback!r} must be one of "
                f"{', '.join(COLD_USER_FALLBACKS)}."
            )
        shrinkage = float(config["item_mean_shrinkage"])

        # statistics of the target training interactions
        users = dataset.inter_feat[self.USER_ID]
        items = dataset.inter_feat[self.ITEM_ID]
        labels = torch.ones(len(items)) if self.implicit else dataset.inter_feat[self.LABEL].float()
        global_mean = labels.mean()
        total = torch.zeros(self.n_items).index_add_(0, items, labels)
        count = torch.zeros(self.n_items).index_add_(0, items, torch.ones_like(labels))
        item_mean = (total + shrinkage * global_mean) / (count + shrinkage).clamp(min=1e-12)
        if self.implicit:  # every training row is a positive: rank cold users by popularity
            item_mean = count
        if self.cold_user_fallback == "global_mean":
            item_mean = torch.full_like(item_mean, float(global_mean))
        self.register_buffer("fallback_score", item_mean, persistent=False)
        warm = torch.zeros(self.n_users, dtype=torch.bool)
        warm[users] = True
        self.register_buffer("warm_user", warm, persistent=False)

    def predict(self, interaction):
        score = super().predict(interaction)
        if self.cold_user_fallback == "embedding" or self.phase != Phase.TARGET_PRETRAIN:
            return score
        warm = self.warm_user[interaction[self.USER_ID]]
        return torch.where(warm, score, self.fallback_score[interaction[self.ITEM_ID]])

    def full_sort_predict(self, interaction):
        score = super().full_sort_predict(interaction).view(-1, self.n_items)  # [U, N]
        if self.cold_user_fallback != "embedding":
            warm = self.warm_user[interaction[self.USER_ID]].unsqueeze(1)  # [U, 1]
            score = torch.where(warm, score, self.fallback_score.unsqueeze(0))
        return score.reshape(-1)
