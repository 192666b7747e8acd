"""Layers shared by the cold-start models."""

import torch
from recbole.utils import FeatureType
from torch import nn

from recbole_coldmeta.utils import ConfigError
from recbole_coldmeta.utils.streams import seeded_generator

EMBEDDABLE = (FeatureType.TOKEN, FeatureType.TOKEN_SEQ, FeatureType.FLOAT)
UNSEEN_IDS = ("mean", "learned")


def unseen_id_settings(config):
    """``{"unseen": mode, "dropout": p, "generator": g}`` for :class:`TrainedIdEmbedding`, read
    from ``unseen_ids`` / ``unseen_id_dropout`` and checked; ``g`` is the seeded ``unseen_ids``
    stream with ``learned`` (one per model, shared by its tables in the order they draw), else
    None (``mean`` draws nothing)."""
    mode, dropout = config["unseen_ids"], config["unseen_id_dropout"]
    if mode not in UNSEEN_IDS:
        raise ConfigError(f"unseen_ids={mode!r} is not one of {', '.join(UNSEEN_IDS)}.")
    if not isinstance(dropout, int | float) or not 0 <= dropout < 1:
        raise ConfigError(f"unseen_id_dropout={dropout!r} must be a number in [0, 1).")
    if mode == "learned" and dropout == 0:
        raise ConfigError(
            "unseen_ids=learned trains its shared vector by id dropout, and unseen_id_dropout "
            "is 0, so the vector would stay at its initial value. Set unseen_id_dropout > 0 "
            "(e.g. 0.1) or unseen_ids: mean."
        )
    generator = seeded_generator(config["seed"], "unseen_ids") if mode == "learned" else None
    return {"unseen": mode, "dropout": float(dropout), "generator": generator}


class TrainedIdEmbedding(nn.Embedding):
    """An id embedding table that never scores a row no training gradient has reached.

    ``seen [N]`` (a persistent buffer, saved in checkpoints) marks every id whose looked-up row
    received a non-zero gradient in a training-mode forward; evaluation-mode lookups never mark.
    In evaluation mode an unseen id's vector is ``unseen``'s representation:

    - ``mean``: the mean of the seen rows (zeros while none is seen), a deterministic function of
      trained parameters;
    - ``learned``: one shared vector ``unseen_vector [D]`` (initialised to zeros), trained by id
      dropout: in training mode each looked-up id is treated as unseen with probability
      ``dropout`` (drawn from ``generator``), so the vector learns what an id-less row looks like.

    NOTE: "seen" is "received a gradient", not "appears in the train split": the meta-learners'
    train split also holds the cold test users' support rows, which only adapt at evaluation and
    never train the meta-parameters; and an id whose rows are all held out (the pre-training
    early-stopping hold-out) or only support rows under first-order MAML is never trained either.
    NOTE: id dropout applies to every training-mode lookup, also of a table frozen in that phase
    (the cross-domain bridge phase), so the layers downstream learn from the vector that
    evaluation gives an unseen id.
    NOTE: in a data-parallel run each process marks its own batches' ids and rank 0's state is
    the one saved and reloaded, so an id trained on another process only counts as unseen there:
    still a defined representation, never a random one.
    NOTE: with ``padding_idx`` (a feature field's token 0, "no value") that id is the zero
    vector, whatever its row holds (a model's weight init may have drawn it, and nn.Embedding
    never trains it): never replaced, never dropped and not in the mean.

    Shapes: ``forward(ids [*B]) -> [*B, D]``.
    """

    def __init__(
        self, num_embeddings, embedding_size, unseen, dropout, generator, padding_idx=None
    ):
        super().__init__(num_embeddings, embedding_size, padding_idx=padding_idx)
        self.unseen, self.dropout, self.generator = unseen, dropout, generator
        self.register_buffer("seen", torch.zeros(num_embeddings, dtype=torch.bool))
        learned = unseen == "learned"
        self.unseen_vector = nn.Parameter(torch.zeros(embedding_size)) if learned else None

    def _kept(self, ids):
        """``[*B]`` bool: the ids that keep their own row (seen, or the padding token)."""
        kept = self.seen[ids]
        return kept if self.padding_idx is None else kept | (ids == self.padding_idx)

    def _mark_seen(self, ids, vectors):
        """Mark ``ids`` whose looked-up ``vectors`` receive a non-zero gradient (a hook on this
        forward's output, not on ``weight``: it survives copies and ``assign`` loads)."""

        def mark(grad):
            self.seen[ids[grad.detach().ne(0).any(dim=-1)]] = True

        vectors.register_hook(mark)

    def unseen_embedding(self):
        """``[D]``: the vector every unseen id gets in evaluation mode."""
        if self.unseen_vector is not None:
            return self.unseen_vector
        seen = self.seen
        if self.padding_idx is not None:
            seen = seen.clone()
            seen[self.padding_idx] = False
        if not seen.any():
            return self.weight.new_zeros(self.embedding_dim)
        return self.weight[seen].mean(dim=0)

    def forward(self, ids):
        vectors = super().forward(ids)
        if self.padding_idx is not None:
            vectors = vectors.masked_fill((ids == self.padding_idx).unsqueeze(-1), 0.0)
        if not self.training:
            return torch.where(self._kept(ids).unsqueeze(-1), vectors, self.unseen_embedding())
        if vectors.requires_grad:
            self._mark_seen(ids, vectors)
        if self.unseen_vector is None:
            return vectors
        dropped = torch.rand(ids.shape, generator=self.generator) < self.dropout
        if self.padding_idx is not None:
            dropped = dropped & (ids != self.padding_idx).cpu()
        return torch.where(dropped.to(ids.device).unsqueeze(-1), self.unseen_vector, vectors)


