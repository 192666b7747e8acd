"""Base classes of the cold-start and cross-domain models."""

from logging import getLogger

import torch
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType, ModelType
from torch import nn

from recbole_coldmeta.meta import pad_groups
from recbole_coldmeta.model.layers import TrainedIdEmbedding, unseen_id_settings
from recbole_coldmeta.model.task_feedback import TaskFeedbackMixin, implicit_label
from recbole_coldmeta.utils import ConfigError, DataError
from recbole_coldmeta.utils.enums import Phase


def check_rating_label(model_name, config, dataset):
    """The label field's name; ``ConfigError`` when it is not loaded or the config rescales it,
    ``DataError`` when a label lies off the scale inferred from the data.

    The scale is ``dataset.label_scales[label]`` (set by the data checks,
    :mod:`recbole_coldmeta.data.row_checks`): declared by ``rating_range``, or inferred from
    the data and logged here. An inferred scale with outliers (1000 among 1-5 ratings) stops a
    rating model, which would regress on them; ranking models use the label only through
    thresholds and are not checked.
    """
    label = config["LABEL_FIELD"]
    if label not in dataset.inter_feat:
        raise ConfigError(
            f"{model_name} predicts ratings, but LABEL_FIELD={label!r} is not a "
            f"loaded interaction field. Load the rating column (load_col['inter']) and set "
            f"LABEL_FIELD to it."
        )
    if config["normalize_all"] or label in (config["normalize_field"] or []):
        raise ConfigError(
            f"{model_name} predicts {label!r} on its own scale, but the config "
            f"rescales it (normalize_all={config['normalize_all']}, normalize_field="
            f"{config['normalize_field']}), which would make MAE/RMSE meaningless. Set "
            f"normalize_all: False and leave {label!r} out of normalize_field."
        )
    scale = getattr(dataset, "label_scales", {}).get(label)
    if scale is not None and scale.outliers:
        line, value, count = scale.outliers
        raise DataError(
            f"{scale.path} line {line}, column {label!r}: {value:g} lies off the scale of the "
            f"other ratings ({scale.low:g} to {scale.high:g}, inferred from the data; {count} "
            f"such row(s)), and {model_name} regresses on ratings. Fix: correct the value(s), "
            f"or declare rating_range: [{min(scale.low, value):g}, {max(scale.high, value):g}] "
            f"if they are on your scale."
        )
    if scale is not None:
        getLogger().info(f"{model_name} predicts {label!r} on the scale {scale.describe()}")
    return label


class ColdStartRecommender(GeneralRecommender):
    """Base of the rating models evaluated on the cold-start protocol.

    Loads ``properties/protocol/rating.yaml`` (MAE, RMSE and QueryNDCG in RecBole's ``labeled``
    evaluation mode) under the model's own YAML. Provides the training label mean
    (``global_mean``, saved with the parameters). A meta-learner reads a cold user's support set
    from the evaluation batch (``support_*`` fields, see :meth:`support_of`), never from tables
    of its own: a trained model evaluates any split of its dataset by swapping loaders.
    """

    type = ModelType.GENERAL
    input_type = InputType.POINTWISE
    protocols = ("rating",)

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        if isinstance(self, TaskFeedbackMixin) and config["meta_feedback"] == "implicit":
            self.LABEL, labels = implicit_label(config, dataset)
        else:
            self.LABEL = check_rating_label(type(self).__name__, config, dataset)
            labels = dataset.inter_feat[self.LABEL].float()
        self.register_buffer("global_mean", labels.mean())


def batch_support(model_name, interaction, fields):
    """Each row's support fields ``[B, S, ...]`` of an evaluation batch (``support_<field>``).

    Raises:
        ConfigError: the batch carries no support rows (it does not come from an evaluation
            loader of :func:`recbole_coldmeta.data.data_preparation`).
    """
    missing = [f"support_{field}" for field in fields if f"support_{field}" not in interaction]
    if missing:
        raise ConfigError(
            f"{model_name} adapts each cold user on their support rows, and this batch has no "
            f"{missing[0]} field: evaluate it on loaders from "
            f"recbole_coldmeta.data.data_preparation, which add each user's support rows."
        )
    return [interaction[f"support_{field}"] for field in fields]


