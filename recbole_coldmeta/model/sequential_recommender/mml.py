"""MML: multimodal meta-learning for cold-start sequential recommendation.

Reference: Xingyu Pan et al. "Multimodal Meta-Learning for Cold-Start Sequential
Recommendation." in CIKM 2022 (doi:10.1145/3511808.3557101); code: https://github.com/RUCAIBox/MML.
"""

from logging import getLogger

import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType
from torch import nn

from recbole_coldmeta.meta import adapt, batched_call, pad_groups, task_params
from recbole_coldmeta.model.abstract_recommender import parse_phase_plan, support_of
from recbole_coldmeta.model.sequential_layers import ItemEmbeddingGenerator, ModalityLearner
from recbole_coldmeta.utils import ConfigError
from recbole_coldmeta.utils.enums import Phase

MODALITIES = ("id", "text", "image")
FUSIONS = ("adaptive", "fixed")


class MML(SequentialRecommender):
    """Per-modality meta-learners (ID, text, image), an adaptive fusion layer and a cold-item
    embedding generator, on the user-level sequential cold-start split.

    Training runs in stages (``train_phases``, driven by
    :class:`~recbole_coldmeta.trainer.PhasedTrainer`):

    1. ``learners``: every learner is meta-trained on user tasks (a window of a meta-train user's
       sequence: support = its first rows, query = its last row, as a new user would be): the
       learner's ``head`` adapts to the support rows by ``local_steps`` steps of the shared inner
       loop (all tasks at once), then the query loss trains all learner parameters;
    2. ``generator``: the item embedding generator learns to reproduce the learned ID embeddings
       of warm items; afterwards cold items (fewer than ``cold_item_threshold`` training
       interactions) take generated ID embeddings;
    3. ``fusion``: with the learners frozen, a small network reads each learner's adapted user
       vector and gives per-user softmax weights over the learners; the fused score is the
       weighted sum of each learner's scores standardised per row, times a learned temperature.

    Evaluation adapts each cold user's heads on their support rows (the first interactions of the
    new user), then ranks all items for their query rows. ``predict`` / ``full_sort_predict``
    use the stages trained so far (equal weights before ``fusion``).

    Ablations by config: ``modalities: [id]`` (ID-only meta-learned SASRec), ``item_generator:
    False``, ``fusion: fixed`` (equal weights, no fusion stage).

    NOTE: deviations from the authors' code (RUCAIBox/MML), each to fit one shared inner loop and
    one protocol: (1) the inner loop adapts each learner's user head (``local_update: head``, or
    per learner, e.g. ``{id: head, text: none}``; ``none`` keeps a learner's meta-parameters),
    first-order by default, batched over tasks; the authors adapt the transformer layers with a
    model copy per user and fine-tune every parameter for 50 epochs per new user at test time.
    (2) Learners and fusion train with cross-entropy over all items; the authors' learners use
    BPR with one negative. (3) The generator is trained to match warm items' learned ID
    embeddings, as the paper describes; the authors' code instead swaps generated embeddings in
    at random during BPR meta-training. (4) Fusion reads the adapted user vectors, not the
    flattened 50 x 64 transformer output. (5) New users are split into validation and test
    users (each leave-one-out on their first ``new_user_max_inters`` interactions) instead of
    validating and testing on the same users.
    NOTE: a cold item's ID row is trained only as a negative of the full softmax, so its score
    would keep its random initial row: at evaluation, without a generator (no item features,
    ``item_generator: False``, or before its stage), cold items take the mean warm ID embedding
    (``unseen_ids: mean`` of the other models; the generator is MML's learned counterpart).
    NOTE: a modality the dataset does not provide (no feature file, no text field) or whose text
    encoder is not installed is dropped with a log line (``strict_modalities: True`` makes it
    an error); the ID learner is always there.
    """

    input_type = InputType.POINTWISE
    protocols = ("sequential_cold",)
    task_batches = True
    trainer = "PhasedTrainer"
    phases = (Phase.LEARNERS, Phase.GENERATOR, Phase.FUSION)

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # load parameters
        self.local_lr = config["local_lr"]
        self.local_steps = config["local_steps"]
        self.first_order = config["first_order"]
        self.fusion = config["fusion"]
        if self.fusion not in FUSIONS:
            raise ConfigError(f"fusion={self.fusion!r} must be one of {', '.join(FUSIONS)}.")
        self.local_update = self._local_update(config["local_update"], config["modalities"])
        self.phase_plan = parse_phase_plan(config, self.enabled_stages(config), "MML")
        self.phase = self.phase_plan[-1][0]

        # define layers
        features = self.modality_features(config, dataset)
        self.modalities = ["id", *features]
        getLogger().info(f"MML learners: {', '.join(self.modalities)}")
        self.learners = nn.ModuleDict(
            {"id": ModalityLearner(self.n_items, self.max_seq_length, config)}
        )
        for name, values in features.items():
            self.learners[name] = ModalityLearner(self.n_items, self.max_seq_length, config, values)
        counts = torch.bincount(dataset.inter_feat[self.ITEM_ID], minlength=self.n_items)
        cold = counts < config["cold_item_threshold"]
        cold[0] = False
        warm = ~cold
        warm[0] = False  # padding
        self.register_buffer("cold_item", cold, persistent=False)
        self.register_buffer("warm_item", warm, persistent=False)
        self.generator = None
        if config["item_generator"] and features:
            self.generator = ItemEmbeddingGenerator(
                list(features.values()), warm, config["hidden_size"], config["generator_k"]
            )
        elif config["item_generator"]:
            getLogger().warning(
                "MML: no item features, so no item embedding generator: its stage is skipped."
            )
            self.phase_plan = [(p, s) for p, s in self.phase_plan if p != Phase.GENERATOR]
            self.phase = self.phase_plan[-1][0]
        hidden = config["hidden_size"]
        self.fusion_layer = nn.Sequential(
            nn.LayerNorm(hidden * len(self.modalities)),
            nn.Linear(hidden * len(self.modalities), hidden),
            nn.ReLU(),
            nn.Linear(hidden, len(self.modalities)),
        )
        self.temperature = nn.Parameter(torch.tensor(float(config["fusion_temperature"])))

    @staticmethod
    def _local_update(value, modalities):
        """``{modality: 'head' | 'none'}`` from one value for every learner or a mapping."""
        update = dict(value) if isinstance(value, dict) else dict.fromkeys(modalities, value)
        for name in modalities:
            update.setdefault(name, "head")
        bad = {k: v for k, v in update.items() if k not in MODALITIES or v not in ("head", "none")}
        if bad:
            raise ConfigError(
                f"local_update={value!r}: each learner ({', '.join(MODALITIES)}) adapts its "
                f"'head' or 'none'; got {bad}."
            )
        return update

    @staticmethod
    def enabled_stages(config):
        stages = [Phase.LEARNERS]
        if config["item_generator"]:
            stages.append(Phase.GENERATOR)
        if config["fusion"] == "adaptive":
            stages.append(Phase.FUSION)
        return tuple(stages)

    def modality_features(self, config, dataset):
        """``{modality: features [N, F]}`` for the configured side modalities the data has
        (read by the dataset: ``dataset.item_modalities``)."""
        wanted = config["modalities"]
        unknown = sorted(set(wanted) - set(MODALITIES))
        if unknown or "id" not in wanted:
            raise ConfigError(
                f"modalities={wanted} must include 'id' and use only {', '.join(MODALITIES)}."
            )
        if getattr(dataset, "cold_roles", None) is None:
            raise ConfigError("MML needs the cold-start split: set cold_start_split: True.")
        return dataset.item_modalities([m for m in wanted if m != "id"])

    def set_phase(self, phase):
        self.phase = phase

    def phase_parameters(self, phase):
        if phase == Phase.LEARNERS:
            return list(self.learners.parameters())
        if phase == Phase.GENERATOR:
            return list(self.generator.parameters())
        return [*self.fusion_layer.parameters(), self.temperature]

    def _stage_reached(self, stage):
        order = list(type(self).phases)
        return order.index(self.phase) >= order.index(stage)

    def item_tables(self):
        """``{modality: [N, D]}``; cold items take generated ID embeddings once the generator
        stage is reached, and the mean warm ID embedding at evaluation without one."""
        tables = {name: learner.item_vectors() for name, learner in self.learners.items()}
        if self.generator is not None and self._stage_reached(Phase.GENERATOR):
            frozen = tables["id"].detach()
            cold = torch.nonzero(self.cold_item).squeeze(1)
            generated = self.generator(cold, frozen)
            table = tables["id"].clone()
            table[cold] = generated
            tables["id"] = table
        elif not self.training:
            table = tables["id"]
            mean = table[self.warm_item].mean(dim=0)  # [N, D] -> [D]
            tables["id"] = torch.where(self.cold_item.unsqueeze(1), mean, table)
        return tables

    def _encode(self, name, table, sequence, length):
        """Sequence representations ``[*B, D]`` of sequences ``[*B, L]``."""
        shape = length.shape
        sequence, length = sequence.reshape(-1, sequence.shape[-1]), length.reshape(-1)
        mask = self.get_attention_mask(sequence)
        hidden = self.learners[name].encode(table, sequence, length, mask)
        return hidden.view(*shape, -1)

    def _task_loss(self, name, params, hidden, table, targets, mask):
        """Per-task mean cross-entropy ``[T]`` of rows ``hidden [T, R, D]`` under ``params``."""
        user = batched_call(self.learners[name].head, params, hidden)  # [T, R, D]
        logits = user @ table.T  # [T, R, N]
        loss = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")  # [T, R]
        return (loss * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)

    def _adapted_user_vectors(self, tables, support, query, keep_graph):
        """Adapt every learner's head on the support rows of ``T`` tasks; return the adapted
        user vectors of the query rows ``{modality: [T, Q, D]}``."""
        seq_s, len_s, target_s, mask_s = support
        seq_q, len_q = query
        vectors = {}
        for name, table in tables.items():
            support_hidden = self._encode(name, table, seq_s, len_s)  # [T, S, D]
            query_hidden = self._encode(name, table, seq_q, len_q)  # [T, Q, D]
            head = self.learners[name].head
            start = task_params(head, ["weight", "bias"], len(seq_s), keep_graph)

            def support_loss(params, name=name, hidden=support_hidden, table=table):
                return self._task_loss(name, params, hidden, table, target_s, mask_s.float())

            steps = self.local_steps if self.local_update[name] == "head" else 0
            adapted = adapt(start, support_loss, steps, self.local_lr, self.first_order)
            vectors[name] = batched_call(head, adapted, query_hidden)  # [T, Q, D]
        return vectors

    def fusion_weights(self, vectors):
        """Per-user weights ``[*B, M]`` over the learners (rows sum to 1): learned once the fusion
        stage is reached, equal before it and with ``fusion: fixed``."""
        first = vectors[self.modalities[0]]
        if self.fusion == "adaptive" and self._stage_reached(Phase.FUSION):
            joined = torch.cat([vectors[name] for name in self.modalities], dim=-1)
            return torch.softmax(self.fusion_layer(joined), dim=-1)
        shape = (*first.shape[:-1], len(self.modalities))
        return torch.full(shape, 1 / len(self.modalities), device=first.device)

    def fused_logits(self, vectors, tables):
        """Scores ``[*B, N]`` from the adapted user vectors ``{modality: [*B, D]}``."""
        scores = []
        for name in self.modalities:
            logits = vectors[name] @ tables[name].T  # [*B, N]
            spread = logits.std(-1, keepdim=True).add(1e-6)
            scores.append((logits - logits.mean(-1, keepdim=True)) / spread)
        scores = torch.stack(scores, dim=-1)  # [*B, N, M]
        weights = self.fusion_weights(vectors).unsqueeze(-2)  # [*B, 1, M]
        return self.temperature * (scores * weights).sum(dim=-1)

    def calculate_loss(self, interaction):
        if self.phase == Phase.GENERATOR:
            return self.generator_loss()
        support = (
            interaction[f"support_{self.ITEM_SEQ}"],
            interaction[f"support_{self.ITEM_SEQ_LEN}"],
            interaction["support_item"],
            interaction["support_mask"],
        )
        query = (interaction[f"query_{self.ITEM_SEQ}"], interaction[f"query_{self.ITEM_SEQ_LEN}"])
        query_target, query_mask = interaction["query_item"], interaction["query_mask"].float()
        training_learners = self.phase == Phase.LEARNERS
        tables = self.item_tables()
        vectors = self._adapted_user_vectors(tables, support, query, keep_graph=training_learners)
        if training_learners:
            losses = [
                self._query_loss(vectors[name] @ tables[name].T, query_target, query_mask)
                for name in self.modalities
            ]
            return torch.stack(losses).sum()
        vectors = {name: value.detach() for name, value in vectors.items()}
        tables = {name: value.detach() for name, value in tables.items()}
        return self._query_loss(self.fused_logits(vectors, tables), query_target, query_mask)

    @staticmethod
    def _query_loss(logits, targets, mask):
        loss = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")  # [T, Q]
        return (loss * mask).sum() / mask.sum().clamp(min=1)

    def generator_loss(self):
        """Mean squared error between generated and learned ID embeddings of warm items."""
        table = self.learners["id"].item_vectors().detach()
        warm = torch.nonzero(self.warm_item).squeeze(1)
        return (self.generator(warm, table) - table[warm]).pow(2).sum(dim=1).mean()

    def _cold_user_logits(self, interaction):
        """Scores ``[B, N]`` of evaluation rows: each user of the batch adapts once, on their
        support rows, and scores all of their rows."""
        fields = [self.ITEM_SEQ, self.ITEM_SEQ_LEN, "item", "mask"]
        users, position, *support = support_of("MML", interaction, self.USER_ID, fields)
        rows, mask = pad_groups(position, len(users))  # [U, Q]: each user's rows of the batch
        query = (
            interaction[self.ITEM_SEQ][rows],  # [U, Q, L]
            torch.where(mask, interaction[self.ITEM_SEQ_LEN][rows], 1),  # [U, Q]
        )
        tables = self.item_tables()
        vectors = self._adapted_user_vectors(tables, support, query, keep_graph=False)
        by_row = {}
        for name, value in vectors.items():  # [U, Q, D] -> [B, D] in the batch's row order
            flat = torch.empty(len(position), value.shape[-1], device=value.device)
            flat[rows[mask]] = value[mask].detach()
            by_row[name] = flat
        return self.fused_logits(by_row, tables)  # [B, N]

    def predict(self, interaction):
        logits = self._cold_user_logits(interaction)
        return logits.gather(1, interaction[self.ITEM_ID].unsqueeze(1)).squeeze(1)

    def full_sort_predict(self, interaction):
        return self._cold_user_logits(interaction)
