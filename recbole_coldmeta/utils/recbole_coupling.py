"""Every RecBole member this package depends on beyond RecBole's public API, in one table.

:data:`COUPLINGS` lists each private RecBole method we override or call, each private RecBole
attribute we read, and each public attribute whose name our code relies on (the trainer fields
we set when resuming, the metric registry we add to): who defines it,
what signature we expect, which of our modules use it and why. :func:`check_coupling` compares
the table with the installed RecBole, and ``tests/utils/test_recbole_coupling.py`` walks our
source so that the table stays complete: a new override of, or call to, a private RecBole member
fails that test until it has an entry here. Whenever our code touches a RecBole member that is not
part of its public API, add it here, in the same change.

NOTE: this is what the exact ``recbole==1.2.1`` pin stands for. Moving to another RecBole version
starts with ``check_coupling()``: it names every member that moved, vanished or changed signature.
"""

import ast
import enum
import functools
import importlib
import inspect
import textwrap
from dataclasses import dataclass


class Kind(enum.Enum):
    """How our code depends on a RecBole member."""

    #: a method of ours replaces RecBole's (and, unless said otherwise, calls it through super()).
    OVERRIDE = "override"
    #: we call a private RecBole method (or function, for a module owner).
    CALL = "call"
    #: we read, reset or provide an attribute by name (private, or public and read by RecBole).
    ATTRIBUTE = "attribute"


@dataclass(frozen=True)
class Coupling:
    """One RecBole member we depend on.

    Args:
        owner: dotted path of the RecBole class or module that defines the member.
        name: the member's name.
        kind: how we depend on it.
        used_in: the modules of ours that use it (dotted names).
        why: what we need it for.
        signature: for methods, ``str(inspect.signature(...))`` of RecBole's definition; our
            overrides must have the same.
        read_by: dotted paths of RecBole functions that must read the attribute for our
            resetting or providing it to have any effect.
        recbole_sets: the owner's construction sets the attribute (False: we provide it).
    """

    owner: str
    name: str
    kind: Kind
    used_in: tuple
    why: str
    signature: str | None = None
    read_by: tuple = ()
    recbole_sets: bool = True

    @property
    def key(self) -> str:
        """``<owner's last name>.<member>``, e.g. ``Trainer._train_epoch``."""
        return f"{self.owner.rsplit('.', 1)[-1]}.{self.name}"


_CONFIG = "recbole.config.configurator.Config"
_DATASET = "recbole.data.dataset.dataset.Dataset"
_SEQUENTIAL_DATASET = "recbole.data.dataset.sequential_dataset.SequentialDataset"
_DATALOADER = "recbole.data.dataloader.abstract_dataloader.AbstractDataLoader"
_COLLECTOR = "recbole.evaluator.collector.Collector"
_REGISTER = "recbole.evaluator.register"
_ABSTRACT_TRAINER = "recbole.trainer.trainer.AbstractTrainer"
_TRAINER = "recbole.trainer.trainer.Trainer"

_OUR_CONFIG = "recbole_coldmeta.config.configurator"
_OUR_DATASET = "recbole_coldmeta.data.dataset.cold_start_dataset"
_OUR_CDR_DATASET = "recbole_coldmeta.data.dataset.cross_domain_dataset"
_OUR_DATALOADER = "recbole_coldmeta.data.dataloader.task_dataloader"
_OUR_COLLECTOR = "recbole_coldmeta.evaluator.collector"
_OUR_METRICS = "recbole_coldmeta.evaluator.metrics"
_OUR_TRAINER = "recbole_coldmeta.trainer.trainer"
_OUR_PHASED = "recbole_coldmeta.trainer.phased"
_OUR_EPOCH_COST = "recbole_coldmeta.benchmarks.epoch_cost"

