"""TaNP: task-adaptive neural process for user cold-start recommendation.

Reference:
    Xixun Lin, Jia Wu, Chuan Zhou, Shirui Pan, Yanan Cao, Bin Wang. "Task-adaptive Neural
    Process for User Cold-Start Recommendation." in WWW 2021, pp. 1306-1316.
    https://doi.org/10.1145/3442381.3449908 (arXiv:2103.06137) — authors' code:
    https://github.com/IIEdm/TaNP (read, not copied).
"""

from logging import getLogger

import torch
import torch.nn.functional as F
from torch import nn

from recbole_coldmeta.meta import pad_groups
from recbole_coldmeta.model.abstract_recommender import (
    ColdStartRecommender,
    batch_support,
    support_of,
)
from recbole_coldmeta.model.layers import FeatureEmbedder, init_weights, mlp, unseen_id_settings
from recbole_coldmeta.model.task_feedback import TaskFeedbackMixin
from recbole_coldmeta.utils import ConfigError
from recbole_coldmeta.utils.streams import seeded_generator

MODULATIONS = ("film", "gating")


def masked_mean(values, mask):
    """Mean of ``values [T, R, D]`` over each task's real rows ``mask [T, R]``: ``[T, D]``
    (zeros for a task without rows)."""
    weight = mask.unsqueeze(-1).to(values.dtype)  # [T, R, 1]
    return (values * weight).sum(dim=1) / weight.sum(dim=1).clamp(min=1.0)


def gaussian_kl(mean_q, log_var_q, mean_p, log_var_p):
    """``KL(N(mean_q, exp(log_var_q)) || N(mean_p, exp(log_var_p)))`` of diagonal Gaussians,
    summed over the last dimension: ``[T, D] -> [T]``."""
    ratio = torch.exp(log_var_q - log_var_p) + (mean_q - mean_p) ** 2 / torch.exp(log_var_p)
    return 0.5 * (ratio - 1.0 + log_var_p - log_var_q).sum(dim=-1)


class TaskMemory(nn.Module):
    r"""The customisation module: ``K`` learned cluster centres ``M [K, Dt]`` of task embeddings.

    A task embedding ``r`` is soft-assigned to the centres by a Student-t kernel
    ``c_k ∝ (1 + ||r - m_k|| / τ)^(-(τ + 1) / 2)`` and becomes ``r + Σ_k c_k m_k``.

    Shapes: ``forward(r [T, Dt]) -> (c [T, K], task [T, Dt])``.
    """

    def __init__(self, n_clusters, size, temperature):
        super().__init__()
        self.temperature = float(temperature)
        self.centres = nn.Parameter(nn.init.xavier_uniform_(torch.empty(n_clusters, size)))

    def forward(self, task_embedding):
        distance = torch.linalg.vector_norm(
            task_embedding.unsqueeze(1) - self.centres, dim=-1
        )  # [T, 1, Dt] - [K, Dt] -> [T, K]
        kernel = (distance / self.temperature + 1.0) ** (-(self.temperature + 1.0) / 2.0)
        assignment = kernel / kernel.sum(dim=1, keepdim=True)  # [T, K]
        return assignment, task_embedding + assignment @ self.centres


def clustering_loss(assignment):
    """DEC's self-training loss ``KL(P || C)`` of a batch's assignments ``C [T, K]``, with the
    sharpened target ``p_tk ∝ c_tk^2 / Σ_t c_tk`` held fixed; mean over tasks (a scalar)."""
    target = assignment**2 / assignment.sum(dim=0, keepdim=True)  # [T, K]
    target = (target / target.sum(dim=1, keepdim=True)).detach()
    return F.kl_div(assignment.clamp(min=1e-12).log(), target, reduction="batchmean")


