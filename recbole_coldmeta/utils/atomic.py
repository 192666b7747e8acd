"""Output files: checked writable before any work starts, written whole or not at all.

Every file the package writes for the user (result JSON, tuning outputs, benchmark tables,
checkpoints) goes through :func:`atomic_path`: it is written under a temporary name in the same
folder and renamed over the target (``os.replace``, atomic on one file system), so a run killed
mid-write leaves the previous file or none, never half of one. Ground floor: imports nothing of
ours but the errors.
"""

import contextlib
import os
import tempfile

from recbole_coldmeta.utils.errors import ConfigError


@contextlib.contextmanager
def atomic_path(path):
    """A temporary name beside ``path`` to write to; renamed to ``path`` on a clean exit.

    Nothing is renamed when the block raises, or when it wrote nothing (a process that skips a
    write, e.g. a non-zero rank); the temporary file is removed in both cases.

    Yields:
        str: the temporary file's path (in ``path``'s folder, so the rename stays on one disk).
    """
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(
        dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp"
    )
    os.close(handle)
    os.remove(temporary)  # the writer creates it (torch.save, savefig and open all do)
    try:
        yield temporary
        if os.path.exists(temporary):
            os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def atomic_write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_path`."""
    with atomic_path(path) as temporary:
        with open(temporary, "w", encoding="utf-8", newline="") as f:
            f.write(text)


def check_writable_file(path, what):
    """Fail now, not after training, when ``path`` cannot be written.

    Creates the missing parent folders (as the writer would have to) and writes and removes a
    probe file beside ``path``; an existing ``path`` is left untouched.

    Args:
        path: the file that will be written.
        what: how the user named it, e.g. ``--result_file``.

    Raises:
        ConfigError: ``path`` is a folder, or its folder cannot be created or written.
    """
    if os.path.isdir(path):
        raise ConfigError(
            f"{what}={path} is a folder; give a file path inside it, e.g. "
            f"{what}={os.path.join(path, 'result.json')}."
        )
    check_writable_dir(os.path.dirname(os.path.abspath(path)), what, shown=path)


def check_writable_dir(folder, what, shown=None):
    """Fail now when ``folder`` cannot be created, or files cannot be written inside it.

    Args:
        folder: the folder (created if missing, as the writer would create it).
        what: how the user named it, e.g. ``checkpoint_dir``.
        shown: the value the user gave, when it is not ``folder`` itself.

    Raises:
        ConfigError: naming ``what``, the value, the reason and the fix.
    """
    shown = folder if shown is None else shown
    existing = os.path.abspath(folder)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ConfigError(
            f"{what}={shown} cannot be written: {existing} is a file, not a folder; choose a "
            f"path in a folder you can write to."
        )
    try:
        os.makedirs(folder, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".write-probe-")
        os.close(handle)
        os.remove(probe)
    except OSError as error:
        raise ConfigError(
            f"{what}={shown} cannot be written ({error.strerror or error}: "
            f"{error.filename or folder}); choose a path in a folder you can write to."
        ) from None
