"""MetaMMCDR: PTUPCDR's personalised bridge with a characteristic encoder over item text.

Reference: Liu, Xu, Yu. "Meta-Learning for Multimodal Cross-Domain Recommendation Systems." 2025
(no public code). Builds on Yongchun Zhu et al. "Personalized Transfer of User Preferences for
Cross-domain Recommendation." in WSDM 2022 (doi:10.1145/3488560.3498392).
"""

from logging import getLogger

import torch
from torch import nn

from recbole_coldmeta.model.cross_domain_recommender.ptupcdr import PTUPCDR
from recbole_coldmeta.utils import ConfigError


class MetaMMCDR(PTUPCDR):
    """The characteristic encoder attends over *semantic* item embeddings: for each source item,
    the sum of a BERT-family encoder's token embeddings over its text (``text_fields``),
    ``v = sum_t phi_BERT(t)``, computed once and cached on disk
    (:class:`~recbole_coldmeta.data.text_encoder.TextEncoder`). A meta network turns the user's
    characteristic ``p_u`` into a ``k x k`` bridge; ``u_t = u_s W_u``; trained with the
    task-oriented rating loss on training overlap users (``bridge_objective``, as PTUPCDR).

    ``characteristic_input: id`` replaces the text embeddings by the source ID embeddings, which
    makes the model PTUPCDR: the ablation that measures what text brings.

    NOTE: source items without text get one learned fallback vector (initialised to the mean
    text embedding); their number is logged. Set ``val_interval: {has_text: "[1,1]"}`` on the
    domain to drop them instead ("titled items only").
    NOTE: with ``text_scale: True`` (default) the fixed text embeddings are divided by their mean
    norm, a single constant: sums of token embeddings have norms in the tens to hundreds, which
    would saturate the attention scores; directions and relative norms are unchanged.
    NOTE: the paper does not say whether a user's history is filtered by rating; we keep
    PTUPCDR's rule (source items rated above ``history_min_rating``, last ``history_max_len``).
    """

    def characteristic_size(self, config, dataset):
        # called by PTUPCDR.__init__ before its layers exist: read this model's keys here
        self.characteristic_input = config["characteristic_input"]
        if self.characteristic_input not in ("text", "id"):
            raise ConfigError(
                f"characteristic_input={self.characteristic_input!r} must be 'text' or 'id'."
            )
        if self.characteristic_input == "id":
            return self.embedding_size
        embeddings, missing = self._item_text_embeddings(config, dataset)
        if bool(missing.all()):
            raise ConfigError(
                f"No source item of {dataset.source.dataset_name} has text in the fields "
                f"{config['text_fields']}. Fix: set text_fields to the item file's text "
                f"columns, or use characteristic_input: id."
            )
        if config["text_scale"]:
            embeddings = embeddings / embeddings[~missing].norm(dim=1).mean().clamp(min=1e-12)
        self.register_buffer("item_text", embeddings, persistent=False)  # [N_s, D]
        self.register_buffer("item_text_missing", missing, persistent=False)  # [N_s]
        self.missing_text = nn.Parameter(embeddings[~missing].mean(dim=0))
        return embeddings.shape[1]

    def _item_text_embeddings(self, config, dataset):
        """``(embeddings [N_s, D], missing [N_s])`` in source item-id order (row 0 = padding)."""
        embeddings, missing = dataset.source_item_texts(config["text_fields"])
        n_items, n_missing = len(missing) - 1, int(missing[1:].sum())
        getLogger().info(
            f"MetaMMCDR: text embeddings ({embeddings.shape[1]}-d, {config['text_pooling']} "
            f"pooling, {config['text_encoder']}) for {n_items - n_missing} of {n_items} source "
            f"items; {n_missing} without text use a learned fallback."
        )
        return embeddings, missing

    def history_features(self, source_items):
        if self.characteristic_input == "id":
            return super().history_features(source_items)
        text = self.item_text[source_items]  # [*, D]
        missing = self.item_text_missing[source_items].unsqueeze(-1)  # [*, 1]
        return torch.where(missing, self.missing_text, text)
