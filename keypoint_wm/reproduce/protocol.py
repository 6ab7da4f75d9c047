"""A published result as a protocol: a list of units, their unit results, and a page.

A :class:`Protocol` is everything behind one figure of the README or the docs: the units
that make it (collect a dataset, train one world-model seed, probe one run, ...), each one
``keypoint-wm`` command, and how the page ``docs/results/<NAME>.md`` is written from the
units' results. Units are of two kinds:

- ``"artifact"`` units make large files in ``--out`` that later units read (a dataset, a
  trained run). Their commands are idempotent and resumable (``collect`` skips finished
  episodes, ``train --resume`` continues), so one is run again whenever a unit that needs
  it is still to run: on a new machine that re-creates the files from their seeds.
- ``"result"`` units make figures. Once a result unit's JSON is in the results folder (and
  was made by the unit's command as it is now, :attr:`Unit.digest`) it is never run again.

Every finished unit writes ``<results>/<NAME>/<unit>.json`` (:class:`UnitResult`): its
figures, the exact command, the identity of what it used (the dataset's fingerprint, the
world model's weight hash), the commit, the machine and the wall time.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keypoint_wm.data.episodes import atomic_write_json

__all__ = [
    "CLI_MODULE",
    "KINDS",
    "OUT",
    "RESULTS",
    "SHIP",
    "Protocol",
    "Unit",
    "UnitResult",
    "fill",
    "load_results",
    "read_json",
    "settings_digest",
]

KINDS = ("artifact", "result")

OUT = "{out}"
"""The placeholder for ``--out`` in a unit's command; results show it as ``OUT``."""

CLI_MODULE = "keypoint_wm.cli"
"""The module of ``keypoint-wm``: what a unit's command runs unless it names another."""

SHIP = "{ship}"
"""The placeholder for where shipped files go (the package's ``keypoint_wm/bundled`` when
the results folder is a repository's ``docs/results``, else ``OUT/bundled``)."""


RESULTS = "{results}"
"""The placeholder for the protocol's folder of unit results (``docs/results/<NAME>``), where
a unit's pictures go (a keypoint GIF), committed with its record; results show it as
``RESULTS``."""


def fill(template: str, out: str | Path) -> Path:
    """A unit's path ``template`` (``{out}/...``) under this run's ``--out``."""
    return Path(template.replace(OUT, str(out)))


def read_json(template: str, out: str | Path) -> Any:
    """The JSON file a unit's command wrote at ``template`` under ``--out``."""
    return json.loads(fill(template, out).read_text())


