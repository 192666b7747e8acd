"""CCML: cross-task collaborative meta-learning for cold-start recommendation.

Reference:
    Yantong Du, Rui Chen, Qiaoyu Tan, Qilong Han, Shenjie Wang, Xiangyu Zhao. "Cross-Task
    Collaborative Meta-Learning for Cold-Start Recommendations." in IEEE TKDE 37(12):7016-7029,
    2025. Authors' code: https://github.com/YantongDU/CCML (read, not copied; it needs an
    unpublished RecBole patch to run).
"""

import torch
import torch.nn.functional as F

from recbole_coldmeta.data.dataset.cold_start_dataset import Role
from recbole_coldmeta.meta import adapt, batched_call, pad_groups, task_params
from recbole_coldmeta.model.cold_start_recommender.melu import MeLU
from recbole_coldmeta.utils import ConfigError

CANDIDATE_POOLS = ("profile", "knn_features", "co_interaction", "random")
TASK_SAMPLINGS = ("collaborative", "similar_only", "random")


def cosine_rank(primary, candidates):
    """Cosine similarity of each primary task's vector to each of its candidates.

    Args:
        primary: ``[T, G]``.
        candidates: ``[T, P, G]``.

    Returns:
        ``[T, P]`` cosine similarities.
    """
    return F.cosine_similarity(primary.unsqueeze(1), candidates, dim=-1)


def prototype_scores(primary, candidates):
    r"""Rating-prototype agreement ``ω = Σ_{i<j} cos(p_i, q_j)·(j − i)``.

    ``p_i`` is the primary task's prototype of rating level ``i`` (the mean representation of its
    support items rated ``i``), ``q_j`` the candidate's; a pair with a missing (all-zero)
    prototype contributes 0.

    Args:
        primary: ``[T, R, D]`` prototypes of the primary tasks (``R`` rating levels, ascending).
        candidates: ``[T, K, R, D]`` prototypes of each primary's ``K`` candidates.

    Returns:
        ``[T, K]`` scores.
    """
    levels = primary.shape[1]
    p = F.normalize(primary, dim=-1).unsqueeze(1).unsqueeze(3)  # [T, 1, R, 1, D]
    q = F.normalize(candidates, dim=-1).unsqueeze(2)  # [T, K, 1, R, D]
    cosine = (p * q).sum(dim=-1)  # [T, K, R(i), R(j)]
    steps = torch.arange(levels, device=primary.device)
    weight = (steps.view(1, -1) - steps.view(-1, 1)).clamp(min=0).to(primary.dtype)  # (j-i)+
    return (cosine * weight).sum(dim=(-1, -2))


def info_nce(anchor, positives, negatives, temperature):
    """InfoNCE pulling ``anchor`` towards each positive and away from the negatives.

    Args:
        anchor: ``[T, D]``.
        positives: ``[T, B, D]``.
        negatives: ``[T, N, D]``.
        temperature: cosine similarities are divided by it.

    Returns:
        ``[T]``: mean over the positives of ``-log(exp(s+) / (exp(s+) + Σ exp(s-)))``.
    """
    anchor = F.normalize(anchor, dim=-1).unsqueeze(1)  # [T, 1, D]
    positive = (anchor * F.normalize(positives, dim=-1)).sum(-1) / temperature  # [T, B]
    negative = (anchor * F.normalize(negatives, dim=-1)).sum(-1) / temperature  # [T, N]
    negative = negative.unsqueeze(1).expand(-1, positive.shape[1], -1)  # [T, B, N]
    logits = torch.cat([positive.unsqueeze(-1), negative], dim=-1)  # [T, B, 1 + N]
    return -(positive - torch.logsumexp(logits, dim=-1)).mean(dim=1)


