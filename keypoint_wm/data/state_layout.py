"""The physics state stored beside the frames: which slice of ``state`` is which quantity.

An episode's ``state`` array (float32 ``[T, D]``, docs/design.md, "Episode files") is the
task's low-dimensional observation at each frame, its entries flattened one after another in
a fixed order. The episode metadata's ``"state_keys"`` names each entry and its slice, so that
position-like and velocity-like parts can be scored apart:

>>> parts = layout_from_sizes([("position", 3), ("velocity", 2)])
>>> [(p.name, p.start, p.stop, p.kind) for p in parts]
[('position', 0, 3, 'position'), ('velocity', 3, 5, 'velocity')]
>>> state_parts({"state_keys": [p.to_json() for p in parts]}, width=5) == parts
True

The kind of a part is read from its name (:func:`part_kind`): a name containing
"velocit" (dm_control's ``velocity``, ``body_velocities``) is a velocity; every other entry
(positions, orientations, heights, ``to_target``, touch sensors) counts as a position-like
configuration quantity. One exception is listed by task (:data:`RAW_ANGLE_KEYS`): an entry
that holds hinge angles in radians as they are (reacher's ``position``: the shoulder turns
without limit, so its angle grows past pi), kind ``"angle"``, a position-like part that a
probe scores through the angles' cosine and sine, the form dm_control gives its other
tasks' angles in (walker's and acrobot's ``orientations``): an image shows theta and
theta + 2 pi alike.

>>> [p.kind for p in layout_from_sizes([("position", 2), ("velocity", 2)], domain="reacher")]
['angle', 'velocity']
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from keypoint_wm.errors import DataError

__all__ = [
    "ANGLE_TARGETS",
    "POSITION_KINDS",
    "RAW_ANGLE_KEYS",
    "STATE_KINDS",
    "StatePart",
    "layout_from_sizes",
    "part_kind",
    "state_parts",
]

STATE_KINDS = ("position", "velocity", "angle")
"""The kinds of state parts."""

ANGLE_TARGETS = ("sincos", "raw")
"""How a probe scores ``"angle"`` parts: through their cosines and sines, or as stored."""

POSITION_KINDS = ("position", "angle")
"""The kinds a ``positions`` summary covers (a ``velocities`` summary covers ``velocity``)."""

RAW_ANGLE_KEYS: dict[str, tuple[str, ...]] = {"reacher": ("position",)}
"""Per dm_control domain, the observation keys that hold raw hinge angles (radians, not
wrapped): reacher's ``position`` is ``physics.position()``, its shoulder and wrist angles."""


@dataclass(frozen=True)
class StatePart:
    """One observation key's slice ``state[:, start:stop]`` and its kind."""

    name: str
    start: int
    stop: int
    kind: str

    @property
    def size(self) -> int:
        return self.stop - self.start

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "start": self.start, "stop": self.stop, "kind": self.kind}


def part_kind(name: str, domain: str | None = None) -> str:
    """``"angle"`` for a key of :data:`RAW_ANGLE_KEYS` of ``domain``, ``"velocity"`` for a
    name holding "velocit", else ``"position"`` (module doc).

    >>> part_kind("velocity"), part_kind("body_velocities"), part_kind("to_target")
    ('velocity', 'velocity', 'position')
    >>> part_kind("position", "reacher"), part_kind("position", "cartpole")
    ('angle', 'position')
    """
    if name in RAW_ANGLE_KEYS.get(domain or "", ()):
        return "angle"
    return "velocity" if "velocit" in name.lower() else "position"


def layout_from_sizes(
    entries: Iterable[tuple[str, int]], domain: str | None = None
) -> tuple[StatePart, ...]:
    """Consecutive parts for ``(name, size)`` pairs in storage order (of ``domain``'s task)."""
    parts, start = [], 0
    for name, size in entries:
        parts.append(StatePart(str(name), start, start + int(size), part_kind(str(name), domain)))
        start += int(size)
    return tuple(parts)


def state_parts(metadata: dict[str, Any], width: int) -> tuple[StatePart, ...]:
    """The parts of a ``state`` of ``width`` entries, from an episode's metadata.

    Without ``"state_keys"`` the whole state is one part named ``"state"`` (kind
    ``"position"``), so data written by other tools still probe as one block. The kinds of
    :data:`RAW_ANGLE_KEYS` follow the metadata's ``"domain"`` (data collected before the
    kind existed say ``"position"`` there).

    Raises:
        DataError: ``"state_keys"`` is malformed or does not tile ``[0, width)``.
    """
    entries = metadata.get("state_keys")
    if entries is None:
        return (StatePart("state", 0, width, "position"),)
    domain = metadata.get("domain")
    parts = tuple(
        StatePart(p.name, p.start, p.stop, "angle")
        if p.name in RAW_ANGLE_KEYS.get(str(domain), ())
        else p
        for p in _parse(entries)
    )
    stop = 0
    for part in parts:
        if part.start != stop or part.stop <= part.start:
            break
        stop = part.stop
    else:
        if stop == width:
            return parts
    raise DataError(
        f"metadata 'state_keys' {[p.to_json() for p in parts]} do not tile the state's "
        f"{width} entries in order"
    )


def _parse(entries: Any) -> tuple[StatePart, ...]:
    if not isinstance(entries, Sequence) or isinstance(entries, str):
        raise DataError(f"metadata 'state_keys' must be a list, got {entries!r}")
    parts = []
    for entry in entries:
        try:
            part = StatePart(
                str(entry["name"]), int(entry["start"]), int(entry["stop"]), str(entry["kind"])
            )
        except (TypeError, KeyError, ValueError):
            raise DataError(
                f"metadata 'state_keys' entries need name, start, stop and kind, got {entry!r}"
            ) from None
        if part.kind not in STATE_KINDS:
            raise DataError(
                f"metadata 'state_keys' kind must be one of {list(STATE_KINDS)}, got {part.kind!r}"
            )
        parts.append(part)
    return tuple(parts)
