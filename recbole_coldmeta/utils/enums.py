"""The package's enums, in one place: what a row is (:class:`Role`) and what a training phase is
(:class:`Phase`). Ground floor: imports nothing of ours."""

from enum import Enum, IntEnum


class Role(IntEnum):
    """What one interaction is in the cold-start protocol."""

    META_TRAIN = 0
    VALID_SUPPORT = 1
    TEST_SUPPORT = 2
    VALID_QUERY = 3
    TEST_QUERY = 4
    UNUSED = 5


class Phase(Enum):
    """Training phases, run by :class:`~recbole_coldmeta.trainer.PhasedTrainer` in the order a
    model lists them in its ``phases`` attribute (a model runs a subset of these).

    Cross-domain models: ``SOURCE_PRETRAIN``, ``TARGET_PRETRAIN``, ``BRIDGE``. MML's stages:
    ``LEARNERS``, ``GENERATOR``, ``FUSION``. The value is the name a model YAML's
    ``train_phases`` uses.
    """

    SOURCE_PRETRAIN = "source_pretrain"
    TARGET_PRETRAIN = "target_pretrain"
    BRIDGE = "bridge"
    LEARNERS = "learners"
    GENERATOR = "generator"
    FUSION = "fusion"
