"""GlobalMean: the mean training rating for every user and item (the floor every model must beat).

Reference:
    Yehuda Koren, Robert Bell, Chris Volinsky. "Matrix Factorization Techniques for Recommender
    Systems." in IEEE Computer 2009 (the baseline predictors of Section "Adding biases").
"""

from recbole_coldmeta.model.abstract_recommender import StatisticRecommender


class GlobalMean(StatisticRecommender):
    """Predicts the mean rating of the train split."""

    def score(self, users, items):
        return self.global_mean.expand(*(users + items).shape)
