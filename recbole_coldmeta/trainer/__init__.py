from recbole_coldmeta.trainer.trainer import (
    ColdMetaTrainer,
    ColdMetaTrainerMixin,
    PhasedTrainer,
    load_own_checkpoint,
    with_compat,
)

__all__ = [
    "ColdMetaTrainer",
    "ColdMetaTrainerMixin",
    "PhasedTrainer",
    "load_own_checkpoint",
    "with_compat",
]
