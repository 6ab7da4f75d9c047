"""``keypoint-wm reproduce NAME --status``: where a long protocol stands, without running it.

One line per unit, in protocol order: ``recorded`` (a current record: its wall time, when it
finished and on what machine), ``running`` (another process holds its claim in ``--out``:
which one), ``to run`` (a result unit without a current record), and for the datasets and
models the protocol makes, ``made`` or ``to make`` (they are re-made whenever a unit that
needs them runs; their record tells what was made). A unit whose record is no longer current
(made by another command, or from artifacts since re-made) counts as ``to run``.

>>> from keypoint_wm.reproduce.protocol import Protocol, Unit
>>> p = Protocol("p", "", {}, (Unit("data", ("data",), kind="artifact"),
...                            Unit("probe", ("probe",), needs=("data",))),
...              page=lambda r, root: "")
>>> [(row.unit, row.state) for row in unit_states(p, {}, Path("/nonexistent"))]
[('data', 'to make'), ('probe', 'to run')]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from keypoint_wm.claims import claimed_by
from keypoint_wm.reproduce.protocol import Protocol, UnitResult

__all__ = ["UnitState", "format_status", "unit_states"]


@dataclass(frozen=True)
class UnitState:
    """One unit's standing: ``state`` is ``recorded``, ``running``, ``to run``, ``made`` or
    ``to make``; ``detail`` says when, where or by whom."""

    unit: str
    kind: str
    state: str
    detail: str


def unit_states(protocol: Protocol, results: dict[str, UnitResult], out: Path) -> list[UnitState]:
    """Every unit's :class:`UnitState`, in protocol order (claims read from ``out/claims``)."""
    current = protocol.current(results)
    rows = []
    for unit in protocol.units:
        holder = claimed_by(unit.claim_file(out))
        record = current.get(unit.name)
        if holder is not None:
            state, detail = "running", holder
        elif record is not None:
            state = "recorded" if unit.kind == "result" else "made"
            cpu = record.machine.get("gpu") or record.machine.get("cpu") or "?"
            detail = f"{record.seconds / 60:.1f} min, finished {record.finished}, {cpu}"
        else:
            state = "to run" if unit.kind == "result" else "to make"
            detail = f"needs {', '.join(unit.needs)}" if unit.needs else ""
        rows.append(UnitState(unit.name, unit.kind, state, detail))
    return rows


def format_status(protocol: Protocol, rows: list[UnitState]) -> str:
    """The table ``--status`` prints, under a count of the result units recorded."""
    results = [row for row in rows if row.kind == "result"]
    done = sum(row.state == "recorded" for row in results)
    running = sum(row.state == "running" for row in rows)
    width = max((len(row.unit) for row in rows), default=4)
    lines = [
        f"reproduce {protocol.name}: {done} of {len(results)} result unit(s) recorded, "
        f"{running} running"
    ]
    for row in rows:
        lines.append(f"  {row.unit:<{width}}  {row.state:<8}  {row.detail}".rstrip())
    return "\n".join(lines)
