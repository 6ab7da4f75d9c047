"""The package's error model: which failures are the user's and how the CLI reports them.

Every error a user can cause and fix (a bad flag value, a bad or missing file, a run that
cannot continue) is a :class:`KeypointWMError`. The command line prints its message on one
line, without a traceback, and exits with its :attr:`~KeypointWMError.exit_code`:

- ``2`` (:class:`UsageError`): a flag or ``--set`` value is malformed or inconsistent;
- ``1`` (:class:`DataError`, :class:`RunError`): the input data or a run directory is bad or
  missing, or a run failed (non-finite loss, mismatched resume).

Anything else is a bug: the CLI lets its traceback through.

A full disk, a read-only mount or a missing permission is the user's to fix too: wherever a
command writes, such an :class:`OSError` ends in one line that names the path and the cause in
words (:func:`storage_cause`), never in a traceback or a library's own wording.

This module sits at the bottom of the layers (docs/design.md, "Layers") and imports nothing
of the package.

>>> error = DataError("data/x/ep.npz: 'image' must be uint8, got float32")
>>> (error.exit_code, str(error))
(1, "data/x/ep.npz: 'image' must be uint8, got float32")
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

STORAGE_CAUSES = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}
"""The storage faults a user can fix, by ``errno``, in the words the CLI prints."""

STORAGE_REMEDIES = {
    errno.ENOSPC: "once there is room",
    errno.EDQUOT: "once there is room within the quota",
    errno.EROFS: "once the file system is writable again",
    errno.EACCES: "once you may write there",
    errno.EPERM: "once you may write there",
}
"""When the work can go on after each storage fault of :data:`STORAGE_CAUSES`, in words."""


class KeypointWMError(Exception):
    """A failure the user can fix; the message names the flag or file and what was expected."""

    exit_code: int = 1


class UsageError(KeypointWMError, ValueError):
    """A flag or ``--set`` value is malformed or inconsistent (exit code 2)."""

    exit_code = 2


class DataError(KeypointWMError):
    """An input file or dataset is missing, unreadable or malformed (exit code 1)."""

    exit_code = 1


class Stopped(KeypointWMError):
    """A command stopped on request (SIGINT, SIGTERM) after saving its work; the message
    says how to continue. Exit code 128 + the signal's number (130, 143), as a shell's."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


class RunError(KeypointWMError):
    """A run cannot start or continue: a mismatched resume, a non-finite loss (exit code 1)."""

    exit_code = 1


def storage_cause(error: BaseException) -> str | None:
    """The storage fault behind ``error`` in words (:data:`STORAGE_CAUSES`), or None when
    ``error`` is not an :class:`OSError` of one.

    >>> storage_cause(OSError(errno.ENOSPC, "No space left on device", "run/ckpt"))
    'no space left on the device'
    >>> storage_cause(OSError(errno.EINVAL, "Invalid argument")) is None
    True
    """
    if isinstance(error, OSError):
        return STORAGE_CAUSES.get(error.errno or 0)
    return None


def storage_remedy(error: BaseException) -> str:
    """When the work that ``error`` stopped can go on, in words that fit its cause
    (:data:`STORAGE_REMEDIES`; a generic one for other errors).

    >>> storage_remedy(OSError(errno.EROFS, "Read-only file system", "run/ckpt"))
    'once the file system is writable again'
    >>> storage_remedy(OSError(errno.ENOSPC, "No space left on device"))
    'once there is room'
    """
    if isinstance(error, OSError) and error.errno in STORAGE_REMEDIES:
        return STORAGE_REMEDIES[error.errno]
    return "once the cause is fixed"


def not_found(path: str | os.PathLike[str]) -> str:
    """Why ``path`` is not there, in words for a message: ``"does not exist"``, or, for a
    symbolic link that leads nowhere, where it leads.

    >>> not_found("no/such/folder")
    'does not exist'
    """
    link = Path(path)
    if not link.is_symlink():
        return "does not exist"
    try:
        link.resolve(strict=True)
    except FileNotFoundError:
        return f"is a symbolic link to {os.readlink(link)}, which does not exist"
    except (RuntimeError, OSError):  # Python 3.11 reports a loop as RuntimeError
        return "is a symbolic link that loops back on itself"
    return "does not exist"
