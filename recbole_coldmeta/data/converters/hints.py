"""The fix a converter error suggests, naming the flag of each entry point that converts.

A run (``run_recbole_coldmeta.py``) converts a registered dataset on first use and reads the
folder *holding* the raw dataset folders from ``--raw_data_path``; the converter command line
(``python -m recbole_coldmeta.data.converters NAME``) reads the raw folder itself from
``--raw_dir``.
"""


def raw_folder_fix(raw_folder, holding):
    """The ``Fix:`` sentence of a missing-raw-file error.

    Args:
        raw_folder (str): the raw folder's name, e.g. ``movielens-1m``.
        holding (str): what the folder holds, e.g. ``users.dat, movies.dat, ...``.
    """
    return (
        f"Fix: put the {raw_folder} folder (with {holding}) in one folder and pass that as "
        f"--raw_data_path=DIR to run_recbole_coldmeta.py, or pass the {raw_folder} folder itself "
        f"as --raw_dir=DIR to python -m recbole_coldmeta.data.converters (default: "
        f"$COLDMETA_RAW_DATA/{raw_folder}, else ../shared/datasets/{raw_folder})."
    )


#: The fix of a raw file that is not the copy PROVENANCE.md describes.
MISMATCH_FIX = (
    "Fix: re-copy the raw file; to convert a different copy at your own risk, run "
    "python -m recbole_coldmeta.data.converters NAME --no_verify (verify=False in Python)."
)
