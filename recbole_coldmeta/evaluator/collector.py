"""RecBole's Collector, also collecting each evaluated row's user (for per-user value metrics)."""

from recbole.evaluator.collector import Collector


class ColdCollector(Collector):
    """Collects ``data.user`` (the user id of each evaluated row) when a metric needs it."""

    def eval_batch_collect(self, scores_tensor, interaction, positive_u, positive_i):
        super().eval_batch_collect(scores_tensor, interaction, positive_u, positive_i)
        if self.register.need("data.user"):
            users = interaction[self.config["USER_ID_FIELD"]]
            self.data_struct.update_tensor("data.user", users.to(self.device))

    def get_data_struct(self):
        struct = super().get_data_struct()
        if "data.user" in self.data_struct:
            del self.data_struct["data.user"]  # per-evaluation, like RecBole's rec.* and data.label
        return struct
