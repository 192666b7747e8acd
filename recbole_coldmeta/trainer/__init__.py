from recbole_coldmeta.trainer.trainer import (
    ColdMetaTrainer,
    ColdMetaTrainerMixin,
    PhasedTrainer,
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
