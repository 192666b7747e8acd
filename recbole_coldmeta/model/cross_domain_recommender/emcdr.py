"""EMCDR: embedding and mapping for cross-domain recommendation.

Reference: Tong Man et al. "Cross-Domain Recommendation: An Embedding and Mapping Approach." in
IJCAI 2017 (doi:10.24963/ijcai.2017/343).
"""

from recbole_coldmeta.model.abstract_recommender import CrossDomainRecommender
from recbole_coldmeta.model.layers import mapping_function


class EMCDR(CrossDomainRecommender):
    """MF in each domain, then a mapping ``f`` with ``f(u_s) ~ u_t`` learned on overlap users.

    A cold user's target embedding is ``f(u_s)``.

    NOTE: ``mapping: mlp`` (the default) is the paper's MLP (``k -> 2k -> k``, tanh); ``linear``
    is the bias-free ``k x k`` map of PTUPCDR's re-implementation.
    NOTE: the paper trains the mapping on the most active overlap users only; like PTUPCDR's code
    we use every training overlap user (the active-user cut-off would need its own tuning).
    NOTE: the bridge phase reads target interactions of training overlap users; the mapping loss
    is taken once per distinct user of a batch, not once per interaction.
    NOTE: the paper trains with plain SGD; we use RecBole's learner (Adam by default).
    """

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # define layers
        self.mapping = mapping_function(self.embedding_size, config["mapping"])

    def transfer(self, target_users):
        return self.mapping(self.source_user_embedding(target_users))

    def bridge_loss(self, interaction):
        return self.mapping_loss(interaction[self.USER_ID])
