from recbole_coldmeta.trainer.trainer import (
    ColdMetaTrainer,
    ColdMetaTrainerMixin,
    CrossDomainTrainer,
    load_own_checkpoint,
    with_compat,
)

__all__ = [
    "ColdMetaTrainer",
    "ColdMetaTrainerMixin",
    "CrossDomainTrainer",
    "load_own_checkpoint",
    "with_compat",
]