def settings_digest(settings: Any) -> str:
    """A short hash of JSON-able settings: results made under other settings never pool.

    >>> settings_digest({"seeds": [0, 1]}) == settings_digest({"seeds": [0, 1]})
    True
    >>> len(settings_digest({"seeds": [0, 1]}))
    12
    """
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Unit:
    """One step of a protocol: one ``keypoint-wm`` command.

    Attributes:
        name: unique in the protocol, e.g. ``"train-struct-seed0"``.
        argv: the command's arguments after ``keypoint-wm``; ``{out}`` stands for ``--out``
            and ``{threads}`` for the threads (or collection workers) the unit is given.
        kind: ``"artifact"`` or ``"result"`` (module docstring).
        needs: names of the units whose outputs this one reads.
        figures: reads the command's outputs under ``--out`` and returns the figures to
            record (JSON-able); None records none.
        uses: returns the identity of what the unit used or made (fingerprints, hashes).
        env: environment variables the command runs with (e.g. the AVX2 cap of a benchmark).
        exclusive: runs alone, with every core (a timing), never beside another unit.
        module: the command is ``python -m MODULE ARGV``: :data:`CLI_MODULE`
            (``keypoint-wm``) for every unit but one that runs part of the test suite
            (:mod:`keypoint_wm.reproduce.suite`).
        ships: paths (``{ship}/...``) the command writes into the package, committed with
            the unit's record (the shipped default model).
        pictures: paths (``{results}/...``) the command writes beside the unit results
            (GIFs a page shows), committed with the unit's record.
    """

    name: str
    argv: tuple[str, ...]
    kind: str = "result"
    needs: tuple[str, ...] = ()
    figures: Callable[[Path], dict[str, Any]] | None = None
    uses: Callable[[Path], dict[str, Any]] | None = None
    env: tuple[tuple[str, str], ...] = ()
    exclusive: bool = False
    module: str = CLI_MODULE
    ships: tuple[str, ...] = ()
    pictures: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unit kind must be one of {KINDS}, got {self.kind!r}")

    def command(
        self,
        out: str | Path,
        threads: int,
        ship: str | Path | None = None,
        results: str | Path | None = None,
    ) -> list[str]:
        """The arguments with ``{out}``, ``{threads}``, ``{ship}`` and ``{results}`` filled
        in (defaults: ``OUT/bundled`` and ``OUT/results``)."""
        ship = Path(out) / "bundled" if ship is None else ship
        results = Path(out) / "results" if results is None else results
        return [
            a.replace(OUT, str(out))
            .replace("{threads}", str(threads))
            .replace(SHIP, str(ship))
            .replace(RESULTS, str(results))
            for a in self.argv
        ]

    @property
    def digest(self) -> str:
        """What the unit's record is valid for: a hash of its kind and command (its data,
        preset, overrides and seeds). Adding a unit to a protocol leaves the others valid."""
        payload: dict[str, Any] = {"kind": self.kind, "argv": list(self.argv)}
        if self.env:
            payload["env"] = [list(e) for e in self.env]
        if self.module != CLI_MODULE:
            payload["module"] = self.module
        return settings_digest(payload)

    def claim_file(self, out: str | Path) -> Path:
        """The file a process holds while it runs this unit in ``out``: named by the unit and
        its :attr:`digest`, so that protocols sharing a unit (the same command into the same
        files) run it once, and units that share only a name (each protocol's ``data``) never
        wait for each other."""
        return Path(out) / "claims" / f"{self.name}-{self.digest}.claim"

    def shown(self) -> str:
        """The command as recorded: ``keypoint-wm ...`` with ``OUT`` for ``--out``, each
        argument quoted for a shell where it needs it (``--env-kwargs '{...}'``)."""
        parts = [
            a.replace(OUT, "OUT")
            .replace("{threads}", "N")
            .replace(SHIP, "keypoint_wm/bundled")
            .replace(RESULTS, "RESULTS")
            for a in self.argv
        ]
        program = ["keypoint-wm"] if self.module == CLI_MODULE else ["python", "-m", self.module]
        return " ".join([*(f"{k}={v}" for k, v in self.env), *program, *map(shlex.quote, parts)])