def support_of(model_name, interaction, user_field, fields):
    """The support rows of the distinct users of an evaluation batch.

    Every row of a user carries the same support set (:func:`batch_support`); this keeps one
    line per user.

    Returns:
        tuple: ``users [U]`` (distinct, ascending), ``position [B]`` (each row's index into
        ``users``) and the requested fields ``[U, S, ...]``, in that order.
    """
    lines = batch_support(model_name, interaction, fields)
    users, position = torch.unique(interaction[user_field], return_inverse=True)
    rows = torch.arange(len(position), device=position.device)
    first = torch.full_like(users, len(position)).scatter_reduce(0, position, rows, "amin")
    return users, position, *(line[first] for line in lines)


class StatisticRecommender(ColdStartRecommender):
    """Base of closed-form rating baselines: statistics of the train split, no gradient training.

    Subclasses implement ``score(users, items)`` on broadcastable id tensors and, if they have a
    setting to choose on validation data, ``candidate_settings()`` and ``fit_setting(setting)``;
    :class:`~recbole_coldmeta.trainer.StatisticTrainer` fits each candidate and keeps the best,
    without iterating the train loader. The train split holds every meta-train interaction and
    the support interactions of valid/test users, so a cold user's statistics come from their
    support set only.

    NOTE: ``fake_loss`` (RecBole's ``Pop`` has one too) is the only parameter: it gives RecBole's
    trainer a non-empty parameter list for its optimizer; ``calculate_loss`` is never called by
    ``StatisticTrainer``.
    """

    trainer = "StatisticTrainer"

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.register_buffer("train_user", dataset.inter_feat[self.USER_ID], persistent=False)
        self.register_buffer("train_item", dataset.inter_feat[self.ITEM_ID], persistent=False)
        self.register_buffer(
            "train_label", dataset.inter_feat[self.LABEL].float(), persistent=False
        )
        self.fake_loss = torch.nn.Parameter(torch.zeros(1))

    def grouped_mean(self, ids, values, size, shrinkage=0.0):
        """Per-id ``sum(values) / (count + shrinkage)``: ``[size]`` (0 where an id has no row)."""
        total = torch.zeros(size, device=values.device).index_add_(0, ids, values)
        count = torch.zeros(size, device=values.device).index_add_(0, ids, torch.ones_like(values))
        return total / (count + shrinkage).clamp(min=1e-12), count

    def candidate_settings(self):
        """The settings (dicts of hyper-parameter values) the trainer tries, in order; one, with
        nothing to set, for a model without hyper-parameters."""
        return [{}]

    def fit_setting(self, setting):
        """Compute the closed form for ``setting``; the means are computed in ``__init__``."""

    def calculate_loss(self, interaction):
        return self.fake_loss.sum()

    def predict(self, interaction):
        return self.score(interaction[self.USER_ID], interaction[self.ITEM_ID])

    def full_sort_predict(self, interaction):
        users = interaction[self.USER_ID].unsqueeze(1)  # [U, 1]
        items = torch.arange(self.n_items, device=users.device).unsqueeze(0)  # [1, N]
        return self.score(users, items).reshape(-1)  # [U * N]


#: Keys a ``train_phases`` entry may set; absent keys fall back to the top-level config value.
PHASE_KEYS = ("epochs", "learning_rate", "weight_decay", "stopping_step", "train_batch_size")


