"""MAMO: memory-augmented meta-optimisation for cold-start recommendation.

Reference:
    Manqing Dong, Feng Yuan, Lina Yao, Xiwei Xu, Liming Zhu. "MAMO: Memory-Augmented
    Meta-Optimization for Cold-start Recommendation." in KDD 2020, pp. 688-697.
    https://doi.org/10.1145/3394486.3403113 — authors' code:
    https://github.com/dongmanqing/Code-for-MAMO (read, not copied).
"""

from logging import getLogger

import torch
import torch.nn.functional as F
from torch import nn

from recbole_coldmeta.meta import adapt, batched_call, pad_groups, task_gradients, task_params
from recbole_coldmeta.model.abstract_recommender import (
    ColdStartRecommender,
    batch_support,
    support_of,
)
from recbole_coldmeta.model.layers import FeatureEmbedder, init_weights, unseen_id_settings
from recbole_coldmeta.model.task_feedback import TaskFeedbackMixin, TaskPriorMixin
from recbole_coldmeta.utils import ConfigError
from recbole_coldmeta.utils.streams import seeded_generator

#: Key of the task-specific fast weights in a task's parameter dict (not a module parameter).
FAST_WEIGHT = "fast_weight"
#: Standard deviation of the bias memory's initial values (the authors' code).
BIAS_MEMORY_STD = 0.05
LEAKY_SLOPE = 0.1


def memory_write(memory, attention, values, rate):
    r"""The memory after each task ``t = 1..T`` of a batch writes, in order, to every slot ``k``:
    ``M_k <- (1 - rate a_tk) M_k + rate a_tk v_t`` — in closed form, one pass for the batch.

    Shapes: ``memory [K, *V]``, ``attention [T, K]``, ``values [T, *V]`` -> ``[K, *V]``.
    """
    assert len(attention) == len(values) > 0
    keep = 1.0 - rate * attention  # [T, K]
    from_t = keep.flip(0).cumprod(0).flip(0)  # [T, K]: prod over s >= t of keep_s
    after_t = torch.cat([from_t[1:], torch.ones_like(from_t[:1])])  # prod over s > t
    weights = rate * attention * after_t  # [T, K]: task t's share of slot k at the end
    written = from_t[0].unsqueeze(1) * memory.flatten(1) + weights.T @ values.flatten(1)  # [K, V]
    return written.view_as(memory)


class MemoryAttention(nn.Module):
    r"""The attention of profiles over the profile memory's keys: ``a = softmax(W cos(p, M_P) +
    b)``, ``W [K, K]``.

    Shapes: ``forward(profile [T, Dp], keys [K, Dp]) -> [T, K]`` (rows sum to 1).
    """

    def __init__(self, slots):
        super().__init__()
        self.mix = nn.Linear(slots, slots)

    def forward(self, profile, keys):
        similarity = F.cosine_similarity(profile.unsqueeze(1), keys.unsqueeze(0), dim=-1)  # [T, K]
        return torch.softmax(self.mix(similarity), dim=-1)


