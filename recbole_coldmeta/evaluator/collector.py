"""RecBole's Collector, also collecting each evaluated row's user (for per-user value metrics)."""

import torch
from recbole.evaluator.collector import Collector


class ColdCollector(Collector):
    """Collects ``data.user`` (the user id of each evaluated row) when a metric needs it.

    With :attr:`keep_users` set, it collects ``data.user`` for every evaluation and keeps the
    last struct it handed to the evaluator in :attr:`last_struct`, from which
    :func:`~recbole_coldmeta.evaluator.per_user.per_user_metrics` computes each user's metrics.

    ``data.user`` ``[R]`` is the user of each row of ``scores``: of each interaction row in a
    value evaluation (``R = N`` rows), of each ranking list in a ranking one (``R`` lists, one per
    user of a batch; a sequential evaluation ranks one list per query row).

    NOTE: a negative-sampling ranking batch scores ``[lists, items]`` from grouped interaction
    rows (RecBole's ``NegSampleEvalDataLoader`` keeps each user's rows together), so there the
    users of the lists are the interaction's users with consecutive repeats merged.
    """

    def __init__(self, config):
        super().__init__(config)
        self.keep_users = False
        self.last_struct = None

    def eval_batch_collect(self, scores_tensor, interaction, positive_u, positive_i):
        super().eval_batch_collect(scores_tensor, interaction, positive_u, positive_i)
        if self.keep_users or self.register.need("data.user"):
            users = interaction[self.config["USER_ID_FIELD"]]
            if len(scores_tensor) != len(users):  # [lists, items] from grouped rows
                users = torch.unique_consecutive(users)
            assert len(users) == len(scores_tensor), "one user per row of scores"
            self.data_struct.update_tensor("data.user", users.to(self.device))

    def get_data_struct(self):
        struct = super().get_data_struct()
        if "data.user" in self.data_struct:
            del self.data_struct["data.user"]  # per-evaluation, like RecBole's rec.* and data.label
        self.last_struct = struct if self.keep_users else None
        return struct