def parse_phase_plan(config, allowed, model_name):
    """``train_phases`` as a list of ``(phase, settings)``, checked against ``allowed``.

    Args:
        config: the run's Config.
        allowed: the :class:`~recbole_coldmeta.utils.enums.Phase` members the model can run, in
            the order they must run in.
        model_name: for messages.

    Raises:
        ConfigError: an entry is malformed, names an unknown phase or key, or repeats a phase.
    """
    entries = config["train_phases"]
    names = ", ".join(p.value for p in allowed)
    if not isinstance(entries, list) or not entries:
        raise ConfigError(
            f"train_phases must be a non-empty list such as [{{phase: {allowed[-1].value}}}]; "
            f"{model_name} runs the phases {names}."
        )
    plan = []
    for entry in entries:
        if not isinstance(entry, dict) or "phase" not in entry:
            raise ConfigError(f"train_phases entry {entry!r} must be a mapping with a 'phase' key.")
        try:
            phase = Phase(entry["phase"])
        except ValueError:
            raise ConfigError(
                f"train_phases names phase {entry['phase']!r}; {model_name} runs {names}."
            ) from None
        if phase not in allowed or phase in [p for p, _ in plan]:
            raise ConfigError(
                f"train_phases: phase {phase.value!r} is not one of {model_name}'s phases "
                f"({names}) or is listed twice."
            )
        unknown = set(entry) - {"phase", *PHASE_KEYS}
        if unknown:
            raise ConfigError(
                f"train_phases entry for {phase.value} has unknown key(s) {sorted(unknown)}; "
                f"allowed: {', '.join(PHASE_KEYS)}."
            )
        settings = {key: entry.get(key, config[key]) for key in PHASE_KEYS}
        plan.append((phase, settings))
    order = [p for p, _ in plan]
    if order != sorted(order, key=list(allowed).index):
        raise ConfigError(f"train_phases must run in the order {names}.")
    return plan


class DomainMF(nn.Module):
    """One domain's rating model: ``MF`` (``r = u . v``) or ``GMF`` (``r = w^T (u * v)``), plus
    ``b + b_i`` (a global and an item bias) with ``use_bias``.

    Item ids (and user ids with ``guard_users``) are :class:`TrainedIdEmbedding` tables: an id
    no training gradient reached (all its rows in the pre-training hold-out, a target item only
    cold users rated) gets the vector ``unseen_ids`` defines (:func:`unseen_id_settings`).

    NOTE: an unseen item's bias ``b_i`` is 0: it is initialised to 0 and its gradient is always
    0, so no optimizer step (Adam, with or without L2 weight decay) moves it.
    NOTE: target-domain users keep a plain table: a cold user is scored through the bridge,
    never through their own target row; the one exception is ``TargetMF``'s
    ``cold_user_fallback: embedding``, the authors' "TGT" reproduced on purpose.

    Shapes: ``score(users [*B, k], items [*B]) -> [*B]``, broadcasting ``users`` against the
    item ids (``[U, 1, k]`` against ``[1, N]`` scores every item).
    """

    def __init__(
        self, n_users, n_items, size, base_model, init_std, use_bias, unseen_ids, guard_users
    ):
        super().__init__()
        if base_model not in ("MF", "GMF"):
            raise ConfigError(f"base_model={base_model!r} must be 'MF' or 'GMF'.")
        user_table = TrainedIdEmbedding if guard_users else nn.Embedding
        self.user = user_table(n_users, size, **(unseen_ids if guard_users else {}))
        self.item = TrainedIdEmbedding(n_items, size, **unseen_ids)
        nn.init.normal_(self.user.weight, std=init_std)
        nn.init.normal_(self.item.weight, std=init_std)
        self.output = nn.Linear(size, 1, bias=False) if base_model == "GMF" else None
        if use_bias:
            self.item_bias = nn.Embedding(n_items, 1)
            nn.init.zeros_(self.item_bias.weight)
            self.global_bias = nn.Parameter(torch.zeros(1))
        else:
            self.item_bias = self.global_bias = None

    def score(self, users, items, frozen=False):
        """Scores of user vectors and item ids; ``frozen`` stops gradients into this model."""
        vectors = self.item(items)
        weight = None if self.output is None else self.output.weight
        bias = None
        if self.item_bias is not None:
            bias = self.global_bias + self.item_bias(items).squeeze(-1)
        if frozen:
            vectors = vectors.detach()
            weight = None if weight is None else weight.detach()
            bias = None if bias is None else bias.detach()
        if weight is None:
            score = (users * vectors).sum(dim=-1)
        else:
            score = nn.functional.linear(users * vectors, weight).squeeze(-1)
        return score if bias is None else score + bias


