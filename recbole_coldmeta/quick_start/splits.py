"""Export a run's split manifest, and audit any manifest (:mod:`recbole_coldmeta.data.manifest`).

::

    python -m recbole_coldmeta.quick_start.splits export --model=BPR --dataset=ml-100k \
        --seed=2020 --output=split.csv.gz
    python -m recbole_coldmeta.quick_start.splits audit split.csv.gz [--dataset=ml-100k]

``export`` builds the split a run of ``--model`` with these config keys (any ``--key=value``)
would train and test on, and writes its manifest; nothing is trained. ``audit`` checks a manifest
on its own (rules, no query pair in training data, item-cold states' test items absent from the
meta-train rows) and prints its counts; with ``--dataset`` it also builds that dataset's split
from the manifest (``split_file``) and checks that no valid/test query row is in RecBole's train
split. On success the counts are printed and the exit code is 0; a problem is one line
``error: ...`` on stderr and exit code 2.

NOTE: the command lives here, not in ``data.manifest``: it builds a Config, and the data layer
does not import the config layer.
"""

import argparse
import json
import sys

from recbole.utils import ModelType

from recbole_coldmeta.data import create_dataset
from recbole_coldmeta.data.manifest import audit, read_manifest
from recbole_coldmeta.quick_start.cli import user_facing_streams
from recbole_coldmeta.quick_start.quick_start import build_config
from recbole_coldmeta.utils import ColdMetaError, DataError
from recbole_coldmeta.utils.atomic import check_writable_file


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m recbole_coldmeta.quick_start.splits",
        description="Export a run's split manifest, or audit a manifest.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser(
        "export", help="write the manifest of the split a run would use (any --key=value)"
    )
    export.add_argument("--model", required=True, help="the model whose run's split is exported")
    export.add_argument("--dataset", default=None, help="dataset name (default: ml-100k)")
    export.add_argument("--config_files", default=None, help="config files, spaces or commas")
    export.add_argument("--output", required=True, help="the manifest to write (.split.csv.gz)")
    check = commands.add_parser("audit", help="check a manifest and print its counts")
    check.add_argument("manifest", help="a manifest, or a CSV of user,item,role")
    check.add_argument("--dataset", default=None, help="also check it against this dataset")
    check.add_argument(
        "--model", default="BPR", help="with --dataset: the model whose dataset class builds it"
    )
    check.add_argument("--config_files", default=None, help="with --dataset: config files")
    check.add_argument(
        "--item_cold",
        choices=("True", "False"),
        default=None,
        help="test query items must be new items (default: as the header says; False without)",
    )
    check.add_argument(
        "--by_state",
        choices=("True", "False"),
        default=None,
        help="a split by state: test users may have meta-train rows (default: as the header "
        "says; False without)",
    )
    return parser


def export_manifest(model, dataset, output, config_file_list=None, cmd_args=None):
    """Build the split of a run of ``model`` on ``dataset`` and write its manifest to ``output``.

    Returns:
        SplitManifest: the manifest written.
    """
    check_writable_file(output, "--output")
    config = build_config(model, dataset, config_file_list, cmd_args=cmd_args)
    data = create_dataset(config)
    data.build()
    data.split_manifest.write(output)
    return data.split_manifest


def audit_against_dataset(path, model, dataset, config_file_list=None, cmd_args=None):
    """Build ``dataset``'s split from the manifest at ``path``; check that no query pair of a
    valid/test user is in RecBole's train split.

    Returns:
        dict: ``train_rows``, ``valid_rows``, ``test_rows`` of the built split.

    Raises:
        DataError: a query pair in the train split (or any problem the manifest has with the
            dataset: :func:`~recbole_coldmeta.data.manifest.split_file_roles`).
    """
    args = [*(cmd_args or []), f"--split_file={path}"]
    config = build_config(model, dataset, config_file_list, cmd_args=args)
    data = create_dataset(config)
    parts = data.build()
    n_items = data.item_num

    def pairs(part):
        rows = part.inter_feat
        return set((rows[data.uid_field].numpy() * n_items + rows[data.iid_field].numpy()).tolist())

    leaked = (pairs(parts[1]) | pairs(parts[2])) & pairs(parts[0])  # valid/test: query rows only
    if leaked and config["MODEL_TYPE"] != ModelType.SEQUENTIAL:
        raise DataError(
            f"{path}: {len(leaked)} query (user, item) pairs of {dataset} are also in its train "
            f"split."
        )
    return {f"{name}_rows": len(part) for name, part in zip(("train", "valid", "test"), parts)}


def main(argv=None):
    """Run ``export`` or ``audit``; return the exit code (0, or 2 on a problem)."""
    args, overrides = build_parser().parse_known_args(argv)
    config_files = args.config_files.replace(",", " ").split() if args.config_files else None
    try:
        with user_facing_streams():
            report = _report(args, config_files, overrides)
    except ColdMetaError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 2
    print(json.dumps(report, indent=1), flush=True)
    return 0


def _report(args, config_files, overrides):
    if args.command == "export":
        manifest = export_manifest(args.model, args.dataset, args.output, config_files, overrides)
        return {"output": args.output, **manifest.counts(), "sha256": manifest.sha256}
    flags = {
        name: None if value is None else value == "True"
        for name, value in (("by_state", args.by_state), ("item_cold", args.item_cold))
    }
    report = audit(read_manifest(args.manifest, "manifest"), **flags)
    if args.dataset is not None:
        report["dataset"] = audit_against_dataset(
            args.manifest, args.model, args.dataset, config_files, overrides
        )
    return report


if __name__ == "__main__":
    sys.exit(main())