#: The table: one entry per RecBole member.
COUPLINGS = (
    # Config: RecBole-GNN's pattern, a subclass that calls super() in each step it extends.
    Coupling(
        _CONFIG, "_load_config_files", Kind.OVERRIDE, (_OUR_CONFIG,),
        "remember which config file set each key, for the unknown-key error",
        signature="(self, file_list)",
    ),
    Coupling(
        _CONFIG, "_merge_external_config_dict", Kind.OVERRIDE, (_OUR_CONFIG,),
        "lift the target_domain block to top level, refusing conflicting values",
        signature="(self)",
    ),
    Coupling(
        _CONFIG, "_load_cmd_line", Kind.OVERRIDE, (_OUR_CONFIG,),
        "read the cmd_args argument instead of sys.argv (no super(): replaced)",
        signature="(self)",
    ),
    Coupling(
        _CONFIG, "_get_model_and_dataset", Kind.OVERRIDE, (_OUR_CONFIG,),
        "look the model up in this package first; default dataset ml-100k",
        signature="(self, model, dataset)",
    ),
    Coupling(
        _CONFIG, "_load_internal_config_dict", Kind.OVERRIDE, (_OUR_CONFIG,),
        "layer our overall/protocol/model/dataset YAMLs above RecBole's",
        signature="(self, model, model_class, dataset)",
    ),
    Coupling(
        _CONFIG, "_set_default_parameters", Kind.OVERRIDE, (_OUR_CONFIG,),
        "drop negatives for CE-loss sequential models and the user filter for cross-domain runs",
        signature="(self)",
    ),
    Coupling(
        _CONFIG, "_init_device", Kind.OVERRIDE, (_OUR_CONFIG,),
        "start data-parallel runs with gloo on CPU (RecBole assumes nccl and CUDA)",
        signature="(self)",
    ),
    Coupling(
        _CONFIG, "_convert_config_dict", Kind.CALL, (_OUR_CONFIG,),
        "turn --key=value strings into values exactly as RecBole's command line does",
        signature="(self, config_dict)",
    ),
    Coupling(
        _CONFIG, "_update_internal_config_dict", Kind.CALL, (_OUR_CONFIG,),
        "load one of our YAML files into the internal layer",
        signature="(self, file)",
    ),
    Coupling(
        _CONFIG, "external_config_dict", Kind.ATTRIBUTE, (_OUR_CONFIG,),
        "files + config_dict + command line: read and extended inside our overrides",
    ),
    Coupling(
        _CONFIG, "internal_config_dict", Kind.ATTRIBUTE, (_OUR_CONFIG,),
        "the properties layer: its keys count as known keys",
    ),
    Coupling(
        _CONFIG, "final_config_dict", Kind.ATTRIBUTE, (_OUR_CONFIG,),
        "the merged config that _set_default_parameters and _init_device adjust",
    ),
    Coupling(
        _CONFIG, "parameters", Kind.ATTRIBUTE, (_OUR_CONFIG,),
        "our dataset YAML keys join the Dataset category, as RecBole's own do",
    ),
    # Datasets: our build() splits, then converts the DataFrames itself.
    Coupling(
        _DATASET, "_change_feat_format", Kind.CALL, (_OUR_DATASET, _OUR_CDR_DATASET),
        "DataFrame -> Interaction after our split rewrote build() (both domains, cross-domain)",
        signature="(self)",
    ),
    Coupling(
        _SEQUENTIAL_DATASET, "_change_feat_format", Kind.CALL, (_OUR_DATASET,),
        "the sequential version also does the prefix augmentation our time-ordered roles follow",
        signature="(self)",
    ),
    # Task dataloader: an AbstractDataLoader subclass, as RecBole's own loaders are.
    Coupling(
        _DATALOADER, "_init_batch_size_and_step", Kind.OVERRIDE, (_OUR_DATALOADER,),
        "one step = task_batch_size tasks (RecBole's abstract method, no super())",
        signature="(self)",
    ),
    Coupling(
        _DATALOADER, "step", Kind.ATTRIBUTE, (_OUR_DATALOADER,),
        "set by our _init_batch_size_and_step; RecBole's __init__ makes it the batch size",
        read_by=(f"{_DATALOADER}.__init__",),
    ),
    Coupling(
        _DATALOADER, "sample_size", Kind.ATTRIBUTE, (_OUR_DATALOADER,),
        "number of tasks, set before super().__init__, which indexes range(sample_size)",
        read_by=(f"{_DATALOADER}.__init__",),
        recbole_sets=False,
    ),
    Coupling(
        _DATALOADER, "generator", Kind.ATTRIBUTE, (_OUR_DATALOADER,),
        "the loader's seeded generator, which our size-bucketed task order draws from",
    ),
    # Evaluation: a Collector subclass and new metrics in RecBole's registry.
    Coupling(
        _COLLECTOR, "register", Kind.ATTRIBUTE, (_OUR_COLLECTOR,),
        "ask whether a metric needs data.user",
    ),
    Coupling(
        _COLLECTOR, "data_struct", Kind.ATTRIBUTE, (_OUR_COLLECTOR,),
        "where data.user is collected",
    ),
    Coupling(
        _REGISTER, "metrics_dict", Kind.ATTRIBUTE, (_OUR_METRICS,),
        "register_metric adds QueryNDCG; the Evaluator builds metrics from this dict",
        read_by=("recbole.evaluator.evaluator.Evaluator.__init__",),
    ),
    Coupling(
        _REGISTER, "metric_information", Kind.ATTRIBUTE, (_OUR_METRICS,),
        "register_metric adds QueryNDCG's needs; Register reads them",
        read_by=("recbole.evaluator.register.Register._build_register",),
    ),
    Coupling(
        _REGISTER, "metric_types", Kind.ATTRIBUTE, (_OUR_METRICS,),
        "register_metric adds QueryNDCG's type; Config derives eval_type from it",
        read_by=(f"{_CONFIG}._set_default_parameters",),
    ),
    Coupling(
        _REGISTER, "smaller_metrics", Kind.ATTRIBUTE, (_OUR_METRICS,),
        "register_metric adds smaller-is-better metrics; Config derives valid_metric_bigger",
        read_by=(f"{_CONFIG}._set_default_parameters",),
    ),
    # Trainer: the mixin in front of any RecBole trainer, PhasedTrainer's per-phase trainers.
    Coupling(
        _TRAINER, "_train_epoch", Kind.OVERRIDE, (_OUR_TRAINER, _OUR_EPOCH_COST),
        "call the model's on_epoch_start hook first; the epoch-cost benchmark times it",
        signature="(self, train_data, epoch_idx, loss_func=None, show_progress=False)",
    ),
    Coupling(
        _TRAINER, "_valid_epoch", Kind.CALL, (_OUR_TRAINER,),
        "StatisticTrainer: one validation evaluation per candidate setting",
        signature="(self, valid_data, show_progress=False)",
    ),
    Coupling(
        _TRAINER, "_save_checkpoint", Kind.OVERRIDE, (_OUR_TRAINER,),
        "write each checkpoint to a temporary name (its saved_model_file keyword), then rename; "
        "StatisticTrainer saves its selected setting through it as RecBole saves a best epoch",
        signature="(self, epoch, verbose=True, **kwargs)",
    ),
    Coupling(
        _TRAINER, "_build_optimizer", Kind.OVERRIDE, (_OUR_PHASED,),
        "PhaseTrainer: RecBole's own __init__ builds the optimizer over the phase's parameters",
        signature="(self, **kwargs)",
    ),
    Coupling(
        _TRAINER, "start_epoch", Kind.ATTRIBUTE, (_OUR_TRAINER,),
        "set when resuming",
        read_by=(f"{_TRAINER}.fit",),
    ),
    Coupling(
        _TRAINER, "cur_step", Kind.ATTRIBUTE, (_OUR_TRAINER,),
        "early-stopping counter: set when resuming",
        read_by=(f"{_TRAINER}.fit", f"{_TRAINER}._save_checkpoint"),
    ),
    Coupling(
        _TRAINER, "best_valid_score", Kind.ATTRIBUTE, (_OUR_TRAINER,),
        "set when resuming",
        read_by=(f"{_TRAINER}.fit", f"{_TRAINER}._save_checkpoint"),
    ),
    Coupling(
        _TRAINER, "best_valid_result", Kind.ATTRIBUTE, (_OUR_TRAINER,),
        "saved in the last-epoch checkpoint and set when resuming: fit returns it",
        read_by=(f"{_TRAINER}.fit",),
    ),
    Coupling(
        _TRAINER, "optimizer", Kind.ATTRIBUTE, (_OUR_TRAINER,),
        "restored when resuming",
        read_by=(f"{_TRAINER}._train_epoch", f"{_TRAINER}._save_checkpoint"),
    ),
    Coupling(
        _TRAINER, "eval_collector", Kind.ATTRIBUTE, (_OUR_TRAINER,),
        "replaced by our ColdCollector",
        read_by=(f"{_TRAINER}.fit", f"{_TRAINER}.evaluate"),
    ),
    Coupling(
        _TRAINER, "saved_model_file", Kind.ATTRIBUTE, (_OUR_TRAINER,),
        "made unique per run; one checkpoint file per phase",
        read_by=(f"{_TRAINER}._save_checkpoint",),
    ),
    Coupling(
        _ABSTRACT_TRAINER, "distributed_model", Kind.ATTRIBUTE, (_OUR_TRAINER,),
        "our CPU (gloo) DistributedDataParallel wrap, used by RecBole's gradient sync",
        read_by=(f"{_ABSTRACT_TRAINER}.set_reduce_hook",),
    ),
)  # fmt: skip


