"""Several ``evaluate agents`` processes sharing one ``--out``: each unit is claimed first.

A process claims a unit by holding an exclusive lock on
``OUT/units/<task>/<variant>-seed<s>.claim`` while it trains the unit
(:func:`keypoint_wm.claims.claim`); another process that finds the lock taken skips that
unit and goes on with the next. So on a machine with more cores than one agent uses, start
the same command once per core and the units spread over the processes; each result is
still written once, by its claimant. A killed process leaves no claim behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from keypoint_wm.claims import claim
from keypoint_wm.envs.agents.config import Unit

__all__ = ["claim_path", "claimed"]


def claim_path(unit: Unit, out: str | Path) -> Path:
    """``OUT/units/<task>/<variant>-seed<seed>.claim``."""
    return unit.path(out).with_suffix(".claim")


@contextmanager
def claimed(unit: Unit, out: str | Path) -> Iterator[str | None]:
    """Claim ``unit`` for this process for the ``with`` block: None when it is this
    process's, else a description of the process that holds it."""
    with claim(claim_path(unit, out)) as holder:
        yield holder