@dataclass(frozen=True)
class UnitResult:
    """A finished unit's record, one small JSON file in the results folder."""

    protocol: str
    unit: str
    kind: str
    settings: str  # the unit's digest when it ran
    command: str
    figures: dict[str, Any]
    uses: dict[str, Any]
    commit: str
    machine: dict[str, Any]
    seconds: float
    finished: str

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> UnitResult:
        return cls(**{name: payload[name] for name in cls.__dataclass_fields__})

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    def write(self, folder: Path) -> Path:
        """Write ``folder/<unit>.json`` atomically."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.unit}.json"
        atomic_write_json(path, self.to_json())
        return path


def load_results(folder: Path) -> dict[str, UnitResult]:
    """Every unit result in ``folder`` (``<unit>.json``), by unit name; unreadable files are
    skipped (a unit whose record cannot be read counts as not done)."""
    results = {}
    for path in sorted(Path(folder).glob("*.json")):
        try:
            result = UnitResult.from_json(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        results[result.unit] = result
    return results


@dataclass(frozen=True)
class Protocol:
    """The units behind one published result, its settings, and how its page is written.

    Attributes:
        name: the ``reproduce`` NAME, also the results folder's name.
        summary: one line for ``--help``.
        settings: every knob of the protocol (JSON-able), for its page and ``--help``; each
            unit's record holds its own :attr:`Unit.digest`, and only records of the
            units as they are now make the page.
        units: in an order that respects ``needs``.
        page: ``(results of the current settings, results folder) -> Markdown``; it may
            write pictures beside the page (``<results>/<NAME>*.png``).
        title: the result's name in the README's results table.
        headline: ``results -> one line`` of the page's own figures, the README row's
            headline (figures that appear in the page, so the two cannot disagree).
        lacks: ``() -> one line or None``: what this machine lacks to run the units
            (a GPU, say); ``reproduce`` refuses with it before any unit starts, and
            still regenerates the page with ``--report-only``.
    """

    name: str
    summary: str
    settings: dict[str, Any]
    units: tuple[Unit, ...]
    page: Callable[[dict[str, UnitResult], Path], str]
    notes: Sequence[str] = field(default_factory=tuple)
    title: str = ""
    headline: Callable[[dict[str, UnitResult]], str] | None = None
    lacks: Callable[[], str | None] | None = None

    def __post_init__(self) -> None:
        names = [u.name for u in self.units]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: unit names repeat: {names}")
        seen: set[str] = set()
        for unit in self.units:
            missing = [n for n in unit.needs if n not in seen]
            if missing:
                raise ValueError(f"{self.name}: {unit.name} needs {missing} listed before it")
            seen.add(unit.name)

    def current(self, results: dict[str, UnitResult]) -> dict[str, UnitResult]:
        """The records made by the protocol's units as they are now, by unit name, and made
        from the artifacts recorded now: a record is current when its digest is the unit's,
        no unit it needs (directly or not) has a record that is not current, and every
        ``uses`` entry it shares with those records agrees (a probe of weights that have
        since been re-made, or a model trained on another collection, is not current).

        >>> data = Unit("data", ("collect",), kind="artifact")
        >>> train = Unit("train", ("train",), kind="artifact", needs=("data",))
        >>> probe = Unit("probe", ("probe",), needs=("train",))
        >>> p = Protocol("p", "", {}, (data, train, probe), page=lambda r, root: "")
        >>> def record(unit, **uses):
        ...     return UnitResult("p", unit.name, unit.kind, unit.digest, "", {}, uses, "", {}, 0, "")
        >>> records = {"data": record(data, data="A"), "train": record(train, data="A", model="m1"),
        ...            "probe": record(probe, model="m1")}
        >>> sorted(p.current(records))
        ['data', 'probe', 'train']
        >>> sorted(p.current({**records, "train": record(train, data="A", model="m2")}))
        ['data', 'train']
        >>> sorted(p.current({**records, "data": record(data, data="B")}))
        ['data']
        """
        by_name = {unit.name: unit for unit in self.units}
        current: dict[str, UnitResult] = {}
        seen: dict[str, dict[str, Any]] = {}  # a unit's uses and its needs', when current
        for unit in self.units:
            record = results.get(unit.name)
            if record is None or record.settings != unit.digest:
                continue
            upstream: dict[str, Any] = {}
            consistent = True
            for need in unit.needs:
                if need in results and need not in current:
                    consistent = False  # a record of what it needs is not current
                for key, value in seen.get(need, {}).items():
                    upstream.setdefault(key, value)
            for key, value in record.uses.items():
                if key in upstream and upstream[key] != value:
                    consistent = False
            if consistent and unit.name in by_name:
                current[unit.name] = record
                seen[unit.name] = {**upstream, **record.uses}
        return current

    def users(self, name: str, results: dict[str, UnitResult]) -> list[str]:
        """The units with a current record (:meth:`current`) that used ``name``'s output,
        directly or through other units, in protocol order.

        >>> data = Unit("data", ("collect",), kind="artifact")
        >>> probe = Unit("probe", ("probe",), needs=("data",))
        >>> p = Protocol("p", "", {}, (data, probe), page=lambda r, root: "")
        >>> def record(unit):
        ...     return UnitResult("p", unit.name, unit.kind, unit.digest, "", {}, {}, "", {}, 0, "")
        >>> p.users("data", {"data": record(data), "probe": record(probe)})
        ['probe']
        """
        current = self.current(results)
        reached = {name}
        found = []
        for unit in self.units:
            if any(need in reached for need in unit.needs):
                reached.add(unit.name)
                if unit.name in current:
                    found.append(unit.name)
        return found

    def unit(self, name: str) -> Unit:
        for unit in self.units:
            if unit.name == name:
                return unit
        raise KeyError(name)