class FeatureEmbedder(nn.Module):
    """Concatenated embeddings of the feature fields of users or of items.

    A token field gets an embedding table, a token-sequence field (e.g. genres) the mean of its
    tokens' embeddings, a float field a linear map of its value; with ``include_id`` the id itself
    is embedded too. Feature values are read once from the dataset into buffers, so ``forward``
    takes ids only.

    NOTE: every table, the feature tokens' too, is a :class:`TrainedIdEmbedding`: a token no
    training gradient reached (a cold user's zip code that no meta-training user shares, a new
    movie's director or release year) is embedded as ``unseen_ids`` says, never from its random
    initial row; token 0 ("no value") stays the zero vector.

    Args:
        dataset: the RecBole dataset.
        side: ``"user"`` or ``"item"``.
        embedding_size: ``D``, the size of every field's embedding.
        fields: field names to use; ``None`` uses every token, token-sequence and float field of
            that side except the id.
        include_id: also embed the id.
        unseen_ids: :func:`unseen_id_settings`: what an id or feature token without training
            gradient is embedded as; ``None`` is ``mean`` (allowed only without ``include_id``,
            so a model's ``unseen_ids`` key always governs its id table).

    Shapes: ``forward(ids [*B]) -> [*B, F * D]`` with ``F`` the number of embedded fields.
    """

    def __init__(
        self, dataset, side, embedding_size, fields=None, include_id=False, unseen_ids=None
    ):
        super().__init__()
        id_field = dataset.uid_field if side == "user" else dataset.iid_field
        features = dataset.get_user_feature() if side == "user" else dataset.get_item_feature()
        available = [
            f for f in features.columns if f != id_field and dataset.field2type.get(f) in EMBEDDABLE
        ]
        if fields is None:
            fields = available
        missing = [f for f in fields if f not in available]
        if missing:
            raise ConfigError(
                f"{side}_fields names {missing}, which the dataset's {side} features do not "
                f"provide (loaded: {available or 'none'}). Add them to load_col['{side}'] or "
                f"remove them from {side}_fields."
            )
        if unseen_ids is None:
            assert not include_id, "include_id needs unseen_ids=unseen_id_settings(config)"
            unseen_ids = {"unseen": "mean", "dropout": 0.0, "generator": None}
        self.fields = list(fields)
        self.types = {f: dataset.field2type[f] for f in self.fields}
        self.tables = nn.ModuleDict()
        for field in self.fields:
            self.register_buffer(f"value_{field}", features[field].clone(), persistent=False)
            if self.types[field] == FeatureType.FLOAT:
                self.tables[field] = nn.Linear(1, embedding_size)
            else:
                self.tables[field] = TrainedIdEmbedding(
                    dataset.num(field), embedding_size, **unseen_ids, padding_idx=0
                )
        self.id_table = None
        if include_id:
            self.id_table = TrainedIdEmbedding(dataset.num(id_field), embedding_size, **unseen_ids)
        self.output_size = embedding_size * (len(self.fields) + int(include_id))

    def forward(self, ids):
        parts = []
        for field in self.fields:
            value = getattr(self, f"value_{field}")[ids]
            kind = self.types[field]
            if kind == FeatureType.TOKEN:
                parts.append(self.tables[field](value))
            elif kind == FeatureType.TOKEN_SEQ:
                present = (value > 0).unsqueeze(-1).float()  # [*B, L, 1]
                summed = (self.tables[field](value) * present).sum(dim=-2)
                parts.append(summed / present.sum(dim=-2).clamp(min=1.0))
            else:
                parts.append(self.tables[field](value.float().unsqueeze(-1)))
        if self.id_table is not None:
            parts.append(self.id_table(ids))
        if not parts:
            return torch.zeros(*ids.shape, 0, device=ids.device)
        return torch.cat(parts, dim=-1)


