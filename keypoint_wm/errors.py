"""The package's error model: which failures are the user's and how the CLI reports them.

Every error a user can cause and fix (a bad flag value, a bad or missing file, a run that
cannot continue) is a :class:`KeypointWMError`. The command line prints its message on one
line, without a traceback, and exits with its :attr:`~KeypointWMError.exit_code`:

- ``2`` (:class:`UsageError`): a flag or ``--set`` value is malformed or inconsistent;
- ``1`` (:class:`DataError`, :class:`RunError`): the input data or a run directory is bad or
  missing, or a run failed (non-finite loss, mismatched resume).

Anything else is a bug: the CLI lets its traceback through.

This module sits at the bottom of the layers (docs/design.md, "Layers") and imports nothing.

>>> error = DataError("data/x/ep.npz: 'image' must be uint8, got float32")
>>> (error.exit_code, str(error))
(1, "data/x/ep.npz: 'image' must be uint8, got float32")
"""

from __future__ import annotations


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
