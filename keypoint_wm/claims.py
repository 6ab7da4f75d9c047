"""Several processes sharing one output folder: each piece of work is claimed first.

A process claims a piece of work by holding an exclusive lock (``flock``) on a claim file
while it does it; another process that finds the lock taken skips that piece and goes on
with the next. ``evaluate agents`` claims its units this way
(:mod:`keypoint_wm.envs.agents.claims`), and so does ``keypoint-wm reproduce``.

The operating system drops the lock when its process dies, however it dies, so a killed
run leaves no claim behind that would have to be cleared by hand. The file holds the
claimant's host and pid, for the message of the process that skips it. Without ``fcntl``
(Windows), or on a file system without ``flock``, every claim succeeds.

>>> import tempfile
>>> from pathlib import Path
>>> path = Path(tempfile.mkdtemp()) / "unit.claim"
>>> with claim(path) as holder:
...     holder is None, path.exists()
(True, True)
>>> path.exists()  # released and removed on exit
False
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["claim", "claimed_by"]


def _holder(path: Path, tries: int = 20) -> str:
    """Who holds the claim ``path``, from its note. A holder that has just taken the lock
    writes its note a moment later (two processes started together): read again, briefly."""
    for attempt in range(tries):
        try:
            holder = json.loads(path.read_text())
            return f"pid {int(holder['pid'])} on {holder['host']} ({path})"
        except (OSError, ValueError, KeyError, TypeError):
            if attempt + 1 < tries:
                time.sleep(0.01)
    return f"another process ({path})"


def _lock(path: Path) -> int | None:
    """An open descriptor of ``path`` locked by this process, or None if another holds it."""
    while True:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError:  # no flock on this file system: nothing to coordinate with
            return fd
        try:  # the previous holder may have removed the file between open and lock
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


@contextmanager
def claim(path: str | Path) -> Iterator[str | None]:
    """Claim the work behind the claim file ``path`` for the ``with`` block.

    Yields None when the claim is this process's (released on exit, whatever happens), or
    a description of the process that holds it (then nothing is claimed).
    """
    if fcntl is None:  # pragma: no cover - Windows
        yield None
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _lock(path)
    if fd is None:
        yield _holder(path)
        return
    try:
        os.ftruncate(fd, 0)
        try:  # who holds it, for the message a second writer meets
            os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid()}).encode())
        except OSError:  # a full disk: the lock holds without the note (the work says why)
            pass
        yield None
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


def claimed_by(path: str | Path) -> str | None:
    """Who holds the claim ``path`` now (as :func:`claim` describes a holder), or None when
    nobody does. Looks only: takes the lock for an instant when it is free, never creates
    or removes the file."""
    if fcntl is None:  # pragma: no cover - Windows
        return None
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder(Path(path))
    except OSError:  # no flock on this file system: nothing to tell
        return None
    finally:
        os.close(fd)  # closing drops a lock this process took
    return None
