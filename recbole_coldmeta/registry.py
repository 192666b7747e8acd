"""Model and trainer lookups: recbole_coldmeta first, RecBole's built-ins otherwise (the
RecBole-GNN pattern). Above the model and trainer layers: it finds their classes by name."""

import difflib
import functools
import importlib
import importlib.util
import pkgutil

from recbole.utils import get_model as recbole_get_model
from recbole.utils import get_trainer as recbole_get_trainer

from recbole_coldmeta.utils import ConfigError

#: Sub-packages of ``recbole_coldmeta.model`` searched for a model module named ``<model>.lower()``.
MODEL_FAMILIES = (
    "cold_start_recommender",
    "cross_domain_recommender",
    "sequential_recommender",
)

#: Sub-packages of ``recbole.model`` (RecBole 1.2) that hold its built-in models.
RECBOLE_MODEL_FAMILIES = (
    "general_recommender",
    "context_aware_recommender",
    "sequential_recommender",
    "knowledge_aware_recommender",
    "exlib_recommender",
)


def _module_names(package_name: str) -> list:
    """Module names inside a package, found on disk without importing the package.

    NOTE: importing ``recbole.model.exlib_recommender`` imports lightgbm and xgboost, which are
    optional; listing the folder keeps model lookup working without them.
    """
    spec = importlib.util.find_spec(package_name)
    folders = list(spec.submodule_search_locations or [])
    return [info.name for info in pkgutil.iter_modules(folders) if not info.ispkg]


def _find_plugin_model(model_name: str):
    for family in MODEL_FAMILIES:
        module_path = f"recbole_coldmeta.model.{family}.{model_name.lower()}"
        if importlib.util.find_spec(module_path) is not None:
            module = importlib.import_module(module_path)
            if hasattr(module, model_name):
                return getattr(module, model_name)
    return None


@functools.cache
def plugin_model_names() -> tuple:
    """Class names of every model this package defines, sorted."""
    names = []
    for family in MODEL_FAMILIES:
        for module_name in _module_names(f"recbole_coldmeta.model.{family}"):
            module = importlib.import_module(f"recbole_coldmeta.model.{family}.{module_name}")
            names += [n for n in vars(module) if n.lower() == module_name]
    return tuple(sorted(names))


@functools.cache
def recbole_model_module_names() -> tuple:
    """Lower-case module names of RecBole's built-in models (one model per module)."""
    names = []
    for family in RECBOLE_MODEL_FAMILIES:
        names += _module_names(f"recbole.model.{family}")
    return tuple(sorted(set(names)))


def _spelling_hint(model_name: str) -> str:
    lowered = model_name.lower()
    plugin_by_lower = {name.lower(): name for name in plugin_model_names()}
    if lowered in plugin_by_lower:
        return f" Did you mean '{plugin_by_lower[lowered]}'? Model names are case-sensitive."
    if lowered in recbole_model_module_names():
        for family in RECBOLE_MODEL_FAMILIES:
            try:
                module = importlib.import_module(f"recbole.model.{family}.{lowered}")
            except ImportError:
                continue
            for name in vars(module):
                if name.lower() == lowered:
                    return f" Did you mean '{name}'? Model names are case-sensitive."
    close = difflib.get_close_matches(
        lowered, list(plugin_by_lower) + list(recbole_model_module_names()), n=3, cutoff=0.6
    )
    if close:
        return f" Close names (lower-cased): {', '.join(close)}."
    return ""


def get_model(model_name):
    """Return the model class called ``model_name``: ours first, then RecBole's built-ins.

    Raises:
        ConfigError: no such model; the message lists our models and how to find RecBole's.
    """
    if not isinstance(model_name, str):
        return model_name
    model_class = _find_plugin_model(model_name)
    if model_class is not None:
        return model_class
    if model_name.lower() in recbole_model_module_names():
        try:
            return recbole_get_model(model_name)
        except ModuleNotFoundError as error:
            raise ConfigError(
                f"Model '{model_name}' needs the optional package '{error.name}': "
                f"pip install {error.name}"
            ) from None
        except AttributeError:
            pass
    raise ConfigError(
        f"Unknown model '{model_name}'.{_spelling_hint(model_name)} "
        f"recbole_coldmeta models: {', '.join(plugin_model_names()) or 'none'}; any RecBole 1.2 "
        f"model also works (e.g. BPR, NeuMF, DeepFM, SASRec)."
    )


def get_trainer(model_type, model_name):
    """Return the trainer class for a model: ours first, then RecBole's.

    Ours is the trainer a model class names in its ``trainer`` attribute (e.g. the cross-domain
    models' ``PhasedTrainer``), or, by RecBole's convention, ``<model_name>Trainer`` in
    ``recbole_coldmeta.trainer``; otherwise RecBole's choice is returned with
    :class:`~recbole_coldmeta.trainer.ColdMetaTrainerMixin` in front (checkpoint reload on
    torch >= 2.6, per-user metrics, the model's epoch hook).
    """
    trainer_module = importlib.import_module("recbole_coldmeta.trainer")
    named = getattr(_find_plugin_model(model_name), "trainer", None)
    if named is not None:
        return getattr(trainer_module, named)
    if hasattr(trainer_module, model_name + "Trainer"):
        return getattr(trainer_module, model_name + "Trainer")
    return trainer_module.with_compat(recbole_get_trainer(model_type, model_name))
