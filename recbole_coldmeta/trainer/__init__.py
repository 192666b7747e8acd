from recbole_coldmeta.trainer.trainer import (
    ColdMetaTrainer,
    CompatTrainerMixin,
    load_own_checkpoint,
    with_compat,
)

__all__ = ["ColdMetaTrainer", "CompatTrainerMixin", "load_own_checkpoint", "with_compat"]
