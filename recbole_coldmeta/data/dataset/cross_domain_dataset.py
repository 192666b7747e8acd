"""Cross-domain cold start as a RecBole dataset: a target domain with a source domain beside it.

The run's dataset is the *target* domain (so RecBole's evaluator, checkpoints and built-in models
see an ordinary RecBole Dataset); ``dataset.source`` is the *source* domain, a second RecBole
Dataset built from its own atomic files and its own ``source_domain:`` settings. Users are aligned
by their raw token (``user_id`` strings), items are kept apart.

Split (``build()``), seeded by ``seed``:

- overlapping users (in both domains) are shuffled; a share ``cold_user_ratio`` (the paper's β)
  become cold-start *test* users and, of the rest, a share ``valid_user_ratio`` become *validation*
  users. All target interactions of both groups are hidden from every training phase;
- RecBole's three splits are the target interactions of training users (train), of validation
  users (valid) and of test users (test), so target-only RecBole models run on it unchanged;
- each training phase (:class:`Phase`) gets its own pair of train/valid datasets
  (``train_part.phase_data``): the source and target pre-training phases train on their domain's
  training interactions minus a random ``pretrain_valid_ratio`` share, which early-stops them;
  the bridge phase trains on the target interactions of training overlap users and is selected
  on the validation users.
"""

import copy
import os

import numpy as np
import torch
import yaml
from recbole.data.dataset import Dataset

from recbole_coldmeta.data.files import check_dataset_files
from recbole_coldmeta.data.manifest import split_file_roles, split_manifest
from recbole_coldmeta.data.text_encoder import encode_item_texts, missing_text_mask
from recbole_coldmeta.utils import ConfigError, DataError, properties_dir
from recbole_coldmeta.utils.config_keys import known_config_keys
from recbole_coldmeta.utils.enums import Phase, Role
from recbole_coldmeta.utils.streams import seeded_generator


def domain_config(config, block_key="source_domain"):
    """A copy of ``config`` for the domain described by ``config[block_key]``.

    The block names the domain's ``dataset`` and may set any dataset key that differs from the
    target domain's (field names, ``load_col``, filters, ``data_path`` = the folder holding the
    domain's folder). Layering, lowest first: the run's config, ``properties/dataset/<name>.yaml``,
    the block.

    Raises:
        ConfigError: the block is not a mapping, has no ``dataset`` or holds an unknown key.
    """
    block = config[block_key]
    if not isinstance(block, dict) or not block.get("dataset"):
        raise ConfigError(
            f"{block_key} must be a mapping naming the domain's dataset, e.g. "
            f"{block_key}: {{dataset: amazon-dense-books}}; got {block!r}."
        )
    block = dict(block)
    name = str(block.pop("dataset"))
    unknown = sorted(set(block) - known_config_keys())
    if unknown and not config["allow_unknown_config_keys"]:
        raise ConfigError(
            f"Unknown key(s) {unknown} in {block_key}: only dataset keys (field names, load_col, "
            f"filters, data_path, ...) may be set per domain."
        )
    final = dict(config.final_config_dict)
    properties = properties_dir() / "dataset" / f"{name}.yaml"
    if properties.is_file():
        with open(properties, encoding="utf-8") as f:
            final.update(yaml.load(f, Loader=config.yaml_loader) or {})
    final.update(block)
    parent = block.get("data_path") or os.path.dirname(os.path.normpath(config["data_path"]))
    final["dataset"] = name
    final["data_path"] = os.path.join(parent, name)
    domain = copy.copy(config)
    domain.final_config_dict = final
    domain.dataset = name
    return domain


