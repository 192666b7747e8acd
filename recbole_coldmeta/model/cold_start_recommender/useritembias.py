"""UserItemBias: global mean + shrunk item bias + shrunk user bias, shrinkage chosen on validation.

Reference:
    Yehuda Koren, Robert Bell, Chris Volinsky. "Matrix Factorization Techniques for Recommender
    Systems." in IEEE Computer 2009 (the baseline predictors of Section "Adding biases");
    Yehuda Koren. "Factor in the Neighbors: Scalable and Accurate Collaborative Filtering." in
    TKDD 2010 (the shrunk closed-form estimates used here).
"""

import torch

from recbole_coldmeta.model.abstract_recommender import StatisticRecommender
from recbole_coldmeta.utils import ConfigError


class UserItemBias(StatisticRecommender):
    r"""``r̂ = μ + b_i + b_u`` with shrunk closed-form biases.

    ``b_i = Σ_u (r_ui - μ) / (λ + n_i)`` over the train split, then
    ``b_u = Σ_i (r_ui - μ - b_i) / (λ + n_u)`` — for a cold user, over their support set.

    NOTE: the shrinkage ``λ`` is chosen on validation data: ``StatisticTrainer`` fits the biases
    for each value of ``shrinkage_grid`` in turn, evaluates them on the valid split and keeps the
    best (RecBole's selection rule). One ``λ`` serves both biases.
    """

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.shrinkage_grid = config["shrinkage_grid"]
        if not self.shrinkage_grid or min(self.shrinkage_grid) < 0:
            raise ConfigError("shrinkage_grid must be a non-empty list of non-negative numbers.")
        self.register_buffer("shrinkage", torch.tensor(float(self.shrinkage_grid[0])))
        self.register_buffer("item_bias", torch.zeros(self.n_items))
        self.register_buffer("user_bias", torch.zeros(self.n_users))
        self.fit_setting({"shrinkage": self.shrinkage_grid[0]})

    def candidate_settings(self):
        return [{"shrinkage": value} for value in self.shrinkage_grid]

    def fit_setting(self, setting):
        """Fit both biases with ``setting["shrinkage"]`` (a value of ``shrinkage_grid``)."""
        self.shrinkage.fill_(float(setting["shrinkage"]))
        residual = self.train_label - self.global_mean
        item_bias, _ = self.grouped_mean(self.train_item, residual, self.n_items, self.shrinkage)
        residual = residual - item_bias[self.train_item]
        user_bias, _ = self.grouped_mean(self.train_user, residual, self.n_users, self.shrinkage)
        self.item_bias.copy_(item_bias)
        self.user_bias.copy_(user_bias)

    def score(self, users, items):
        return self.global_mean + self.item_bias[items] + self.user_bias[users]
