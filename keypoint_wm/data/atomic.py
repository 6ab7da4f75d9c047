"""Atomic writes (docs/design.md, "Atomic writes"): a reader never sees a partial file.

Every file the package writes whole (episodes, configs, manifests, records, reports) goes
through :func:`atomic_write_bytes`: written to a hidden temporary name beside it (ending in
:data:`TEMP_SUFFIX`, never in ``.npz``), fsynced, renamed into place.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["TEMP_SUFFIX", "atomic_write_bytes", "atomic_write_json"]

TEMP_SUFFIX = ".tmp"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader never sees a partial file.

    The bytes go to a hidden temporary name beside ``path`` (never ending in ``.npz``), are
    fsynced, and the file is renamed into place; the directory is fsynced afterwards. A
    failure to write (a full disk, a read-only folder) is an :class:`OSError` naming
    ``path``, with the old file, if any, untouched.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as error:  # named for the file asked for, not its temporary name
        raise OSError(error.errno, error.strerror, str(path)) from error
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


def atomic_write_json(path: str | os.PathLike, payload: Any, sort_keys: bool = False) -> None:
    """Write ``payload`` as indented JSON (and a final newline) with :func:`atomic_write_bytes`:
    every JSON file the package writes (configs, manifests, records, reports) goes through
    here."""
    text = json.dumps(payload, indent=2, sort_keys=sort_keys) + "\n"
    atomic_write_bytes(path, text.encode())


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