class CCML(MeLU):
    r"""CCML on MeLU's network: collaborative task sampling and a cross-task inner loss.

    For every primary task (a user and their support set), in training and at evaluation:

    1. **Candidate pool**: ``pool_size`` meta-train tasks chosen by ``candidate_pool``: users
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
      users are ever candidates, so no other test user's data is used.
    - The prototype score keeps the specified orientation (primary level ``i`` vs candidate level
      ``j > i``, weighted ``j − i``) and pairs each candidate with its own prototypes (the
      authors' code pairs re-ranked tasks with another task's item embeddings).
    - Collaborative embedding refinement (LightGCN over an attribute graph) is not implemented
      yet; there is no config key for it.
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
        self._check_parameters(config)

        # meta-train tasks: every candidate's rows, features and caches
        self.seed = int(config["seed"])
        self._register_tasks(dataset)
        profile = config["profile_fields"] or self.user_embedder.fields
        if self.candidate_pool == "profile" and not profile:
            raise ConfigError(
                "candidate_pool=profile needs user profile fields, and the dataset has none. "
                "Load user features (load_col['user']) or choose candidate_pool: random."
            )
        self.profile_fields = [f for f in profile if f in self.user_embedder.fields]
        grad_size = sum(
            p.numel() for n, p in self.decision.named_parameters() if n in self.adapted_names
        )
        generator = torch.Generator().manual_seed(self.seed)
        dim = config["grad_projection_dim"]
        projection = torch.randn(grad_size, dim, generator=generator) / dim**0.5 if dim else None
        self.register_buffer("grad_projection", projection, persistent=False)
        self.sample_generator = torch.Generator().manual_seed(self.seed + 3)
        self._cache = None
        self._task_item_sets = None

    def _check_parameters(self, config):
        if self.candidate_pool not in CANDIDATE_POOLS:
            raise ConfigError(f"candidate_pool must be one of {', '.join(CANDIDATE_POOLS)}.")
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
        if min(self.n_beneficial, self.aux_support_size) < 1 or self.temperature <= 0:
            raise ConfigError("n_beneficial and aux_support_size must be >= 1, temperature > 0.")

    def _register_tasks(self, dataset):
        roles = dataset.cold_roles
        rows = torch.nonzero(roles == Role.META_TRAIN).squeeze(1)
        users = dataset.inter_feat[self.USER_ID][rows]
        task_users, group = torch.unique(users, return_inverse=True)
        index, mask = pad_groups(group, len(task_users))  # [N, L]
        chosen = rows[index]
        self.register_buffer("task_user", task_users, persistent=False)
        self.register_buffer(
            "task_item",
            torch.where(mask, dataset.inter_feat[self.ITEM_ID][chosen], 0),
            persistent=False,
        )
        self.register_buffer(
            "task_label",
            torch.where(mask, dataset.inter_feat[self.LABEL][chosen].float(), 0.0),
            persistent=False,
        )
        self.register_buffer("task_mask", mask, persistent=False)
        task_of_user = torch.full((self.n_users,), -1, dtype=torch.long)
        task_of_user[task_users] = torch.arange(len(task_users))
        self.register_buffer("task_of_user", task_of_user, persistent=False)
        levels = torch.unique(dataset.inter_feat[self.LABEL].float())
        self.register_buffer("rating_levels", levels, persistent=False)
        needed = self.n_similar + self.n_negative
        if len(task_users) - 1 < needed:
            raise ConfigError(
                f"CCML needs at least n_similar + n_negative + 1 = {needed + 1} meta-train tasks; "
                f"this split has {len(task_users)}. Lower n_similar / n_negative."
            )
        if len(task_users) - 1 < self.pool_size:
            self.logger.warning(
                f"pool_size={self.pool_size} exceeds the {len(task_users) - 1} other meta-train "
                f"tasks: every task is a candidate."
            )
            self.pool_size = len(task_users) - 1
        self.register_buffer(
            "aux_order",
            torch.argsort(
                torch.rand(mask.shape, generator=torch.Generator().manual_seed(self.seed + 5))
                + (~mask) * 2.0,
                dim=1,
            ),
            persistent=False,
        )

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
            losses = self.task_loss(start, x, labels, mask.float())
            grads = torch.autograd.grad(losses.sum(), [start[n] for n in self.adapted_names])
        flat = torch.cat([g.reshape(len(users), -1) for g in grads], dim=1)  # [T, G]
        return flat @ self.grad_projection if self.grad_projection is not None else flat

    def _prototypes(self, items, labels, mask):
        """Per rating level, the mean item representation of the task's rows: ``[T, R, Di]``."""
        item_vec = self.item_embedder(items).detach()  # [T, S, Di]
        level = (labels.unsqueeze(-1) == self.rating_levels) & mask.unsqueeze(-1)  # [T, S, R]
        level = level.float()
        total = torch.einsum("tsr,tsd->trd", level, item_vec)
        return total / level.sum(dim=1).unsqueeze(-1).clamp(min=1.0)

    def _task_statistics(self):
        """Per meta-train task, cached until the parameters change: projected support-loss
        gradients ``[N, G']``, rating prototypes ``[N, R, Di]`` and representations ``[N, H]``."""
        if self._cache is None:
            grads, prototypes, reps = [], [], []
            chunk = 256
            with torch.no_grad():
                for start in range(0, len(self.task_user), chunk):
                    part = slice(start, start + chunk)
                    args = (self.task_item[part], self.task_label[part], self.task_mask[part])
                    grads.append(self._support_gradients(self.task_user[part], *args))
                    prototypes.append(self._prototypes(*args))
                    reps.append(self._meta_representation(torch.arange(len(self.task_user))[part]))
            self._cache = (torch.cat(grads), torch.cat(prototypes), torch.cat(reps))
        return self._cache

    # ---- collaborative task sampling ----------------------------------------------------------

    def _generator(self, training):
        """The training sampler's generator, or a freshly seeded one so evaluation repeats."""
        return self.sample_generator if training else torch.Generator().manual_seed(self.seed + 4)

    def _pool_scores(self, users, items, mask, generator):
        """How close each meta-train task is to each primary task: ``[T, N]`` (higher = closer)."""
        if self.candidate_pool == "profile":
            scores = torch.zeros(len(users), len(self.task_user), device=users.device)
            for field in self.profile_fields:
                values = getattr(self.user_embedder, f"value_{field}")
                mine, theirs = values[users], values[self.task_user]
                if mine.dim() > 1:  # a token sequence field counts when the sequences are equal
                    scores += (mine.unsqueeze(1) == theirs.unsqueeze(0)).all(dim=-1).float()
                else:
                    scores += (mine.unsqueeze(1) == theirs.unsqueeze(0)).float()
        elif self.candidate_pool == "knn_features":
            mine = F.normalize(self.user_embedder(users).detach(), dim=-1)
            theirs = F.normalize(self.user_embedder(self.task_user).detach(), dim=-1)
            scores = mine @ theirs.T
        elif self.candidate_pool == "co_interaction":
            mine = self._item_sets(items, mask)
            if self._task_item_sets is None:  # depends on the data only: built once
                self._task_item_sets = self._item_sets(self.task_item, self.task_mask)
            theirs = self._task_item_sets
            overlap = mine @ theirs.T
            union = mine.sum(1, keepdim=True) + theirs.sum(1).unsqueeze(0) - overlap
            scores = overlap / union.clamp(min=1.0)
        else:
            scores = torch.zeros(len(users), len(self.task_user), device=users.device)
        noise = torch.rand(scores.shape, generator=generator).to(scores.device)
        scores = scores + 1e-3 * noise  # random tie-break, seeded
        own = self.task_of_user[users]
        scores[own >= 0, own[own >= 0]] = float("-inf")  # a task is never its own candidate
        return scores

    def _item_sets(self, items, mask):
        sets = torch.zeros(len(items), self.n_items, device=items.device)
        return sets.scatter_(1, items, mask.float()).clamp(max=1.0)  # [T, n_items]

    def collaborators(self, users, items, labels, mask, training=False):
        """Beneficial ``[T, n_beneficial]`` and negative ``[T, n_negative]`` meta-train tasks."""
        generator = self._generator(training)
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
        """``aux_support_size`` rows of each task: items, labels, mask, users ``[..., K]``."""
        width = self.task_mask.shape[1]
        size = min(self.aux_support_size, width)
        if training:
            keys = torch.rand(*tasks.shape, width, generator=self.sample_generator).to(tasks.device)
            keys = keys + (~self.task_mask[tasks]) * 2.0  # real rows first
            slots = torch.argsort(keys, dim=-1)[..., :size]
        else:
            slots = self.aux_order[tasks][..., :size]
        items = self.task_item[tasks].gather(-1, slots)
        labels = self.task_label[tasks].gather(-1, slots)
        mask = self.task_mask[tasks].gather(-1, slots)
        users = self.task_user[tasks].unsqueeze(-1).expand_as(items)
        return items, labels, mask, users

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

    def adapt_to(self, users, items, labels, mask, keep_graph):
        collaborate = self.lambda_task > 0 or self.lambda_cl > 0
        if not collaborate or (not keep_graph and not self.collaborate_at_test):
            return super().adapt_to(users, items, labels, mask, keep_graph)
        beneficial, negatives = self.collaborators(users, items, labels, mask, keep_graph)
        T, B = beneficial.shape
        x = self.features(users, items)  # [T, S, D]
        aux_items, aux_labels, aux_mask, aux_users = self._aux_rows(beneficial, keep_graph)
        x_aux = self.features(aux_users.flatten(1), aux_items.flatten(1))  # [T, B * K, D]
        if not keep_graph:
            x, x_aux = x.detach(), x_aux.detach()
        mask, aux_labels, aux_mask = (
            mask.float(),
            aux_labels.flatten(1),
            aux_mask.flatten(1).float(),
        )
        last_layer = f"{len(self.decision) - 1}."
        if self.lambda_cl > 0:
            reps = self._task_statistics()[2]
            positives, negative_reps = reps[beneficial], reps[negatives]  # [T, B, H], [T, N, H]

        def inner_loss(params):
            loss = self.task_loss(params, x, labels, mask)
            if self.lambda_task > 0:
                loss = loss + self.lambda_task * self.task_loss(params, x_aux, aux_labels, aux_mask)
            if self.lambda_cl > 0:
                hidden = {n: p for n, p in params.items() if not n.startswith(last_layer)}
                anchor = self.task_representation(hidden, x, mask)
                contrast = info_nce(anchor, positives, negative_reps, self.temperature)
                loss = loss + self.lambda_cl * contrast
            return loss

        start = task_params(self.decision, self.adapted_names, len(users), keep_graph)
        return adapt(start, inner_loss, self.local_steps, self.local_lr, self.first_order)