class ModulatedDecoder(nn.Module):
    r"""The decoder ``[x ⊕ z] -> y``: hidden layers modulated by the task embedding.

    Hidden layer ``l``: ``h = relu(dropout(γ_l ⊙ (W_l h + b_l) + β_l))`` with ``γ_l``,
    ``β_l = tanh(task · A_l)`` (``film``); ``gating`` adds ``η_l = tanh(task · E_l)`` and the
    gate ``δ_l = σ(task · G_l)``: ``γ_l ← γ_l ⊙ δ_l + η_l ⊙ (1 - δ_l)``, likewise ``β_l``.
    The modulation maps have no bias, as in the authors' code. Then a linear output.

    Shapes: ``forward(x [T, R, Dx], z [T, Dz], task [T, Dt]) -> [T, R]``.
    """

    def __init__(self, input_size, task_size, hidden_sizes, modulation, dropout):
        super().__init__()
        self.chunks = 2 if modulation == "film" else 4
        sizes = [input_size, *hidden_sizes]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
        self.modulators = nn.ModuleList(
            nn.Linear(task_size, self.chunks * size, bias=False) for size in hidden_sizes
        )
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(sizes[-1], 1)

    def modulation(self, modulator, task):
        """``(γ, β)`` of one layer, each ``[T, 1, H]`` (broadcast over the task's rows)."""
        parts = modulator(task).unsqueeze(1).chunk(self.chunks, dim=-1)  # [T, 1, H] each
        gamma, beta = torch.tanh(parts[0]), torch.tanh(parts[1])
        if self.chunks == 2:
            return gamma, beta
        eta, gate = torch.tanh(parts[2]), torch.sigmoid(parts[3])
        return gamma * gate + eta * (1 - gate), beta * gate + eta * (1 - gate)

    def forward(self, x, z, task):
        hidden = torch.cat([x, z.unsqueeze(1).expand(-1, x.shape[1], -1)], dim=-1)  # [T, R, Dx+Dz]
        for layer, modulator in zip(self.hidden, self.modulators):
            gamma, beta = self.modulation(modulator, task)
            hidden = F.relu(self.dropout(gamma * layer(hidden) + beta))
        return self.output(hidden).squeeze(-1)  # [T, R, 1] -> [T, R]


