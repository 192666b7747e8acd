"""CCML: cross-task collaborative meta-learning for cold-start recommendation.

Reference:
    Yantong Du, Rui Chen, Qiaoyu Tan, Qilong Han, Shenjie Wang, Xiangyu Zhao. "Cross-Task
    Collaborative Meta-Learning for Cold-Start Recommendations." in IEEE TKDE 37(12):7016-7029,
    2025. Authors' code: https://github.com/YantongDU/CCML (read, not copied; it needs an
    unpublished RecBole patch to run).
"""

import torch
import torch.nn.functional as F

from recbole_coldmeta.meta import adapt, batched_call, task_gradients, task_params
from recbole_coldmeta.model.cold_start_recommender.melu import MeLU
from recbole_coldmeta.model.task_layers import (
    TaskPool,
    cosine_rank,
    info_nce,
    profile_agreement,
    propagate_task_graphs,
    prototype_scores,
    rating_prototypes,
)
from recbole_coldmeta.utils import ConfigError
from recbole_coldmeta.utils.enums import Role
from recbole_coldmeta.utils.streams import seeded_generator

CANDIDATE_POOLS = ("auto", "profile", "knn_features", "co_interaction", "random")
TASK_SAMPLINGS = ("collaborative", "similar_only", "random")


class CCML(MeLU):
    r"""CCML on MeLU's network: collaborative task sampling and a cross-task inner loss.

    For every primary task (a user and their support set), in training and at evaluation:

    1. **Candidate pool**: ``pool_size`` meta-train tasks chosen by ``candidate_pool`` (``auto``,
       the default: ``profile`` when users have profile fields, else ``co_interaction``): users
       sharing the most profile values (``profile``, over ``profile_fields``), nearest users by
       feature embedding (``knn_features``), by Jaccard overlap of rated items
       (``co_interaction``), or at random (``random``). The primary itself is never a candidate.
    2. **Similar**: candidates ranked by the cosine between their support-loss gradient and the
       primary's (w.r.t. the adapted decision layers at the meta-parameters); the top
       ``n_similar`` are similar, the last ``n_negative`` are negatives.
    3. **Beneficial**: the similar tasks re-ranked by :func:`prototype_scores` on rating
       prototypes of item representations; the top ``n_beneficial`` are kept.
    4. **Inner loss** = primary support MSE + ``lambda_task`` × the mean support MSE of the
       beneficial tasks (same adapted parameters) + ``lambda_cl`` × :func:`info_nce` between the
       primary's task representation and the beneficial (positive) and negative tasks'
       representations; ``local_steps`` steps of the shared inner loop; the outer loss is the
       primary's query MSE. With ``lambda_task = lambda_cl = 0`` CCML is exactly MeLU.

    Ablations by config: ``task_sampling: random`` (random beneficial and negative tasks from
    the pool), ``similar_only`` (no prototype re-ranking), ``lambda_task: 0`` / ``lambda_cl: 0``.

    NOTE: choices the public material (abstract + authors' code) leaves open or gets wrong, and
    what we did:

    - Base learner: MeLU's network (the authors use a VAE-style learner whose encoder never sees
      ratings and samples at test time; we did not judge it worth reproducing).
    - Candidates' gradients and rating prototypes are computed for all meta-train tasks once per
      epoch (and after every checkpoint load), at the meta-parameters, over each task's training
      rows; primaries' gradients are fresh each batch. The authors recompute everything per task
      per step (one autograd call per candidate); one batched pass per epoch is what makes CCML
      affordable. Gradients are compressed by a fixed seeded Gaussian projection to
      ``grad_projection_dim`` dimensions (cosines are preserved approximately, by
      Johnson-Lindenstrauss); 0 keeps them whole.
    - Beneficial tasks' support losses use ``aux_support_size`` of their rows (resampled every
      batch in training, a fixed seeded subset at evaluation) and are averaged, not summed.
    - The task representation for InfoNCE is the mean penultimate activation of the decision
      layers over a task's support rows: the primary's under its adapted parameters (so the term
      shapes adaptation; in the authors' code it is computed on embeddings that the inner step
      does not touch, which makes it inert), the other tasks' under the meta-parameters, on a
      fixed subset of their rows, cached with the gradients and treated as constant targets
      (stop-gradient, as momentum-encoder contrastive methods do): the contrastive gradient
      shapes the primary's adaptation and, through it, the meta-parameters. Cosine similarity
      over ``temperature`` (the authors use a raw dot product over 10).
    - Separate ``lambda_task`` and ``lambda_cl`` (the authors use one weight, 0.1, for both).
    - The same collaborative inner loss is used when cold users adapt at evaluation
      (``collaborate_at_test``), so meta-training and meta-testing adapt alike; only meta-train
      users are ever candidates, so no other test user's data is used. The candidates are the
      meta-train tasks of the split the model was trained on, also when the trained model is
      tested on another state (``also_test_states``): the pool is part of what it learned from.
    - The prototype score keeps the specified orientation (primary level ``i`` vs candidate level
      ``j > i``, weighted ``j − i``) and pairs each candidate with its own prototypes (the
      authors' code pairs re-ranked tasks with another task's item embeddings).
    - Collaborative embedding refinement (``refine_layers`` > 0): one small bipartite graph per
      primary task, the primary user and its beneficial users linked to the items of their rows
      in the inner loss (the primary's support rows, ``aux_support_size`` rows of each
      beneficial task), LightGCN propagation (:func:`propagate_task_graphs`, mean over layers).
      Node vectors are the mean of a side's field embeddings (users and items have different
      fields, so there is no common width otherwise, and LightGCN has no transforms); the
      refined user and item vectors are *appended* to MeLU's row features rather than replacing
      them, so the decision layers can weigh the collaborative signal. A query item outside the
      graph, a task without collaborators and the cached candidate statistics use the node's own
      vector. The authors refine attribute embeddings over a graph of the primary and beneficial
      tasks' support sets in place; their code gives no more detail that we could run.
      On by default (3 layers, as the authors): on ml-100k it lowered validation MAE from
      0.888 to 0.878 (mean of seeds 2020-2022; better in 2 of 3 seeds); ``refine_layers: 0``
      turns it off.
    - Every adaptation starts from the same meta-parameters (the authors' trainer lets one task's
      adaptation leak into the next through shared parameter storage).
    """

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # load parameters
        self.n_similar = config["n_similar"]
        self.n_negative = config["n_negative"]
        self.n_beneficial = config["n_beneficial"]
        self.lambda_task = config["lambda_task"]
        self.lambda_cl = config["lambda_cl"]
        self.temperature = config["temperature"]
        self.candidate_pool = config["candidate_pool"]
        self.pool_size = config["pool_size"]
        self.task_sampling = config["task_sampling"]
        self.aux_support_size = config["aux_support_size"]
        self.collaborate_at_test = config["collaborate_at_test"]
        self.refine_layers = config["refine_layers"]
        self._check_parameters(config)

        # meta-train tasks: every candidate's rows, features and caches
        self.seed = int(config["seed"])
        self._register_tasks(dataset)
        profile = config["profile_fields"] or self.user_embedder.fields
        if self.candidate_pool == "auto":  # what the data has: profiles, else rated items
            self.candidate_pool = "profile" if profile else "co_interaction"
            self.logger.info(f"CCML: candidate_pool=auto is {self.candidate_pool}")
        if self.candidate_pool == "profile" and not profile:
            raise ConfigError(
                "candidate_pool=profile needs user profile fields, and the dataset has none. "
                "Load user features (load_col['user']) or choose candidate_pool: auto."
            )
        self.profile_fields = [f for f in profile if f in self.user_embedder.fields]
        own = dict(self.decision.named_parameters())
        grad_size = sum(own[n].numel() for n in self.adapted_names)
        dim = config["grad_projection_dim"]
        generator = seeded_generator(self.seed, "grad_projection")
        projection = torch.randn(grad_size, dim, generator=generator) / dim**0.5 if dim else None
        self.register_buffer("grad_projection", projection, persistent=False)
        self.sample_generator = seeded_generator(self.seed, "collaborators")
        self._cache = None

    def _check_parameters(self, config):
        if self.candidate_pool not in CANDIDATE_POOLS:
            raise ConfigError(f"candidate_pool must be one of {', '.join(CANDIDATE_POOLS)}.")
        if self.implicit:
            raise ConfigError(
                "CCML learns from ratings (rating prototypes, MSE inner losses); "
                "meta_feedback=implicit is MeLU's. Set meta_feedback: explicit."
            )
        if self.task_sampling not in TASK_SAMPLINGS:
            raise ConfigError(f"task_sampling must be one of {', '.join(TASK_SAMPLINGS)}.")
        if self.n_beneficial > self.n_similar:
            raise ConfigError(
                f"n_beneficial={self.n_beneficial} > n_similar={self.n_similar}: the beneficial "
                f"tasks are chosen among the similar ones. Lower n_beneficial."
            )
        if self.pool_size < self.n_similar + self.n_negative:
            raise ConfigError(
                f"pool_size={self.pool_size} is smaller than n_similar + n_negative = "
                f"{self.n_similar + self.n_negative}: similar and negative tasks would overlap. "
                f"Raise pool_size or lower n_similar / n_negative."
            )
        if not isinstance(self.refine_layers, int) or self.refine_layers < 0:
            raise ConfigError(
                f"refine_layers={self.refine_layers!r} must be an integer >= 0 (0: no refinement)."
            )
        if self.refine_layers and not (
            self.user_embedder.output_size or self.item_embedder.output_size
        ):
            raise ConfigError(
                "refine_layers > 0 propagates user and item feature embeddings over a graph, and "
                "this model embeds no user and no item feature. Load features (load_col), set "
                "use_item_id: True, or set refine_layers: 0."
            )
        if min(self.n_beneficial, self.aux_support_size) < 1 or self.temperature <= 0:
            raise ConfigError("n_beneficial and aux_support_size must be >= 1, temperature > 0.")

    def _register_tasks(self, dataset):
        """The candidate pool: every meta-train task of the train split (the data side's index
        of rows by user). It is what the model was meta-trained on, so it stays with the model
        whatever split the model then evaluates."""
        inter = dataset.inter_feat
        self.pool = TaskPool(
            dataset.rows_by_user(Role.META_TRAIN),
            inter[self.ITEM_ID],
            inter[self.LABEL],
            self.n_users,
            seeded_generator(self.seed, "aux_order"),
        )
        levels = torch.unique(inter[self.LABEL].float())
        self.register_buffer("rating_levels", levels, persistent=False)
        needed = self.n_similar + self.n_negative
        if len(self.pool) - 1 < needed:
            raise ConfigError(
                f"CCML needs at least n_similar + n_negative + 1 = {needed + 1} meta-train tasks; "
                f"this split has {len(self.pool)}. Lower n_similar / n_negative."
            )
        if len(self.pool) - 1 < self.pool_size:
            self.logger.warning(
                f"pool_size={self.pool_size} exceeds the {len(self.pool) - 1} other meta-train "
                f"tasks: every task is a candidate."
            )
            self.pool_size = len(self.pool) - 1

    # ---- caches of candidate statistics -------------------------------------------------------

    def on_epoch_start(self, epoch):
        self._cache = None

    def load_state_dict(self, state_dict, strict=True, assign=False):
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self._cache = None
        return result

    def _support_gradients(self, users, items, labels, mask):
        """Support-loss gradient of each task at the meta-parameters: ``[T, G']`` (detached)."""
        with torch.enable_grad():
            start = task_params(self.decision, self.adapted_names, len(users), keep_graph=False)
            x = self.features(users, items).detach()
            base = self.prior_bases((items, labels, mask), items)[0]
            grads = task_gradients(self.task_loss(start, x, labels, mask.float(), base), start)
        flat = torch.cat([grads[n].reshape(len(users), -1) for n in self.adapted_names], dim=1)
        return flat @ self.grad_projection if self.grad_projection is not None else flat

    def _prototypes(self, items, labels, mask):
        item_vec = self.item_embedder(items).detach()  # [T, S, Di]
        return rating_prototypes(item_vec, labels, mask, self.rating_levels)

    def _task_statistics(self):
        """Per meta-train task, cached until the parameters change: projected support-loss
        gradients ``[N, G']``, rating prototypes ``[N, R, Di]`` and representations ``[N, H]``."""
        if self._cache is None:
            grads, prototypes, reps = [], [], []
            chunk = 256
            with torch.no_grad():
                for start in range(0, len(self.pool.user), chunk):
                    part = slice(start, start + chunk)
                    args = (self.pool.item[part], self.pool.label[part], self.pool.mask[part])
                    grads.append(self._support_gradients(self.pool.user[part], *args))
                    prototypes.append(self._prototypes(*args))
                    reps.append(self._meta_representation(torch.arange(len(self.pool.user))[part]))
            self._cache = (torch.cat(grads), torch.cat(prototypes), torch.cat(reps))
        return self._cache

    # ---- collaborative task sampling ----------------------------------------------------------

    def _pool_scores(self, users, items, mask, generator):
        """How close each meta-train task is to each primary task: ``[T, N]`` (higher = closer)."""
        pool_users = self.pool.user
        if self.candidate_pool == "profile" and self.profile_fields:
            values = [getattr(self.user_embedder, f"value_{f}") for f in self.profile_fields]
            scores = profile_agreement([v[users] for v in values], [v[pool_users] for v in values])
        elif self.candidate_pool == "knn_features":
            mine = F.normalize(self.user_embedder(users).detach(), dim=-1)
            theirs = F.normalize(self.user_embedder(pool_users).detach(), dim=-1)
            scores = mine @ theirs.T
        elif self.candidate_pool == "co_interaction":
            scores = self.pool.jaccard(items, mask, self.n_items)
        else:
            scores = torch.zeros(len(users), len(pool_users), device=users.device)
        noise = torch.rand(scores.shape, generator=generator).to(scores.device)
        scores = scores + 1e-3 * noise  # random tie-break, seeded
        return self.pool.exclude_own(scores, users)  # a task is never its own candidate

    def collaborators(self, users, items, labels, mask, training=False):
        """Beneficial ``[T, n_beneficial]`` and negative ``[T, n_negative]`` meta-train tasks."""
        # the training sampler's generator, or a freshly seeded one so evaluation repeats
        generator = (
            self.sample_generator if training else seeded_generator(self.seed, "collaborators_eval")
        )
        scores = self._pool_scores(users, items, mask, generator)
        pool = torch.topk(scores, self.pool_size, dim=1).indices
        if self.task_sampling == "random":
            shuffled = torch.argsort(torch.rand(pool.shape, generator=generator), dim=1)
            pool = pool.gather(1, shuffled.to(pool.device))
            return pool[:, : self.n_beneficial], pool[:, -self.n_negative :]
        task_grads, task_prototypes, _ = self._task_statistics()
        similarity = cosine_rank(
            self._support_gradients(users, items, labels, mask), task_grads[pool]
        )
        ranked = pool.gather(1, torch.argsort(similarity, dim=1, descending=True))  # [T, P]
        similar, negatives = ranked[:, : self.n_similar], ranked[:, -self.n_negative :]
        if self.task_sampling == "similar_only":
            return similar[:, : self.n_beneficial], negatives
        scores = prototype_scores(self._prototypes(items, labels, mask), task_prototypes[similar])
        order = torch.argsort(scores, dim=1, descending=True)[:, : self.n_beneficial]
        return similar.gather(1, order), negatives

    # ---- cross-task inner loss ----------------------------------------------------------------

    def _aux_rows(self, tasks, training):
        """``aux_support_size`` rows of each task: items, labels, mask, users ``[..., K]``
        (resampled in training, a fixed seeded subset at evaluation)."""
        generator = self.sample_generator if training else None
        return self.pool.rows(tasks, self.aux_support_size, generator)

    def task_representation(self, params, x, mask):
        """Mean penultimate decision activation over a task's rows ``x [T, S, D]``: ``[T, H]``."""
        hidden = batched_call(self.decision[:-1], params, x)  # [T, S, H]
        weights = mask.unsqueeze(-1)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)

    def _meta_representation(self, tasks):
        """Representations ``[M, H]`` of meta-train ``tasks [M]`` under the meta-parameters, on
        a fixed seeded subset of ``aux_support_size`` rows of each."""
        items, _, mask, users = self._aux_rows(tasks, training=False)  # [M, K]
        hidden = self.decision[:-1](self.features(users, items))  # [M, K, H]
        weights = mask.float().unsqueeze(-1)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)

    # ---- collaborative embedding refinement ---------------------------------------------------

    def decision_input_size(self, config):
        """MeLU's row width, plus a user and an item graph vector when refinement is on."""
        extra = 2 * config["embedding_size"] if config["refine_layers"] else 0
        return super().decision_input_size(config) + extra

    def _field_mean(self, vectors):
        """``[..., F * D] -> [..., D]``: the mean of a side's field embeddings (a graph node).

        A side without features (e.g. users of a dataset with no user file) starts from zero
        vectors: its nodes then carry only what the graph propagates to them.
        """
        if vectors.shape[-1] == 0:
            return vectors.new_zeros(*vectors.shape[:-1], self.embedding_size)
        return vectors.unflatten(-1, (-1, self.embedding_size)).mean(dim=-2)

    def features(self, users, items):
        """MeLU's rows; with refinement on, plus each side's own node vector (no graph: a task
        without collaborators, the cached candidate statistics)."""
        x = super().features(users, items)
        if not self.refine_layers:
            return x
        user_part = x[..., : self.user_embedder.output_size]
        item_part = x[..., self.user_embedder.output_size :]
        return torch.cat([x, self._field_mean(user_part), self._field_mean(item_part)], dim=-1)

    def _refined_rows(self, users, items, mask, beneficial, aux_items, aux_mask):
        """Rows of the primary tasks and of their beneficial tasks with graph-refined vectors.

        One graph per primary task: the primary user and its ``B`` beneficial users, each linked
        to the items of their rows here (the primary's support rows, ``K`` aux rows of each
        beneficial task); :func:`propagate_task_graphs` over ``refine_layers`` layers.

        Returns:
            tuple: primary rows ``[T, S, D']``, beneficial rows ``[T, B * K, D']``, and the
            featurizer of the primary's query items (an item outside the graph keeps its own
            node vector).
        """
        num_support, num_beneficial = items.shape[1], beneficial.shape[1]
        per_task = aux_items.shape[1] // num_beneficial
        node_users = torch.cat([users.unsqueeze(1), self.pool.user[beneficial]], dim=1)
        user_vec = self.user_embedder(node_users)  # [T, 1 + B, Du]
        row_item = torch.cat([items, aux_items], dim=1)  # [T, R]
        item_vec = self.item_embedder(row_item)  # [T, R, Di]
        row_user = torch.cat(
            [
                torch.zeros(num_support, dtype=torch.long),
                torch.arange(1, num_beneficial + 1).repeat_interleave(per_task),
            ]
        ).to(items.device)
        valid = torch.cat([mask, aux_mask], dim=1).float()
        graph_users, graph_items = propagate_task_graphs(
            self._field_mean(user_vec),
            self._field_mean(item_vec),
            row_user,
            row_item,
            valid,
            self.refine_layers,
        )

        def rows(user_rows, item_rows, graph_user_rows, graph_item_rows):  # MeLU's, then graph
            return torch.cat([user_rows, item_rows, graph_user_rows, graph_item_rows], dim=-1)

        def primary_rows(item_rows, graph_item_rows):  # the primary user (node 0) on every row
            width = item_rows.shape[1]
            user_rows = user_vec[:, :1].expand(-1, width, -1)
            return rows(
                user_rows, item_rows, graph_users[:, :1].expand(-1, width, -1), graph_item_rows
            )

        def featurize(query_items):
            own = self.item_embedder(query_items)  # [T, Q, Di]
            match = (query_items.unsqueeze(2) == row_item.unsqueeze(1)).float()
            match = match * valid.unsqueeze(1)  # [T, Q, R]: graph rows of each query item
            count = match.sum(dim=-1, keepdim=True)
            graph = torch.where(
                count > 0, match @ graph_items / count.clamp(min=1.0), self._field_mean(own)
            )
            return primary_rows(own, graph)

        x = primary_rows(item_vec[:, :num_support], graph_items[:, :num_support])
        x_aux = rows(
            user_vec[:, 1:].repeat_interleave(per_task, dim=1),
            item_vec[:, num_support:],
            graph_users[:, 1:].repeat_interleave(per_task, dim=1),
            graph_items[:, num_support:],
        )
        return x, x_aux, featurize

    def adapt_task(self, users, items, labels, mask, keep_graph, base=None):
        refine = self.refine_layers > 0
        collaborate = self.lambda_task > 0 or self.lambda_cl > 0 or refine
        if not collaborate or (not keep_graph and not self.collaborate_at_test):
            return super().adapt_task(users, items, labels, mask, keep_graph, base)
        beneficial, negatives = self.collaborators(users, items, labels, mask, keep_graph)
        aux = self._aux_rows(beneficial, keep_graph)  # items, labels, mask, users [T, B, K]
        aux_base = self.prior_bases(aux[:3], aux[0])[0]  # each beneficial task's own b_u
        aux_items, aux_labels, aux_mask, aux_users = (part.flatten(1) for part in aux)
        aux_mask = aux_mask.float()
        aux_base = None if aux_base is None else aux_base.flatten(1)
        if refine:
            x, x_aux, featurize = self._refined_rows(
                users, items, mask, beneficial, aux_items, aux_mask
            )
        else:
            x = self.features(users, items)  # [T, S, D]
            x_aux = self.features(aux_users.flatten(1), aux_items)  # [T, B * K, D]

            def featurize(query_items):
                return self.features(users, query_items)

        if not keep_graph:
            x, x_aux = x.detach(), x_aux.detach()
        mask = mask.float()
        last_layer = f"{len(self.decision) - 1}."
        if self.lambda_cl > 0:
            reps = self._task_statistics()[2]
            positives, negative_reps = reps[beneficial], reps[negatives]  # [T, B, H], [T, N, H]

        def inner_loss(params):
            loss = self.task_loss(params, x, labels, mask, base)
            if self.lambda_task > 0:
                aux_loss = self.task_loss(params, x_aux, aux_labels, aux_mask, aux_base)
                loss = loss + self.lambda_task * aux_loss
            if self.lambda_cl > 0:
                hidden = {n: p for n, p in params.items() if not n.startswith(last_layer)}
                anchor = self.task_representation(hidden, x, mask)
                contrast = info_nce(anchor, positives, negative_reps, self.temperature)
                loss = loss + self.lambda_cl * contrast
            return loss

        start = task_params(self.decision, self.adapted_names, len(users), keep_graph)
        adapted = adapt(start, inner_loss, self.local_steps, self.local_lr, self.first_order)
        if keep_graph:
            return adapted, featurize
        return adapted, lambda query_items: featurize(query_items).detach()
