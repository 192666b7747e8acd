"""Building blocks of multimodal sequential meta-learning (MML): a SASRec-style learner over one
modality's item vectors, and the generator of cold items' ID embeddings from side features.

Shapes: ``N`` items, ``B`` sequences, ``L`` sequence length, ``D`` hidden size, ``F`` feature
size, ``I`` items asked for, ``k`` neighbours.
"""

import math

import torch
import torch.nn.functional as F
from recbole.model.layers import TransformerEncoder
from torch import nn


class ModalityLearner(nn.Module):
    """A SASRec-style learner over one modality's item vectors.

    Item vectors are an ID embedding table (``features=None``) or ``LayerNorm(Linear(f_i))`` of
    fixed item features ``[N, F]``; the same vectors embed the input sequence and score the
    candidates. ``head`` (``D x D``, identity at start) maps the sequence representation to the
    user's query vector: it is what adapts to each user.

    Shapes: ``encode(items [N, D], sequence [B, L], length [B], mask) -> [B, D]``.
    """

    def __init__(self, n_items, max_len, config, features=None):
        super().__init__()
        hidden = config["hidden_size"]
        if features is None:
            self.item_embedding = nn.Embedding(n_items, hidden, padding_idx=0)
            nn.init.normal_(self.item_embedding.weight, std=config["initializer_range"])
            self.projection = None
        else:
            self.register_buffer("features", features, persistent=False)  # [N, F]
            self.projection = nn.Sequential(
                nn.Linear(features.shape[1], hidden), nn.LayerNorm(hidden)
            )
        self.position = nn.Embedding(max_len, hidden)
        self.encoder = TransformerEncoder(
            n_layers=config["n_layers"],
            n_heads=config["n_heads"],
            hidden_size=hidden,
            inner_size=config["inner_size"],
            hidden_dropout_prob=config["hidden_dropout_prob"],
            attn_dropout_prob=config["attn_dropout_prob"],
            hidden_act=config["hidden_act"],
            layer_norm_eps=config["layer_norm_eps"],
        )
        self.input_norm = nn.LayerNorm(hidden, eps=config["layer_norm_eps"])
        self.dropout = nn.Dropout(config["hidden_dropout_prob"])
        self.head = nn.Linear(hidden, hidden)
        nn.init.eye_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def item_vectors(self):
        """``[N, D]``: every item's vector (row 0 is padding)."""
        if self.projection is None:
            return self.item_embedding.weight
        return self.projection(self.features)

    def encode(self, items, sequence, length, attention_mask):
        positions = torch.arange(sequence.shape[1], device=sequence.device)
        hidden = self.dropout(self.input_norm(items[sequence] + self.position(positions)))
        output = self.encoder(hidden, attention_mask, output_all_encoded_layers=True)[-1]
        last = (length - 1).clamp(min=0)
        return output[torch.arange(len(sequence), device=sequence.device), last]  # [B, D]


class ItemEmbeddingGenerator(nn.Module):
    """ID embeddings of cold items from their side information.

    For each feature modality ``m``: the item's features and those of its ``k`` nearest warm
    items (cosine, in that modality's feature space) are projected; attention of the item over
    its neighbours weighs the neighbours' learned ID embeddings; the result is averaged over
    modalities. Trained to reproduce the learned ID embeddings of warm items (the item itself is
    never its own neighbour), it then replaces the ID embeddings of cold items only.

    Shapes: ``forward(items [I], id_table [N, D]) -> [I, D]``.
    """

    def __init__(self, features, warm, hidden, k):
        super().__init__()
        self.queries = nn.ModuleList()
        self.keys = nn.ModuleList()
        for index, values in enumerate(features):
            self.register_buffer(f"features_{index}", values, persistent=False)
            self.register_buffer(
                f"neighbours_{index}", nearest_warm(values, warm, k), persistent=False
            )
            self.queries.append(nn.Linear(values.shape[1], hidden))
            self.keys.append(nn.Linear(values.shape[1], hidden))

    def forward(self, items, id_table):
        generated = []
        for index, (query, key) in enumerate(zip(self.queries, self.keys)):
            features = getattr(self, f"features_{index}")
            neighbours = getattr(self, f"neighbours_{index}")[items]  # [I, k]
            q = query(features[items]).unsqueeze(1)  # [I, 1, D]
            k = key(features[neighbours])  # [I, k, D]
            attention = torch.softmax((q * k).sum(-1) / math.sqrt(q.shape[-1]), dim=-1)
            generated.append((attention.unsqueeze(-1) * id_table[neighbours]).sum(dim=1))
        return torch.stack(generated).mean(dim=0)


def nearest_warm(features, warm, k):
    """``[N, k]``: for every item, its ``k`` most cosine-similar warm items other than itself."""
    unit = F.normalize(features, dim=1)
    similarity = unit @ unit[warm].T  # [N, W]
    warm_ids = torch.nonzero(warm).squeeze(1)
    similarity[warm_ids, torch.arange(len(warm_ids))] = -math.inf  # never yourself
    k = min(k, len(warm_ids) - 1)
    return warm_ids[similarity.topk(k, dim=1).indices]