class TaNP(TaskFeedbackMixin, ColdStartRecommender):
    r"""TaNP: a neural process over users; each user's support rows condition the decoder.

    Each user is a task. A row is ``x = [item features ⊕ user features]`` (feature embeddings,
    each side through ``Linear -> ReLU`` to ``feature_size``) with its label ``y``. From a set
    of rows (the *context*) two encoders read ``(x ⊕ y)``, averaged over the rows:

    - the **latent path** gives a Gaussian ``N(μ, σ²)`` over the task variable ``z``;
    - the **deterministic path** gives the task embedding ``r``, which the customisation module
      (:class:`TaskMemory`, the paper's task-identity clusters) turns into ``r + Σ_k c_k m_k``
      and which modulates the decoder's hidden layers (:class:`ModulatedDecoder`, ``film`` or
      ``gating``).

    The decoder scores ``x ⊕ z``; with the dot head (``dot_head``) the score also gets the
    bilinear term ``⟨x, W r'⟩`` of the row and the customised task embedding ``r'``. Training
    (all tasks of a batch at once, no inner loop): the context is the task's support rows and
    the target its support and query rows; ``z`` is drawn from the posterior (the latent path on
    the target), the loss is the reconstruction of the target rows (MSE; BCE for implicit) plus
    ``KL(posterior || prior)`` with the prior the latent path on the context, averaged over
    tasks, plus ``lambda_cluster`` × the clustering loss of the batch's assignments
    (:func:`clustering_loss`). At evaluation, ``predict`` and ``full_sort_predict`` encode each
    cold user's support rows from the evaluation batch (``support_*`` fields) and score with the
    prior mean of ``z``.

    NOTE: deviations from the paper and the authors' code, each on purpose:

    - An item id that no training batch carried is scored with ``unseen_ids``' representation
      (the mean of the trained id rows by default, :class:`~recbole_coldmeta.model.layers.
      TrainedIdEmbedding`), never with its random initial row; the authors' model embeds
      features only.

    - At evaluation ``z`` is the prior's mean, not a draw (the authors' code draws one), so a
      score is deterministic and evaluation repeats exactly. In training ``z`` is drawn with a
      seeded generator (stream ``tanp_latent``).
    - Context and target are our task cut: context = the support rows, target = support and
      query rows (the task loader redraws the cut every epoch). The authors' code redraws a
      context of random size (>= ``context_min``) and a target of random extra size from the
      union of support and query for every task and step.
    - The clustering target distribution is held fixed (detached), as in DEC, which the paper
      follows; the authors' code back-propagates through it too. The kernel uses the
      unsquared distance ``||r - m_k||``, as the authors' code does (DEC's squares it).
    - Explicit ratings: the prediction is the training mean plus the decoder's output (as our
      MeLU: the network learns the residual); the authors predict the rating directly.
    - Features: each field has an embedding table (the id too, ``use_item_id``) concatenated,
      then ``Linear -> ReLU`` to ``feature_size``: the authors' two-layer tower over the
      concatenated one-hot vector, whose first layer is a sum of field embeddings. With no user
      field (ids-only data) the row is the item part alone; no user id is embedded (a cold
      user's id embedding would be untrained).
    - ``latent_size`` is the width of the latent encoder's output, of the hidden layer of the
      ``(μ, log σ²)`` head and of ``z`` (the authors' ``z1_dim``, ``z2_dim``, ``z_dim``, all 32
      in their ``train.sh``).
    - Defaults (``properties/model/TaNP.yaml``) are the authors' ``train.sh`` sizes, FiLM (their
      code's default decoder), ``lambda_cluster`` 1.0 and 10 clusters, with MeLU's learning rate
      1e-3 instead of their 1e-4 and early stopping on validation MAE (our protocol).
    - ``meta_feedback: implicit`` (the paper's setting): support positives and their sampled
      negatives (the batch's ``support_neg_*``) are the rows, labels 1/0, BCE on logits;
      evaluated by full ranking (``properties/protocol/ranking.yaml``).
    - Linear layers start Xavier-normal with zero biases, embeddings N(0, 0.1²) (as our MeLU);
      the authors' code keeps PyTorch's default initialisation.
    - Implicit feedback, ``auto`` settings (logged; chosen on validation users of ids-only
      Amazon-KG Movies, random support of 3, seed 2020; README, "Implicit, ids only"). At the
      explicit defaults TaNP ranked like Pop there: validation NDCG@10 about 0.05 for 20-30
      epochs at every size and rate tried, and shuffling the cold users' support sets among them
      moved it by 0.0006 (the conditioning did not generalise). ``lambda_cluster: auto`` is 0 for
      implicit feedback (1.0, the authors', for ratings): with the clustering loss on, no
      setting left Pop's level in 24 epochs; without it NDCG@10 rose to 0.056-0.068 (support
      shuffling then costs 0.02-0.03). ``dot_head: auto`` (ours, on for implicit feedback only)
      adds ``⟨x, W r'⟩`` to the decoder's output, ``W`` starting at zero: an MLP over
      ``[x ⊕ z]`` learns a row-task similarity slowly (Rendle et al., RecSys 2020, on NCF against
      the dot product). At learning rate 3e-3 (seed 2020) the rise began about 6 epochs earlier
      with it (0.070 against 0.068 after 30 epochs); at the defaults over 3 seeds (benchmark
      ``amazon-kg-movies-implicit``) TaNP without it stopped early at Pop's level (test NDCG@10
      0.054, Pop 0.048) and with it reached 0.071 (BPR 0.091).
    - A task with no context row encodes to the zero summary (the encoders' output for an empty
      set), so it is scored from the learned prior alone.
    """

    task_batches = True

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # load parameters
        self.implicit = self._check_feedback(config)
        self.modulation = config["modulation"]
        if self.modulation not in MODULATIONS:
            raise ConfigError(
                f"modulation={self.modulation!r} is not one of {', '.join(MODULATIONS)}."
            )
        self.lambda_cluster = self._resolve_auto(config, "lambda_cluster", 0.0, 1.0)
        dot_head = self._resolve_auto(config, "dot_head", True, False)
        latent_size = config["latent_size"]
        feature_size = config["feature_size"]
        dropout = config["dropout_prob"]

        # define layers and loss
        unseen = unseen_id_settings(config)  # one stream for every table of the model
        self.user_embedder = FeatureEmbedder(
            dataset, "user", config["embedding_size"], config["user_fields"], unseen_ids=unseen
        )
        self.item_embedder = FeatureEmbedder(
            dataset,
            "item",
            config["embedding_size"],
            config["item_fields"],
            config["use_item_id"],
            unseen_ids=unseen,
        )
        if self.item_embedder.output_size == 0:
            raise ConfigError(
                "TaNP has no item input: item_fields selects no field and use_item_id is False. "
                "Set use_item_id: True or name item fields."
            )
        self.item_tower = nn.Sequential(
            nn.Linear(self.item_embedder.output_size, feature_size), nn.ReLU()
        )
        self.user_tower = None
        if self.user_embedder.output_size:
            self.user_tower = nn.Sequential(
                nn.Linear(self.user_embedder.output_size, feature_size), nn.ReLU()
            )
        row_size = feature_size * (2 if self.user_tower is not None else 1)
        self.latent_encoder = mlp(row_size + 1, config["latent_hidden_sizes"], latent_size, dropout)
        self.latent_hidden = nn.Linear(latent_size, latent_size)
        self.latent_mean = nn.Linear(latent_size, latent_size)
        self.latent_log_var = nn.Linear(latent_size, latent_size)
        self.task_encoder = mlp(
            row_size + 1, config["task_hidden_sizes"], config["task_size"], dropout
        )
        self.memory = TaskMemory(
            config["n_clusters"], config["task_size"], config["cluster_temperature"]
        )
        self.decoder = ModulatedDecoder(
            row_size + latent_size,
            config["task_size"],
            config["decoder_hidden_sizes"],
            self.modulation,
            dropout,
        )
        self.latent_generator = seeded_generator(config["seed"], "tanp_latent")
        self.dot_head = None  # W [Dt -> Dx] of the bilinear term <x, W r'>
        if dot_head:
            self.dot_head = nn.Linear(config["task_size"], row_size, bias=False)

        # parameters initialization
        self.apply(init_weights)
        if self.dot_head is not None:
            nn.init.zeros_(self.dot_head.weight)  # the term starts at zero

    def _resolve_auto(self, config, key, implicit, explicit):
        """``config[key]``, with ``auto`` resolved by the feedback (logged)."""
        value = config[key]  # its type and range are checked with the config (TaNP.yaml)
        if value == "auto":
            value = implicit if self.implicit else explicit
            getLogger().info(f"TaNP: {key}=auto -> {value}")
        return value

    def features(self, users, items):
        """The row inputs ``x [T, R, Dx]`` of users ``[T]`` and their rows' items ``[T, R]``."""
        x = self.item_tower(self.item_embedder(items))  # [T, R, feature_size]
        if self.user_tower is None:
            return x
        user = self.user_tower(self.user_embedder(users))  # [T, feature_size]
        return torch.cat([x, user.unsqueeze(1).expand(-1, items.shape[1], -1)], dim=-1)

    def latent(self, pairs, mask):
        """The Gaussian of ``z`` from a set of rows ``pairs [T, R, Dx + 1]``: ``(μ, log σ²)``,
        each ``[T, latent_size]``."""
        summary = masked_mean(self.latent_encoder(pairs), mask)  # [T, R, D] -> [T, D]
        hidden = F.relu(self.latent_hidden(summary))
        return self.latent_mean(hidden), self.latent_log_var(hidden)

    def task_identity(self, pairs, mask):
        """The assignments ``[T, K]`` and the customised task embeddings ``[T, Dt]``."""
        return self.memory(masked_mean(self.task_encoder(pairs), mask))

    def score(self, x, z, task):
        """Predicted ratings (explicit) or logits (implicit) ``[T, R]`` of rows ``x [T, R, Dx]``
        given ``z [T, Dz]`` and the customised task embeddings ``task [T, Dt]``."""
        output = self.decoder(x, z, task)
        if self.dot_head is not None:
            output = output + (x * self.dot_head(task).unsqueeze(1)).sum(dim=-1)
        return output if self.implicit else output + self.global_mean

    def pairs(self, users, items, labels):
        """The encoders' input rows ``(x ⊕ y)``: ``[T, R, Dx + 1]``."""
        return torch.cat([self.features(users, items), labels.unsqueeze(-1)], dim=-1)

    def row_errors(self, scores, labels, mask):
        """Each task's mean loss over its real rows: ``[T]``."""
        if self.implicit:
            error = F.binary_cross_entropy_with_logits(scores, labels, reduction="none")
        else:
            error = (scores - labels) ** 2
        mask = mask.float()
        return (error * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)

    def calculate_loss(self, interaction):
        users = interaction[self.USER_ID]
        support = self._batch_rows(interaction, "support")
        query = self._batch_rows(interaction, "query")
        items, labels, mask = (torch.cat(pair, dim=1) for pair in zip(support, query))  # [T, S+Q]
        pairs = self.pairs(users, items, labels)  # target rows; the first S are the context
        context = pairs[:, : support[0].shape[1]], support[2]  # [T, S, Dx + 1], [T, S]
        prior_mean, prior_log_var = self.latent(*context)
        assignment, task = self.task_identity(*context)
        post_mean, post_log_var = self.latent(pairs, mask)
        noise = torch.randn(post_mean.shape, generator=self.latent_generator)
        z = post_mean + torch.exp(0.5 * post_log_var) * noise.to(post_mean.device)
        reconstruction = self.row_errors(self.score(pairs[..., :-1], z, task), labels, mask)
        kl = gaussian_kl(post_mean, post_log_var, prior_mean, prior_log_var)
        return (reconstruction + kl).mean() + self.lambda_cluster * clustering_loss(assignment)

    def conditioned_scores(self, users, support, items):
        """Scores ``[T, R]`` of ``items [T, R]`` given each task's support rows ``[T, S]``
        (``items, labels, mask``, plus the negatives with implicit feedback), with ``z`` at the
        prior mean."""
        context_items, labels, mask = self.task_rows(*support)
        context = self.pairs(users, context_items, labels), mask
        prior_mean, _ = self.latent(*context)
        _, task = self.task_identity(*context)
        return self.score(self.features(users, items), prior_mean, task)

    def predict(self, interaction):
        users, group, *support = support_of(
            type(self).__name__, interaction, self.USER_ID, self._row_fields()
        )
        index, mask = pad_groups(group, len(users))  # [U, Q]
        scores = self.conditioned_scores(users, support, interaction[self.ITEM_ID][index])
        return scores[mask][torch.argsort(index[mask])].detach()

    def full_sort_predict(self, interaction):
        users = interaction[self.USER_ID]  # [U]: a full-sort batch has one row per user
        support = batch_support(type(self).__name__, interaction, self._row_fields())
        items = torch.arange(self.n_items, device=users.device).expand(len(users), -1)  # [U, N]
        return self.conditioned_scores(users, support, items).detach().reshape(-1)  # [U * N]