class CrossDomainRecommender(GeneralRecommender):
    """Base of the cross-domain cold-start models: a rating model per domain and a bridge.

    ``cdr_feedback: explicit`` fits ratings (MSE; MAE/RMSE); ``implicit`` fits interactions
    against sampled negatives (BCE; ranking metrics, full sort over the target items).

    Training runs in phases (:class:`~recbole_coldmeta.data.dataset.Phase`), listed with their
    own epochs / learning rate in the model YAML's ``train_phases`` and driven by
    :class:`~recbole_coldmeta.trainer.PhasedTrainer`: the source model, then the target
    model, then the bridge, each on its own data (``CrossDomainDataset.build``) and with its own
    optimizer over :meth:`phase_parameters` only (earlier phases stay frozen).

    Subclasses implement :meth:`transfer` (a cold user's target embedding) and
    :meth:`bridge_loss`; :meth:`predict` and :meth:`full_sort_predict` score target items with
    the transferred embedding once the bridge phase is reached.

    NOTE: an item, or a cold user's source row, that no pre-training gradient reached is scored
    with ``unseen_ids``'s vector, never its random initial row (:class:`DomainMF`).

    Buffers: ``source_user_of`` ``[n_users]`` (a target user's source id, 0 if none);
    ``history_item``, ``history_mask`` ``[n_source_users, L]`` (each source user's items rated
    above ``history_min_rating``, the last ``history_max_len`` of them in file order).
    """

    type = ModelType.GENERAL
    input_type = InputType.POINTWISE
    protocols = ("rating", "cross_domain")
    trainer = "PhasedTrainer"
    phases = (Phase.SOURCE_PRETRAIN, Phase.TARGET_PRETRAIN, Phase.BRIDGE)

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        source = getattr(dataset, "source", None)
        if source is None:
            raise ConfigError(
                f"{type(self).__name__} is a cross-domain model and needs a source domain: set "
                f"source_domain: {{dataset: NAME}} (see properties/dataset/cdr-example.yaml)."
            )

        # load parameters
        self.implicit = config["cdr_feedback"] == "implicit"
        if config["cdr_feedback"] not in ("explicit", "implicit"):
            raise ConfigError(
                f"cdr_feedback={config['cdr_feedback']!r} must be 'explicit' or 'implicit'."
            )
        self.SOURCE_USER = source.uid_field
        self.SOURCE_ITEM = source.iid_field
        if self.implicit:
            self.LABEL = config["LABEL_FIELD"]
            self.SOURCE_LABEL = source.config["LABEL_FIELD"]
            if config["train_neg_sample_args"]["distribution"] == "none":
                raise ConfigError(
                    f"{type(self).__name__} with cdr_feedback: implicit learns from sampled "
                    f"negatives: set train_neg_sample_args: {{distribution: uniform, sample_num: "
                    f"1}} (see properties/dataset/amazon-kg-book2movie.yaml)."
                )
        else:
            self.LABEL = check_rating_label(type(self).__name__, config, dataset)
            self.SOURCE_LABEL = check_rating_label(type(self).__name__, source.config, source)
        self.embedding_size = config["embedding_size"]
        self.phase_plan = parse_phase_plan(config, type(self).phases, type(self).__name__)
        self.phase = self.phase_plan[-1][0]

        # define layers and loss
        settings = (config["base_model"], config["init_std"], config["use_bias"])
        settings = (self.embedding_size, *settings, unseen_id_settings(config))
        # source users feed the bridge of cold users: their rows must be trained ones too
        self.source_model = DomainMF(source.user_num, source.item_num, *settings, guard_users=True)
        self.target_model = DomainMF(
            dataset.user_num, dataset.item_num, *settings, guard_users=False
        )
        self.loss = nn.BCEWithLogitsLoss() if self.implicit else nn.MSELoss()
        self.register_buffer("source_user_of", dataset.source_user_of.clone(), persistent=False)
        self._register_history(source, config["history_min_rating"], config["history_max_len"])

    def _register_history(self, source, min_rating, max_len):
        inter = source.inter_feat
        keep = inter[self.SOURCE_LABEL] > min_rating if min_rating is not None else None
        rows = torch.arange(len(inter)) if keep is None else torch.nonzero(keep).squeeze(1)
        if source.time_field in inter:
            rows = rows[torch.argsort(inter[source.time_field][rows], stable=True)]
        index, mask = pad_groups(inter[self.SOURCE_USER][rows], source.user_num)  # [U_s, L]
        # keep the last max_len items of each user (PTUPCDR keeps the last 20)
        start = (mask.sum(dim=1, keepdim=True) - max_len).clamp(min=0)  # [U_s, 1]
        window = start + torch.arange(min(max_len, index.shape[1])).unsqueeze(0)  # [U_s, L]
        index, mask = torch.gather(index, 1, window), torch.gather(mask, 1, window)
        items = torch.where(mask, inter[self.SOURCE_ITEM][rows][index], 0)
        self.register_buffer("history_item", items, persistent=False)
        self.register_buffer("history_mask", mask, persistent=False)

    def set_phase(self, phase):
        """Switch training, ``predict`` and ``full_sort_predict`` to ``phase``."""
        self.phase = phase

    def phase_parameters(self, phase):
        """The parameters that ``phase`` trains (the others are frozen during it)."""
        if phase == Phase.SOURCE_PRETRAIN:
            return list(self.source_model.parameters())
        if phase == Phase.TARGET_PRETRAIN:
            return list(self.target_model.parameters())
        frozen = {id(p) for m in (self.source_model, self.target_model) for p in m.parameters()}
        return [p for p in self.parameters() if id(p) not in frozen]

    def source_user_embedding(self, target_users):
        """Source-domain embeddings ``[B, k]`` (frozen) of target users ``[B]``."""
        return self.source_model.user(self.source_user_of[target_users]).detach()

    def transfer(self, target_users):
        """A cold user's target-domain embedding ``[B, k]`` from their source domain."""
        raise NotImplementedError

    def bridge_loss(self, interaction):
        """Training loss of the bridge phase on target interactions of training overlap users."""
        raise NotImplementedError

    def mapping_loss(self, users):
        """EMCDR's mapping-oriented loss ``mean ||transfer(u) - u_t||^2`` over distinct users."""
        users = torch.unique(users)
        target = self.target_model.user(users).detach()
        return (self.transfer(users) - target).pow(2).sum(dim=1).mean()

    def task_loss(self, interaction):
        """PTUPCDR's task-oriented loss: MSE of the ratings scored with transferred embeddings."""
        users = self.transfer(interaction[self.USER_ID])
        score = self.target_model.score(users, interaction[self.ITEM_ID], frozen=True)
        return self.loss(score, interaction[self.LABEL].float())

    def domain(self):
        """``(model, user field, item field, label field)`` of the domain the phase scores."""
        if self.phase == Phase.SOURCE_PRETRAIN:
            return self.source_model, self.SOURCE_USER, self.SOURCE_ITEM, self.SOURCE_LABEL
        return self.target_model, self.USER_ID, self.ITEM_ID, self.LABEL

    def calculate_loss(self, interaction):
        if self.phase == Phase.BRIDGE:
            return self.bridge_loss(interaction)
        model, user, item, label = self.domain()
        score = model.score(model.user(interaction[user]), interaction[item])
        return self.loss(score, interaction[label].float())

    def user_vectors(self, users):
        """User vectors ``[B, k]`` as the current phase scores them: the source or target
        model's embeddings in pre-training, the transferred embeddings from the bridge phase on."""
        if self.phase == Phase.BRIDGE:
            return self.transfer(users)
        return self.domain()[0].user(users)

    def predict(self, interaction):
        model, user, item, _ = self.domain()
        return model.score(self.user_vectors(interaction[user]), interaction[item])

    def full_sort_predict(self, interaction):
        model, user, _, _ = self.domain()
        users = self.user_vectors(interaction[user]).unsqueeze(1)  # [U, 1, k]
        items = torch.arange(model.item.num_embeddings, device=users.device).unsqueeze(0)  # [1, N]
        return model.score(users, items).reshape(-1)  # [U * N]