class BiasPrior(nn.Module):
    r"""The shrunk bias model ``μ + b_i + b_u`` as a meta-learner's prior (what it adds its
    network's output to), so the meta-learner contains the baseline ``UserItemBias``.

    ``b_i = Σ (r - μ) / (λ + n_i)`` over every row of the train split (as ``UserItemBias``);
    ``b_u = Σ (r - μ - b_i) / (λ + n_u)`` over a task's support rows, computed when it adapts.

    Buffers (data statistics, not saved): ``item_sum``, ``item_count`` ``[N]``, ``mean``.
    Shapes: ``items``, ``labels``, ``mask`` ``[..., S]``; user biases ``[...]``.
    """

    def __init__(self, items, labels, n_items, shrinkage):
        super().__init__()
        labels = labels.float()
        self.shrinkage = float(shrinkage)
        self.register_buffer("mean", labels.mean(), persistent=False)
        residual = labels - self.mean
        item_sum = torch.zeros(n_items).index_add_(0, items, residual)
        self.register_buffer("item_sum", item_sum, persistent=False)
        item_count = torch.bincount(items, minlength=n_items).float()
        self.register_buffer("item_count", item_count, persistent=False)

    def item_bias(self, items, held_out=None):
        """``b_i`` of each row; ``held_out = (labels, mask)`` marks rows whose own rating is in
        the train split's statistics (a meta-train task's query rows): it is left out."""
        total, count = self.item_sum[items], self.item_count[items]
        if held_out is not None:
            labels, mask = held_out
            total = total - torch.where(mask, labels - self.mean, 0.0)
            count = count - mask.float()
        return total / (self.shrinkage + count).clamp(min=1e-12)

    def user_bias(self, items, labels, mask):
        """``b_u`` of each task from its support rows: ``[...]``."""
        residual = torch.where(mask, labels - self.mean - self.item_bias(items), 0.0)
        return residual.sum(-1) / (self.shrinkage + mask.float().sum(-1)).clamp(min=1e-12)

    def forward(self, items, user_bias, held_out=None):
        """``μ + b_i + b_u`` of each row ``[..., S]``."""
        return self.mean + self.item_bias(items, held_out) + user_bias.unsqueeze(-1)


