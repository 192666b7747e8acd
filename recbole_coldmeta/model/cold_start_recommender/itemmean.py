"""ItemMean: each item's mean training rating, the global mean for items without ratings.

Reference:
    Yehuda Koren, Robert Bell, Chris Volinsky. "Matrix Factorization Techniques for Recommender
    Systems." in IEEE Computer 2009 (the baseline predictors of Section "Adding biases").
"""

import torch

from recbole_coldmeta.model.abstract_recommender import StatisticRecommender


class ItemMean(StatisticRecommender):
    """Predicts the item's mean rating in the train split (global mean for unseen items)."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        mean, count = self.grouped_mean(self.train_item, self.train_label, self.n_items)
        self.register_buffer("item_mean", torch.where(count > 0, mean, self.global_mean))

    def score(self, users, items):
        return self.item_mean[items].expand(*(users + items).shape)