def tower(input_size, output_size, n_layer):
    """An embedding tower: ``n_layer - 1`` hidden layers of ``input_size // 2``, then the output
    layer, each ``Linear -> LeakyReLU``."""
    layers, size = [], input_size
    for _ in range(n_layer - 1):
        layers += [nn.Linear(size, max(input_size // 2, 1)), nn.LeakyReLU(LEAKY_SLOPE)]
        size = max(input_size // 2, 1)
    return nn.Sequential(*layers, nn.Linear(size, output_size), nn.LeakyReLU(LEAKY_SLOPE))


class PreferenceNetwork(nn.Module):
    r"""One task's recommendation model: the user and item embedding towers, the preference-
    specific transformation ``h = W_f [e_u ⊕ e_i] + b_f`` (its fast weights ``W_f`` given per
    task) and the rating MLP (``n_layer - 1`` halving ``Linear -> LeakyReLU``, a linear output).

    Shapes: ``forward(profile [Dp], items [R, Di], fast_weight [2D, 2D]) -> [R]`` (one task;
    vectorised over tasks by :func:`~recbole_coldmeta.meta.batched_call`).
    """

    def __init__(self, profile_size, item_size, size, n_layer):
        super().__init__()
        self.user_tower = tower(profile_size, size, n_layer)
        self.item_tower = tower(item_size, size, n_layer)
        self.fast_bias = nn.Parameter(torch.zeros(2 * size))
        layers, width = [], 2 * size
        for _ in range(n_layer - 1):
            layers += [nn.Linear(width, max(width // 2, 1)), nn.LeakyReLU(LEAKY_SLOPE)]
            width = max(width // 2, 1)
        self.rating = nn.Sequential(*layers, nn.Linear(width, 1))

    def forward(self, profile, items, fast_weight):
        user = self.user_tower(profile).expand(items.shape[0], -1)  # [D] -> [R, D]
        x = torch.cat([user, self.item_tower(items)], dim=-1)  # [R, 2D]
        return self.rating(F.linear(x, fast_weight, self.fast_bias)).squeeze(-1)  # [R, 1] -> [R]


class MAMO(TaskPriorMixin, TaskFeedbackMixin, ColdStartRecommender):
    r"""MAMO: MAML over users whose starting point is personalised by two memories.

    Each user is a task. The user's *profile* ``p_u`` (the user feature embeddings) attends over
    the ``K`` keys of the profile memory ``M_P`` (:class:`MemoryAttention`): ``a_u [K]``. With it

    - the **feature-specific memory** ``M_B [K, |θ_u|]`` gives the personalised bias
      ``b_u = a_u M_B``, and the user tower starts from ``θ_u = φ_u - τ b_u`` (``bias_scale``);
    - the **task-specific memory** ``M_UI [K, 2D, 2D]`` gives the fast weights of the
      preference-specific transformation, ``W_f = Σ_k a_uk M_UI[k]``.

    From there the whole :class:`PreferenceNetwork` (the user and item towers, ``W_f`` and
    ``b_f``, the rating MLP) takes ``local_steps`` gradient steps of the shared inner loop on the
    user's support rows, all tasks of a batch at once; the meta-parameters (``φ``, the field
    embeddings, the attention) are trained on the query loss after adaptation. After each
    training batch the memories are written (:meth:`write_memories`): ``M_P`` with the profiles,
    ``M_B`` with each task's query-loss gradient of its adapted ``θ_u``, ``M_UI`` with each task's
    adapted ``W_f``. At evaluation, ``predict`` and ``full_sort_predict`` adapt each cold user on
    the support rows of the evaluation batch (``support_*`` fields) and score.

    NOTE: deviations from the paper and the authors' code, each on purpose:

    - Memory writes: each slot moves towards the written value by its attention, ``M_k <-
      (1 - r a_k) M_k + r a_k v`` (``r``: ``profile_memory_rate`` α, ``bias_memory_rate`` β,
      ``task_memory_rate`` γ, the paper's values). The paper and the authors' code shrink every
      slot by ``(1 - r)`` whatever its attention, so the read-out ``Σ a_k M_k`` loses ``r`` of
      itself and regains only ``r Σ a_k²`` of the written value: with the attention spread over
      the slots the fast weights' fixed point is ``Σa²/(1 - Σa²)`` times the change one
      adaptation makes (half of it at uniform attention over 3 slots), not the adapted weights;
      ours converges to what the attended users adapted to. The memories are written by this
      rule, not learned by gradient: they are buffers, saved with the model.
    - Batched writes: the tasks of a batch all read the memories as they were at the batch's
      start (the authors' code reads after the previous user's write); the writes then equal
      the sequential per-user writes in the batch's task order, composed in closed form
      (:func:`memory_write`). Only ``calculate_loss`` in training mode writes: evaluation leaves
      parameters and memories byte-identical. In a data-parallel run each process writes its own
      tasks; rank 0's memories are the ones saved.
    - The attention's ``K × K`` layer is one layer trained by the outer loss (through ``b_u`` and
      ``W_f``); the authors' code builds a new random one at every read.
    - Ids-only data (no user feature): the profile is a summary of the user's support rows,
      ``[mean of the item embeddings ⊕ mean of the item embeddings × (label - c)]`` with ``c``
      the training mean (0.5 with implicit feedback); never the query rows. Logged at init.
    - ``M_UI`` starts Xavier-normal per slot, ``M_P`` standard normal, ``M_B`` N(0, 0.05²), drawn
      from the seeded stream ``mamo_memory``; the authors' ``M_UI`` is standard normal (far too
      large for a 2D × 2D layer). Linear layers start Xavier-normal with zero biases, embeddings
      N(0, 0.1²) (as our MeLU).
    - ``b_u`` biases every parameter of the user tower; the authors' code, weights only.
    - Explicit ratings are regressed (MSE): the prediction is the prior (``prior``: the training
      mean, or MeLU's bias model) plus the network's output; the authors classify 5 rating
      levels with cross-entropy. ``meta_feedback: implicit``: support positives and sampled
      negatives, BCE on logits, full ranking (as MeLU).
    - Local update: ``local_steps`` plain gradient steps of ``local_lr`` on all support rows
      (the authors: Adam, lr 0.01, 3 passes over mini-batches of 5); the field embeddings and
      the attention stay global (the authors' local Adam also moves the field embeddings and
      never resets them). Global update: RecBole's Adam at ``learning_rate`` on the mean query
      loss (the authors: SGD steps of 0.05 on the summed gradients), second order by default;
      ``first_order: True`` is the authors' first-order update; its inner loop diverged to NaN
      within 20 outer steps in our trials on the synthetic data (second order did not), but on
      ml-100k it trains with our Adam (test MAE 0.882 configured as theirs, 2 seeds, README parity
      section); what diverged there was their global SGD step on our loss.
    - Defaults (``properties/model/MAMO.yaml``): the paper's K = 3, α, β, γ, τ and the authors'
      3 inner passes and ρ = 0.01 as ``local_lr`` (as plain steps; on ml-100k seed 2020 after
      10 epochs, valid MAE 0.864 against 0.871 with MeLU's 0.02; adapting moved test MAE from
      0.904 unadapted to 0.881, valid MAE not at all); embedding size 32 (MeLU's; the authors'
      100); MeLU's learning rate and early stopping on validation MAE (our protocol).
    - Features: our FeatureEmbedder (token, token-sequence and float fields, the item id with
      ``use_item_id``; a never-trained id is embedded as ``unseen_ids`` says, never from its
      random row) instead of the authors' ML-1M/BookCrossing loaders.
    """

    task_batches = True

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # load parameters
        self.implicit = self._check_feedback(config)
        self.local_lr = config["local_lr"]
        self.local_steps = config["local_steps"]
        self.first_order = config["first_order"]
        self.bias_scale = config["bias_scale"]
        self.profile_rate = config["profile_memory_rate"]
        self.bias_rate = config["bias_memory_rate"]
        self.task_rate = config["task_memory_rate"]
        size, slots = config["embedding_size"], config["memory_slots"]

        # define layers and loss
        unseen = unseen_id_settings(config)  # one stream for every table of the model
        self.user_embedder = FeatureEmbedder(
            dataset, "user", size, config["user_fields"], unseen_ids=unseen
        )
        self.item_embedder = FeatureEmbedder(
            dataset,
            "item",
            size,
            config["item_fields"],
            config["use_item_id"],
            unseen,
        )
        item_size = self.item_embedder.output_size
        if item_size == 0:
            raise ConfigError(
                "MAMO has no item input: item_fields selects no field and use_item_id is False. "
                "Set use_item_id: True or name item fields."
            )
        profile_size = self.user_embedder.output_size or 2 * item_size
        if not self.user_embedder.output_size:
            getLogger().info(
                "MAMO: the dataset has no user feature field, so each user's memory key and "
                "user-tower input is a summary of their support rows (mean item embedding and "
                "its label-weighted mean), not a profile."
            )
        self.label_centre = 0.5 if self.implicit else float(self.global_mean)
        self.net = PreferenceNetwork(profile_size, item_size, size, config["n_layer"])
        self.attention = MemoryAttention(slots)
        self.adapted_names = [name for name, _ in self.net.named_parameters()]
        self.user_shapes = {
            name: p.shape for name, p in self.net.named_parameters() if name.startswith("user_")
        }
        self.bias_prior = self._build_prior(config, dataset)

        # parameters initialization
        self.apply(init_weights)
        generator = seeded_generator(config["seed"], "mamo_memory")
        bias_size = sum(shape.numel() for shape in self.user_shapes.values())
        fast_std = (2.0 / (4 * size)) ** 0.5  # Xavier normal of a [2D, 2D] layer
        self.register_buffer(
            "profile_memory", torch.randn(slots, profile_size, generator=generator)
        )
        self.register_buffer(
            "bias_memory", BIAS_MEMORY_STD * torch.randn(slots, bias_size, generator=generator)
        )
        self.register_buffer(
            "task_memory", fast_std * torch.randn(slots, 2 * size, 2 * size, generator=generator)
        )

    def profile(self, users, support):
        """Each task's profile ``p_u [T, Dp]``: the user feature embeddings, or (no user field)
        the summary of the support rows ``items, labels, mask [T, S]``."""
        if self.user_embedder.output_size:
            return self.user_embedder(users)
        items, labels, mask = support
        weight = mask.unsqueeze(-1).float()  # [T, S, 1]
        count = weight.sum(dim=1).clamp(min=1.0)  # [T, 1]
        vectors = self.item_embedder(items) * weight  # [T, S, Di]
        centred = (labels - self.label_centre).unsqueeze(-1)  # [T, S, 1]
        return torch.cat([vectors.sum(dim=1) / count, (vectors * centred).sum(dim=1) / count], -1)

    def start_params(self, profile, keep_graph):
        """Each task's starting parameters ``{name: [T, ...]}`` (the network's and
        :data:`FAST_WEIGHT`) from the memories' read-out, and the attention ``[T, K]``."""
        attention = self.attention(profile, self.profile_memory)  # [T, K]
        bias = attention @ self.bias_memory  # [T, |θ_u|]
        fast = torch.einsum("tk,kij->tij", attention, self.task_memory)  # [T, 2D, 2D]
        with torch.enable_grad():
            start = task_params(self.net, self.adapted_names, len(profile), keep_graph)
            if not keep_graph:
                bias, fast = bias.detach(), fast.detach().requires_grad_()
            sizes = [shape.numel() for shape in self.user_shapes.values()]
            for (name, shape), part in zip(self.user_shapes.items(), bias.split(sizes, dim=1)):
                start[name] = start[name] - self.bias_scale * part.view(-1, *shape)
            start[FAST_WEIGHT] = fast
        return start, attention

    def scores(self, params, profile, x, base=None):
        """Predicted ratings (explicit) or logits (implicit) ``[T, R]`` of rows ``x [T, R, Di]``
        under task parameters; ``base [T, R]`` the rows' prior (default: the training mean)."""
        network = {name: p for name, p in params.items() if name != FAST_WEIGHT}
        output = batched_call(self.net, network, profile, x, params[FAST_WEIGHT])
        if self.implicit:
            return output
        return output + (self.global_mean if base is None else base)

    def task_loss(self, params, profile, x, labels, mask, base=None):
        """Each task's mean loss over its real rows (``mask [T, R]`` float): ``[T]``."""
        scores = self.scores(params, profile, x, base)
        if self.implicit:
            error = F.binary_cross_entropy_with_logits(scores, labels, reduction="none")
        else:
            error = (scores - labels) ** 2
        return (error * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)

    def adapt_task(self, users, support, keep_graph, base=None):
        """Adapt every task's network to its support rows ``(items, labels, mask) [T, S]``.

        Args:
            users: ``[T]``.
            support: the tasks' rows, negatives included with implicit feedback.
            keep_graph: ``True`` in meta-training; ``False`` at evaluation (see
                :func:`~recbole_coldmeta.meta.task_params`).
            base: ``[T, S]`` the support rows' prior (:meth:`prior_bases`), or None.

        Returns:
            tuple: adapted parameters ``{name: [T, ...]}``, profiles ``[T, Dp]``, attention
            ``[T, K]``.
        """
        items, labels, mask = support
        profile, x = self.profile(users, support), self.item_embedder(items)
        if not keep_graph:
            profile, x = profile.detach(), x.detach()
        start, attention = self.start_params(profile, keep_graph)
        adapted = adapt(
            start,
            lambda p: self.task_loss(p, profile, x, labels, mask.float(), base),
            self.local_steps,
            self.local_lr,
            self.first_order,
        )
        return adapted, profile, attention

    def write_memories(self, profile, attention, adapted, query_losses):
        """Write the batch to the memories (training only; see the class NOTE): ``M_P`` with the
        profiles ``[T, Dp]``, ``M_B`` with the gradient of each task's query loss ``[T]`` at its
        adapted user tower, ``M_UI`` with the adapted fast weights. The buffers are replaced, not
        changed in place: this step's graph still holds their old values."""
        user_params = {name: adapted[name] for name in self.user_shapes}
        grads = task_gradients(query_losses, user_params, retain_graph=True)
        with torch.no_grad():
            attention = attention.detach()
            gradient = torch.cat([grads[name].flatten(1) for name in self.user_shapes], dim=1)
            self.profile_memory = memory_write(
                self.profile_memory, attention, profile.detach(), self.profile_rate
            )
            self.bias_memory = memory_write(self.bias_memory, attention, gradient, self.bias_rate)
            self.task_memory = memory_write(
                self.task_memory, attention, adapted[FAST_WEIGHT].detach(), self.task_rate
            )

    def calculate_loss(self, interaction):
        users = interaction[self.USER_ID]
        support = self._batch_rows(interaction, "support")
        items, labels, mask = self._batch_rows(interaction, "query")
        support_base, query_base = self.prior_bases(support, items, held_out=(labels, mask))
        adapted, profile, attention = self.adapt_task(users, support, True, support_base)
        x = self.item_embedder(items)  # [T, Q, Di]
        losses = self.task_loss(adapted, profile, x, labels, mask.float(), query_base)
        if self.training:
            self.write_memories(profile, attention, adapted, losses)
        return losses.mean()

    def adapted_scores(self, users, support, items):
        """Scores ``[T, R]`` of ``items [T, R]`` after adapting on each task's support rows
        (``items, labels, mask``, plus the negatives with implicit feedback) ``[T, S]``."""
        support = self.task_rows(*support)
        support_base, base = self.prior_bases(support, items)
        adapted, profile, _ = self.adapt_task(users, support, False, support_base)
        return self.scores(adapted, profile, self.item_embedder(items), base).detach()

    def predict(self, interaction):
        users, group, *support = support_of(
            type(self).__name__, interaction, self.USER_ID, self._row_fields()
        )
        index, mask = pad_groups(group, len(users))  # [U, Q]
        scores = self.adapted_scores(users, support, interaction[self.ITEM_ID][index])
        return scores[mask][torch.argsort(index[mask])]

    def full_sort_predict(self, interaction):
        users = interaction[self.USER_ID]  # [U]: a full-sort batch has one row per user
        support = batch_support(type(self).__name__, interaction, self._row_fields())
        items = torch.arange(self.n_items, device=users.device).expand(len(users), -1)  # [U, N]
        return self.adapted_scores(users, support, items).reshape(-1)  # [U * N]