def init_weights(module):
    """The task-batch models' initialisation (``model.apply(init_weights)``): Xavier-normal
    linear weights with zero biases, N(0, 0.1) embedding rows."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_normal_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.1)


def mlp(input_size, hidden_sizes, output_size, dropout=0.0):
    """``Linear -> ReLU (-> Dropout)`` per hidden size, then a linear output layer."""
    layers, size = [], input_size
    for hidden in hidden_sizes:
        layers += [nn.Linear(size, hidden), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        size = hidden
    layers.append(nn.Linear(size, output_size))
    return nn.Sequential(*layers)


class CharacteristicEncoder(nn.Module):
    """Attention pooling of a user's source-domain items (PTUPCDR's and MetaMMCDR's encoder).

    ``a_j = softmax_j(h(v_j))`` over the user's unmasked items, with ``h`` a two-layer
    feed-forward network (``Linear -> ReLU -> Linear``, no output bias); ``p_u = sum_j a_j v_j``.
    A user with no item gets the learned vector ``empty`` instead.

    Shapes: ``forward(features [B, L, D], mask [B, L]) -> (p [B, D], attention [B, L])``;
    ``logits [B, L]`` may be passed when the caller computed ``h`` once per distinct item.
    """

    def __init__(self, input_size, hidden_size=None):
        super().__init__()
        hidden_size = hidden_size or input_size
        self.score = nn.Sequential(
            nn.Linear(input_size, hidden_size), nn.ReLU(), nn.Linear(hidden_size, 1, bias=False)
        )
        self.empty = nn.Parameter(torch.zeros(input_size))

    def forward(self, features, mask, logits=None):
        if logits is None:
            logits = self.score(features).squeeze(-1)  # [B, L, D] -> [B, L]
        logits = logits.masked_fill(~mask, float("-inf"))
        has_items = mask.any(dim=1, keepdim=True)  # [B, 1]
        attention = torch.softmax(torch.where(has_items, logits, 0.0), dim=1) * mask
        pooled = (attention.unsqueeze(-1) * features).sum(dim=1)  # [B, L, D] -> [B, D]
        return torch.where(has_items, pooled, self.empty), attention


class MetaBridge(nn.Module):
    """Meta network emitting a personalised ``k x k`` bridge ``W_u = g(p_u)`` (PTUPCDR).

    ``g`` is ``Linear(D, meta_dim) -> ReLU -> Linear(meta_dim, k * k)``; the bridge maps a row
    vector: ``u_t = u_s W_u``.

    Shapes: ``weights(p [B, D]) -> [B, k, k]``; ``forward(p [B, D], u_s [B, k]) -> [B, k]``.
    """

    def __init__(self, input_size, embedding_size, meta_dim):
        super().__init__()
        self.embedding_size = embedding_size
        self.decoder = mlp(input_size, [meta_dim], embedding_size * embedding_size)

    def weights(self, characteristic):
        k = self.embedding_size
        return self.decoder(characteristic).view(-1, k, k)  # [B, k*k] -> [B, k, k]

    def forward(self, characteristic, source_embedding):
        bridge = self.weights(characteristic)
        return torch.bmm(source_embedding.unsqueeze(1), bridge).squeeze(1)  # [B,1,k]@[B,k,k]


def mapping_function(embedding_size, kind):
    """EMCDR/SSCDR's mapping ``f``: ``linear`` (``k x k``, no bias) or ``mlp`` (``k -> 2k -> k``,
    tanh, as in the EMCDR paper)."""
    if kind == "linear":
        return nn.Linear(embedding_size, embedding_size, bias=False)
    if kind == "mlp":
        return nn.Sequential(
            nn.Linear(embedding_size, 2 * embedding_size),
            nn.Tanh(),
            nn.Linear(2 * embedding_size, embedding_size),
        )
    raise ConfigError(f"mapping={kind!r} must be 'linear' or 'mlp'.")