class CrossDomainDataset(Dataset):
    """The target domain of a cross-domain task, with the source domain in ``self.source``.

    Selected whenever ``source_domain`` is set. Config keys (``properties/overall.yaml``):
    ``source_domain``, ``target_domain``, ``cold_user_ratio`` (β), ``valid_user_ratio``,
    ``pretrain_valid_ratio``; ``split_file`` (a manifest) gives each user's role instead.

    Attributes:
        source (Dataset): the source domain (all its interactions, test users' included: they are
            what a cold-start user brings).
        source_user_of (torch.LongTensor): ``[n_target_users]``, each target user's id in the
            source domain, 0 for users the source domain does not know.
        user_role (torch.LongTensor): after ``build()``, ``[n_target_users]``: :class:`Role`
            ``META_TRAIN``, ``VALID_QUERY`` or ``TEST_QUERY`` per user.
        split_manifest (SplitManifest): after ``build()``, the target rows and their roles.

    NOTE: the filters (``user_inter_num_interval``, ``val_interval`` ...) apply to each domain on
    its own, before users are aligned; the cross-domain task configs shipped in
    ``properties/dataset/`` switch the cold-start protocol's [13,100] user filter off.
    NOTE: the pre-training phases hold out ``pretrain_valid_ratio`` of their domain's training
    interactions for early stopping; the bridge phase trains on all target interactions of the
    training overlap users, since only validation users select it.
    """

    # Config keys that decide this split (hyper-parameter tuning keeps them fixed across trials).
    split_keys = (
        "source_domain",
        "target_domain",
        "cold_user_ratio",
        "valid_user_ratio",
        "pretrain_valid_ratio",
        "split_file",
    )

    def __init__(self, config):
        for key in ("cold_user_ratio", "valid_user_ratio", "pretrain_valid_ratio"):
            value = config[key]
            low_ok = value > 0 if key == "cold_user_ratio" else value >= 0
            if not isinstance(value, int | float) or not low_ok or value >= 1:
                bound = "(0, 1)" if key == "cold_user_ratio" else "[0, 1)"
                raise ConfigError(f"{key}={value!r} must be a fraction in {bound}.")
        super().__init__(config)
        self.source = self._load_source(config)
        self._align_users()

    def _load_source(self, config):
        source_config = domain_config(config)
        source_file = os.path.join(source_config["data_path"], f"{source_config['dataset']}.inter")
        target_file = os.path.join(config["data_path"], f"{config['dataset']}.inter")
        if os.path.realpath(source_file) == os.path.realpath(target_file):
            raise ConfigError(
                f"source_domain and the target domain are the same file {target_file}. Fix: name "
                f"two different datasets, e.g. source_domain: {{dataset: amazon-dense-books}} "
                f"with dataset: amazon-dense-movies."
            )
        checked = check_dataset_files(source_config)
        source = Dataset(checked.config)
        source.label_scales = checked.label_scales
        if len(source.inter_feat) == 0:
            raise DataError(f"Source domain '{source_config['dataset']}' has no interactions.")
        return source

    def _align_users(self):
        source_tokens = self.source.field2id_token[self.source.uid_field]
        source_id = {token: index for index, token in enumerate(source_tokens) if index > 0}
        target_tokens = self.field2id_token[self.uid_field]
        self.source_user_of = torch.tensor(
            [
                source_id.get(token, 0) if index > 0 else 0
                for index, token in enumerate(target_tokens)
            ]
        )
        n_overlap = int((self.source_user_of > 0).sum())
        if n_overlap == 0:
            raise DataError(
                f"Domains '{self.source.dataset_name}' (source) and '{self.dataset_name}' (target) "
                f"have no user in common, so nothing can be transferred. Fix: check that both "
                f"files use the same raw user ids and that USER_ID_FIELD names them in each "
                f"domain (set it inside source_domain if the source calls it differently)."
            )
        self.logger.info(
            f"cross-domain: {n_overlap} overlapping users; source {self.source.dataset_name} "
            f"({self.source.user_num - 1} users, {self.source.item_num - 1} items), target "
            f"{self.dataset_name} ({self.user_num - 1} users, {self.item_num - 1} items)"
        )

    def _generator(self, stream):
        return seeded_generator(self.config["seed"], stream)

    def source_item_texts(self, text_fields):
        """Text embeddings of the source domain's items: ``(embeddings [N_s, D], missing
        [N_s])`` in source item-id order (row 0 = padding, never missing), encoded as
        :func:`~recbole_coldmeta.data.text_encoder.encode_item_texts` does."""
        embeddings, texts = encode_item_texts(self.config, self.source, text_fields)
        missing = torch.as_tensor(missing_text_mask(texts), dtype=torch.bool)
        missing[0] = False
        return embeddings, missing

    def _user_roles(self):
        overlap = torch.nonzero(self.source_user_of > 0).squeeze(1)
        overlap = overlap[torch.randperm(len(overlap), generator=self._generator("user_split"))]
        n_test = int(round(len(overlap) * self.config["cold_user_ratio"]))
        n_valid = int(round((len(overlap) - n_test) * self.config["valid_user_ratio"]))
        if n_test == 0 or len(overlap) - n_test - n_valid == 0:
            raise DataError(
                f"{len(overlap)} overlapping users with cold_user_ratio="
                f"{self.config['cold_user_ratio']} leave no test or no training overlap users. "
                f"Fix: use domains with more overlapping users or another cold_user_ratio."
            )
        roles = torch.full((self.user_num,), int(Role.META_TRAIN), dtype=torch.long)
        roles[overlap[:n_test]] = int(Role.TEST_QUERY)
        roles[overlap[n_test : n_test + n_valid]] = int(Role.VALID_QUERY)
        return roles

    def _manifest_user_roles(self, users, items, order):
        """``[n_target_users]`` roles read from ``split_file``: every target user's rows listed,
        one role a user, valid and test users known to the source domain.

        Raises:
            ConfigError, DataError: as :func:`~recbole_coldmeta.data.manifest.split_file_roles`,
                or a target user left out or cold without source rows.

        NOTE: the manifest fixes the users' roles; the pre-training phases' early-stopping
        hold-outs (``pretrain_valid_ratio``) are still drawn from ``seed``, as they are no part
        of the evaluation protocol.
        """
        row_roles = split_file_roles(self, users, items, order, "cross_domain")
        if (row_roles == Role.UNUSED).any():
            token = self.field2id_token[self.uid_field][users[row_roles == Role.UNUSED][0]]
            raise DataError(
                f"split_file={self.config['split_file']} leaves out rows of target user "
                f"{token!r}; the cross-domain split uses every target row: list them all."
            )
        roles = torch.full((self.user_num,), int(Role.META_TRAIN), dtype=torch.long)
        roles[torch.from_numpy(users)] = torch.from_numpy(row_roles)
        cold = (roles != int(Role.META_TRAIN)) & (self.source_user_of == 0)
        if cold.any():
            token = self.field2id_token[self.uid_field][int(torch.nonzero(cold)[0])]
            raise DataError(
                f"split_file={self.config['split_file']}: valid/test user {token!r} has no rows "
                f"in source domain {self.source.dataset_name}, so nothing can be transferred to "
                f"them; make them meta_train."
            )
        return roles

    def _holdout(self, n_rows, stream):
        """Boolean mask ``[n_rows]``: a random ``pretrain_valid_ratio`` share of the rows."""
        n_held = int(round(n_rows * self.config["pretrain_valid_ratio"]))
        order = torch.randperm(n_rows, generator=self._generator(stream))
        held = torch.zeros(n_rows, dtype=torch.bool)
        held[order[:n_held]] = True
        return held

    def build(self):
        self._change_feat_format()
        self.source._change_feat_format()
        users = self.inter_feat[self.uid_field].numpy()
        items, order = self.inter_feat[self.iid_field].numpy(), np.argsort(users, kind="stable")
        if self.config["split_file"] is None:
            self.user_role = self._user_roles()
        else:
            self.user_role = self._manifest_user_roles(users, items, order)
        row_role = self.user_role[self.inter_feat[self.uid_field]]
        self.split_manifest = split_manifest(
            self, users, items, row_role.numpy(), order, "cross_domain"
        )
        parts = []
        for role in (Role.META_TRAIN, Role.VALID_QUERY, Role.TEST_QUERY):
            rows = torch.nonzero(row_role == int(role)).squeeze(1)
            part = self.copy(self.inter_feat[rows])
            part.cold_roles = torch.full((len(rows),), int(role), dtype=torch.long)
            parts.append(part)
        train, valid, _ = parts

        source_held = self._holdout(len(self.source.inter_feat), "source_holdout")
        target_held = self._holdout(len(train.inter_feat), "target_holdout")
        train_users = train.inter_feat[self.uid_field]
        bridge_rows = torch.nonzero(self.source_user_of[train_users] > 0).squeeze(1)
        source_parts = [
            self.source.copy(self.source.inter_feat[torch.nonzero(mask).squeeze(1)])
            for mask in (~source_held, source_held)
        ]
        target_parts = [
            self.copy(train.inter_feat[torch.nonzero(mask).squeeze(1)])
            for mask in (~target_held, target_held)
        ]
        phase_data = {
            Phase.SOURCE_PRETRAIN: tuple(source_parts),
            Phase.TARGET_PRETRAIN: tuple(target_parts),
            Phase.BRIDGE: (self.copy(train.inter_feat[bridge_rows]), valid),
        }
        self.split_info = self._split_info(parts, phase_data)
        for part in parts:
            part.phase_data = phase_data
            part.split_info = self.split_info
        self.logger.info(f"cross-domain split: {self.split_info}")
        return parts

    def _split_info(self, parts, phase_data):
        def users(role):
            return int((self.user_role == int(role)).sum())

        overlap = self.source_user_of > 0
        return {
            "overlap_users": int(overlap.sum()),
            "train_overlap_users": int((overlap & (self.user_role == int(Role.META_TRAIN))).sum()),
            "valid_users": users(Role.VALID_QUERY),
            "test_users": users(Role.TEST_QUERY),
            "train_interactions": len(parts[0].inter_feat),
            "valid_interactions": len(parts[1].inter_feat),
            "test_interactions": len(parts[2].inter_feat),
            "source_interactions": len(self.source.inter_feat),
            "bridge_interactions": len(phase_data[Phase.BRIDGE][0].inter_feat),
        }

    def __str__(self):
        return f"{super().__str__()}\nsource domain:\n{self.source}"
