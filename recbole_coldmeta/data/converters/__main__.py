"""Command line: ``python -m recbole_coldmeta.data.converters NAME --raw_dir=DIR --out_dir=DIR``.

One sub-command per registered converter (:data:`recbole_coldmeta.data.converters.CONVERTERS`).
"""

import argparse
import sys

from recbole_coldmeta.data.converters import (
    CONVERTERS,
    RAW_DATA_ENV,
    default_raw_dir,
    run_converter_cli,
)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m recbole_coldmeta.data.converters",
        description="Convert a raw public dataset into RecBole atomic files.",
    )
    subparsers = parser.add_subparsers(dest="dataset", required=True, metavar="DATASET")
    for name, converter in CONVERTERS.items():
        subparser = subparsers.add_parser(name, help=converter.description)
        subparser.add_argument(
            "--raw_dir",
            default=None,
            help=f"folder with the raw files (default: ${RAW_DATA_ENV}/{converter.raw_folder}, "
            f"else ../shared/datasets/{converter.raw_folder})",
        )
        subparser.add_argument(
            "--out_dir",
            default="dataset",
            help="RecBole data_path to write <out_dir>/<name>/ into (default: dataset)",
        )
        subparser.add_argument(
            "--name", default=name, help=f"dataset name of the atomic files (default: {name})"
        )
        subparser.add_argument(
            "--no_verify",
            action="store_true",
            help="skip the sha256 and row-count checks against PROVENANCE.md (other copies)",
        )
    return parser


def main(argv=None):
    """Run one converter; return the process exit code (0 on success, 2 on a data error)."""
    args = build_parser().parse_args(argv)
    raw_dir = args.raw_dir if args.raw_dir is not None else default_raw_dir(args.dataset)
    return run_converter_cli(
        CONVERTERS[args.dataset].convert,
        raw_dir,
        args.out_dir,
        name=args.name,
        verify=not args.no_verify,
    )


if __name__ == "__main__":
    sys.exit(main())
