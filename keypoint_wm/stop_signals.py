"""Stopping a long command cleanly on SIGINT (Ctrl-C) or SIGTERM (a scheduler's stop).

Inside :func:`stop_requests`, the first SIGINT or SIGTERM does not interrupt the work where
it stands (half-way through an optimiser step, say): it is recorded, and the work asks
:attr:`StopRequest.signum` at a point where it can save, saves, and raises
:class:`~keypoint_wm.errors.Stopped` with how to continue. A second signal of either kind
stops at once (``KeyboardInterrupt``), for a user who will not wait. Outside the main
thread (where Python delivers signals) the handlers are not installed and nothing changes.

>>> import os, signal
>>> with stop_requests() as stop:
...     os.kill(os.getpid(), signal.SIGTERM)
...     stop.signum == signal.SIGTERM, stop.name
(True, 'SIGTERM')
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = ["StopRequest", "stop_requests"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class StopRequest:
    """The first stop signal received inside :func:`stop_requests`, or None."""

    signum: int | None = None

    @property
    def name(self) -> str:
        return "" if self.signum is None else signal.Signals(self.signum).name


@contextmanager
def stop_requests() -> Iterator[StopRequest]:
    """Record SIGINT / SIGTERM in the yielded :class:`StopRequest` (module docstring)."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}

    def handler(signum: int, frame: Any) -> None:
        if request.signum is not None:  # the second one: stop now
            raise KeyboardInterrupt
        request.signum = signum

    for sig in SIGNALS:
        signal.signal(sig, handler)
    try:
        yield request
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