def resolve(dotted: str):
    """The object a dotted path names: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for part in parts[split:]:
            target = getattr(target, part)
        return target
    raise ModuleNotFoundError(f"No module in {dotted!r} can be imported.")


def _self_attributes(function, ctx):
    """Names ``x`` of every ``self.x`` that ``function``'s source uses in context ``ctx``."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
        and isinstance(node.ctx, ctx)
    }


@functools.cache
def attributes_set_on_construction(recbole_class) -> set:
    """Names of the ``self.x`` that ``recbole_class``'s construction assigns.

    Reads the source of every RecBole ``__init__`` in the class's MRO and of every method they
    reach through ``self.method(...)``, transitively.
    """
    todo = [
        vars(k)["__init__"]
        for k in recbole_class.__mro__
        if k.__module__.startswith("recbole.") and "__init__" in vars(k)
    ]
    seen, names = set(), set()
    while todo:
        function = todo.pop()
        if function in seen:
            continue
        seen.add(function)
        names |= _self_attributes(function, ast.Store)
        for used in _self_attributes(function, ast.Load):
            method = inspect.getattr_static(recbole_class, used, None)
            if inspect.isfunction(method) and method.__module__.startswith("recbole."):
                todo.append(method)
    return names


def _reads(function, name) -> bool:
    """Whether ``function``'s source reads ``name`` (as a variable or an attribute)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    return any(
        isinstance(node, ast.Name | ast.Attribute)
        and (node.id if isinstance(node, ast.Name) else node.attr) == name
        and isinstance(node.ctx, ast.Load)
        for node in ast.walk(tree)
    )


def _signature(function) -> str:
    return str(inspect.signature(function))


def check_entry(entry: Coupling) -> list:
    """Problems of one entry against the installed RecBole (an empty list when it holds)."""
    try:
        owner = resolve(entry.owner)
    except (ImportError, AttributeError) as error:
        return [f"{entry.key}: owner {entry.owner} not found ({error})"]
    where = f"{entry.owner}.{entry.name}"
    if entry.kind is Kind.ATTRIBUTE:
        problems = []
        if entry.recbole_sets:
            if inspect.ismodule(owner):
                defined = hasattr(owner, entry.name)
            else:
                defined = entry.name in attributes_set_on_construction(owner)
            if not defined:
                problems.append(f"{where}: no longer set by RecBole")
        for reader in entry.read_by:
            try:
                function = resolve(reader)
            except (ImportError, AttributeError):
                problems.append(f"{where}: its reader {reader} no longer exists")
                continue
            if not _reads(function, entry.name):
                problems.append(f"{where}: {reader} no longer reads it")
        return problems
    if entry.name not in vars(owner) or not callable(getattr(owner, entry.name)):
        return [f"{where}: no longer defined there"]
    member = getattr(owner, entry.name)
    problems = []
    if _signature(member) != entry.signature:
        problems.append(f"{where}: signature is {_signature(member)}, expected {entry.signature}")
    if entry.kind is Kind.OVERRIDE and inspect.isclass(owner):
        module = inspect.getmodule(owner)
        for subclass in vars(module).values():
            redefined = inspect.isclass(subclass) and entry.name in vars(subclass)
            if redefined and subclass is not owner and issubclass(subclass, owner):
                if _signature(vars(subclass)[entry.name]) != entry.signature:
                    problems.append(
                        f"{subclass.__module__}.{subclass.__qualname__}.{entry.name}: signature "
                        f"is {_signature(vars(subclass)[entry.name])}, expected {entry.signature}"
                    )
    return problems


def check_coupling() -> list:
    """Every problem of :data:`COUPLINGS` against the installed RecBole, one line each.

    A problem is a member that is gone (or moved to another class), a method whose signature
    changed, an attribute RecBole no longer sets, or one that a RecBole function we rely on no
    longer reads. For overrides, RecBole's subclasses in the owner's module that redefine the
    method must match too: our trainer mixin sits in front of any RecBole trainer.
    """
    return [problem for entry in COUPLINGS for problem in check_entry(entry)]
