from recbole_coldmeta.trainer.phased import PhasedTrainer
from recbole_coldmeta.trainer.trainer import (
    ColdMetaTrainer,
    ColdMetaTrainerMixin,
    StatisticTrainer,
    load_own_checkpoint,
    with_compat,
)

__all__ = [
    "ColdMetaTrainer",
    "ColdMetaTrainerMixin",
    "PhasedTrainer",
    "StatisticTrainer",
    "load_own_checkpoint",
    "with_compat",
]
