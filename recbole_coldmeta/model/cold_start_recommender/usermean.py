"""UserMean: each user's mean rating in the train split (a cold user's support ratings).

Reference:
    Yehuda Koren, Robert Bell, Chris Volinsky. "Matrix Factorization Techniques for Recommender
    Systems." in IEEE Computer 2009 (the baseline predictors of Section "Adding biases").
"""

import torch

from recbole_coldmeta.model.abstract_recommender import StatisticRecommender


class UserMean(StatisticRecommender):
    """Predicts the user's mean training rating — for a cold user, the mean of their support
    ratings — falling back to the global mean for users without any."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        mean, count = self.grouped_mean(self.train_user, self.train_label, self.n_users)
        self.register_buffer("user_mean", torch.where(count > 0, mean, self.global_mean))

    def score(self, users, items):
        return self.user_mean[users].expand(*(users + items).shape)
