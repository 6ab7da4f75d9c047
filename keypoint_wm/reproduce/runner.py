"""Run a protocol's missing units, side by side, and keep its results and page current.

:func:`reproduce` reads the unit results already in ``<results>/<NAME>/`` (committed by
earlier machines), plans what is left (the result units without a record of the current
settings, and every artifact unit they need, since ``--out`` may be new), and runs the
units whose needs are met, up to ``jobs`` at a time, each as a ``keypoint-wm`` subprocess
with its share of the cores (its output in ``OUT/logs/<NAME>/<unit>.log``). Several processes or
machines may share one ``--out``: a unit is claimed (:func:`keypoint_wm.claims.claim`)
before it runs, and a unit claimed elsewhere is waited for, not run twice.

After each unit its record is written, the page regenerated and, with ``commit``, both
committed to git, so that a session that ends abruptly loses at most the units in flight.
A killed unit leaves no record; its command resumes (or restarts) on the next run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from keypoint_wm.claims import claim
from keypoint_wm.data.episodes import atomic_write_bytes
from keypoint_wm.errors import KeypointWMError, UsageError
from keypoint_wm.reproduce.identity import git_commit, machine
from keypoint_wm.reproduce.protocol import (
    CLI_MODULE,
    RESULTS,
    SHIP,
    Protocol,
    Unit,
    UnitResult,
    load_results,
)
from keypoint_wm.reproduce.readme import readme_of, update_readme

__all__ = ["ReproduceSummary", "default_jobs", "plan", "reproduce", "ship_root", "write_page"]

POLL_SECONDS = 5.0


class UnitFailed(KeypointWMError):
    """A unit's command exited with an error; the message names its log."""

    exit_code = 1


class ArtifactChanged(KeypointWMError):
    """An artifact made again (on a new machine) is not what its record names, and recorded
    results used the recorded one: it is not recorded, so that they stay current."""

    exit_code = 1


def default_jobs() -> int:
    """Units side by side: one per core on a CPU, one on a GPU (a unit fills it)."""
    try:
        import torch

        if torch.cuda.is_available():
            return 1
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return max(1, os.cpu_count() or 1)


def plan(
    protocol: Protocol, results: dict[str, UnitResult], only: Sequence[str] = ()
) -> list[Unit]:
    """The units to run, in protocol order: result units without a current record (of
    ``only`` when given: unit names or name prefixes), and the artifact units they need."""
    done = protocol.current(results)
    names = [u.name for u in protocol.units]
    unknown = [o for o in only if not any(n == o or n.startswith(o) for n in names)]
    if unknown:
        raise UsageError(
            f"--only {' '.join(unknown)}: no such unit of {protocol.name} (its units: "
            f"{', '.join(names)})"
        )

    def chosen(unit: Unit) -> bool:
        return not only or any(unit.name == o or unit.name.startswith(o) for o in only)

    wanted = {
        u.name
        for u in protocol.units
        if chosen(u)
        and ((u.kind == "artifact" and only) or u.kind == "result")
        and not (u.kind == "result" and u.name in done)
    }
    for unit in reversed(protocol.units):  # needs are listed before their users
        if unit.name in wanted:
            wanted.update(unit.needs)
    return [u for u in protocol.units if u.name in wanted]


def write_page(protocol: Protocol, results_root: Path) -> Path:
    """Regenerate ``<results>/<NAME>.md`` (and its pictures) from the current results, and
    the page's row in the README's results table when the results folder is a repository's
    ``docs/results`` (:func:`update_readme`)."""
    results = protocol.current(load_results(results_root / protocol.name))
    text = protocol.page(results, results_root)
    path = results_root / f"{protocol.name}.md"
    results_root.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, text.encode())
    update_readme(protocol, results, results_root)
    return path


def _commit(results_root: Path, paths: list[Path], message: str) -> None:
    """``git add`` and ``git commit`` only ``paths`` (other staged changes stay staged)."""
    files = [str(p.resolve()) for p in paths if p.exists()]
    where = str(results_root.resolve())
    for attempt in range(5):  # another git command may hold the index lock for a moment
        added = subprocess.run(
            ["git", "-C", where, "add", "--", *files], capture_output=True, text=True
        )
        unchanged = subprocess.run(  # a re-recorded file equal to the committed one
            ["git", "-C", where, "diff", "--cached", "--quiet", "--", *files], capture_output=True
        )
        if added.returncode == 0 and unchanged.returncode == 0:
            return
        done = subprocess.run(
            ["git", "-C", where, "commit", "-q", "-m", message, "--", *files],
            capture_output=True,
            text=True,
        )
        if added.returncode == 0 and done.returncode == 0:
            return
        time.sleep(1 + attempt)
    why = (done.stderr or done.stdout).strip() if added.returncode == 0 else added.stderr
    print(f"reproduce: warning: could not commit {message!r}: {why}", flush=True)


@dataclass
class _Running:
    unit: Unit
    process: subprocess.Popen
    log: IO[bytes]
    started: float
    release: ExitStack


@dataclass
class ReproduceSummary:
    """What one ``reproduce`` call did."""

    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    page: Path | None = None


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a scheduler's stop) ends the loop like Ctrl-C: children are stopped too."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def reproduce(
    protocol: Protocol,
    out: Path,
    results_root: Path,
    jobs: int | None = None,
    only: Sequence[str] = (),
    threads: int | None = None,
    report_only: bool = False,
    commit: bool = False,
    quiet: bool = False,
) -> ReproduceSummary:
    """Run what is missing of ``protocol`` (module docstring) and regenerate its page.

    Args:
        out: where datasets, runs and logs go (large files; never in the repository).
        results_root: the results folder (``docs/results``): unit records and pages.
        jobs: units side by side (default :func:`default_jobs`).
        threads: threads per unit (default: the cores shared among the units running; an
            exclusive unit, a timing, always gets every core).
        only: run only these units (names or prefixes) and what they need.
        report_only: regenerate the page from the records present; run nothing.
        commit: commit each unit's record and the page to git as the unit finishes.

    Raises:
        UsageError: this machine lacks what the protocol needs
            (:attr:`~keypoint_wm.reproduce.protocol.Protocol.lacks`).
        UnitFailed: a unit's command failed (the others already running finish first).
    """
    folder = results_root / protocol.name
    summary = ReproduceSummary()
    if report_only:
        summary.page = write_page(protocol, results_root)
        return summary
    lacking = protocol.lacks() if protocol.lacks is not None else None
    if lacking:
        raise UsageError(f"{protocol.name} {lacking}")
    jobs = jobs or default_jobs()
    results = load_results(folder)
    todo = plan(protocol, results, only)
    summary.skipped = [u.name for u in protocol.units if u.name not in {t.name for t in todo}]
    say = (lambda text: None) if quiet else (lambda text: print(text, flush=True))
    say(
        f"reproduce {protocol.name}: {len(todo)} unit(s) to run, "
        f"{len(protocol.current(results))} recorded; {jobs} side by side; --out {out}"
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "logs" / protocol.name).mkdir(parents=True, exist_ok=True)
    session = _Session(
        protocol, results_root, out, results, summary, say, commit,
        began=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        host=machine(),
        commit_id=git_commit(results_root if results_root.exists() else "."),
        ship=ship_root(results_root, out),
    )  # fmt: skip
    failure: str | None = None
    with _sigterm_as_interrupt():
        try:
            while (len(session.finished) < len(todo) and failure is None) or session.running:
                if failure is None:
                    _start_ready(session, todo, jobs, threads)
                time.sleep(POLL_SECONDS if not session.running else 0.5)
                failure = _collect_finished(session) or failure
        except KeyboardInterrupt:
            _stop(session.running)
            raise
    summary.page = write_page(protocol, results_root)
    if failure is not None:
        raise UnitFailed(f"reproduce {protocol.name}: {failure}")
    return summary


@dataclass
class _Session:
    """One :func:`reproduce` call: what its records need, and its units as they run."""

    protocol: Protocol
    results_root: Path
    out: Path
    results: dict[str, UnitResult]
    summary: ReproduceSummary
    say: Callable[[str], None]
    commit: bool
    began: str  # ISO time
    host: dict[str, Any]
    commit_id: str
    ship: Path
    finished: set[str] = field(default_factory=set)
    running: dict[str, _Running] = field(default_factory=dict)
    elsewhere: dict[str, str] = field(default_factory=dict)  # unit -> who claimed it

    @property
    def folder(self) -> Path:
        return self.results_root / self.protocol.name


def _start_ready(session: _Session, todo: list[Unit], jobs: int, threads: int | None) -> None:
    """Start the units whose needs are met, up to ``jobs`` running (a timing alone), each
    with its share of the cores; a unit recorded or claimed elsewhere is not started."""
    running, finished = session.running, session.finished
    cores = os.cpu_count() or 1
    ready = [
        u
        for u in todo
        if u.name not in finished
        and u.name not in running
        and all(n in finished or n not in {t.name for t in todo} for n in u.needs)
    ]
    for unit in ready:
        if len(running) >= jobs or any(j.unit.exclusive for j in running.values()):
            break
        if unit.exclusive and running:
            continue  # a timing waits until it has the machine to itself
        waited = unit.name in session.elsewhere
        if _made_elsewhere(session.protocol, session.folder, unit, session.began, waited):
            finished.add(unit.name)
            session.summary.skipped.append(unit.name)
            continue
        share = max(1, cores // max(1, min(jobs, len(ready) + len(running))))
        share = threads if threads and not unit.exclusive else share
        share = cores if unit.exclusive else share
        started = _start(
            unit, session.out, share, session.ship, session.folder, session.protocol.name
        )
        if isinstance(started, str):
            if session.elsewhere.get(unit.name) != started:
                session.say(f"  {unit.name}: claimed by {started}; waiting for it")
            session.elsewhere[unit.name] = started
            continue
        running[unit.name] = started
        session.say(f"  {unit.name}: started ({share} thread(s)); log {started.log.name}")


def _collect_finished(session: _Session) -> str | None:
    """Record every unit whose command has ended, regenerate the page (and commit both with
    ``commit``); returns the last failure among them, None if none failed."""
    failure = None
    for name, job in list(session.running.items()):
        code = job.process.poll()
        if code is None:
            continue
        del session.running[name]
        job.log.close()
        seconds = time.time() - job.started
        if code != 0:
            job.release.close()
            failure = f"{name} failed (exit {code}); see {job.log.name}"
            session.say(f"  {failure}")
            continue
        protocol, results_root = session.protocol, session.results_root
        try:
            written = _record(protocol, job.unit, session.out, session.folder, session.results,
                              session.host, session.commit_id, seconds)  # fmt: skip
        except ArtifactChanged as error:
            job.release.close()
            failure = str(error)
            session.say(f"  {failure}")
            continue
        except (OSError, ValueError, KeyError, TypeError) as error:  # outputs it cannot read
            job.release.close()
            failure = f"{name} ended but its outputs are not a result ({error}); see {job.log.name}"
            session.say(f"  {failure}")
            continue
        job.release.close()
        session.finished.add(name)
        session.summary.ran.append(name)
        page = write_page(protocol, results_root)
        session.say(f"  {name}: done in {seconds / 60:.1f} min -> {written}")
        if session.commit:
            readme = readme_of(results_root)
            _commit(
                results_root,
                [written, page, *_pictures(results_root, protocol)]
                + ([readme] if readme is not None else [])
                + [Path(p.replace(SHIP, str(session.ship))) for p in job.unit.ships]
                + [Path(p.replace(RESULTS, str(session.folder))) for p in job.unit.pictures],
                f"results: {protocol.name} {name}",
            )
    return failure


def _stop(running: dict[str, _Running]) -> None:
    """Terminate the units' commands, kill any still alive after 30 s, release their claims."""
    for job in running.values():
        job.process.terminate()
    for job in running.values():
        try:
            job.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            job.process.kill()
        job.release.close()


def _made_elsewhere(protocol: Protocol, folder: Path, unit: Unit, began: str, waited: bool) -> bool:
    """Whether another process recorded ``unit`` meanwhile, so that this one skips it: a
    result with a current record, or an artifact recorded while this process ran
    (``began``, ISO time) or whose claim it ``waited`` for (they share this ``--out``)."""
    result = protocol.current(load_results(folder)).get(unit.name)
    if result is None:  # none, or made from artifacts that have since been re-made
        return False
    return unit.kind == "result" or waited or result.finished >= began


def _pictures(results_root: Path, protocol: Protocol) -> list[Path]:
    return sorted(results_root.glob(f"{protocol.name}*.png"))


def ship_root(results_root: Path, out: Path) -> Path:
    """Where units' ``{ship}`` paths go: the package's ``keypoint_wm/bundled`` when
    ``results_root`` is a repository's ``docs/results``, else ``OUT/bundled``."""
    readme = readme_of(results_root)
    return out / "bundled" if readme is None else readme.parent / "keypoint_wm" / "bundled"


def _start(
    unit: Unit, out: Path, threads: int, ship: Path, results: Path, protocol: str
) -> _Running | str:
    """Claim ``unit`` and start its command, its output in ``OUT/logs/<protocol>/``; the
    claim holder's description if claimed."""
    release = ExitStack()
    holder = release.enter_context(claim(unit.claim_file(out)))
    if holder is not None:
        release.close()
        return holder
    log = open(out / "logs" / protocol / f"{unit.name}.log", "ab")
    program = [] if unit.module == CLI_MODULE else ["python", "-m", unit.module]
    log.write(f"\n$ {' '.join([*program, *unit.command(out, threads, ship, results)])}\n".encode())
    log.flush()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env.update(dict(unit.env))
    env.setdefault("MUJOCO_GL", "egl")
    process = subprocess.Popen(
        [sys.executable, "-m", unit.module, *unit.command(out, threads, ship, results)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    return _Running(unit, process, log, time.time(), release)


def _record(
    protocol: Protocol,
    unit: Unit,
    out: Path,
    folder: Path,
    results: dict[str, UnitResult],
    host: dict[str, Any],
    commit_id: str,
    seconds: float,
) -> Path:
    """Write the unit's record; an artifact re-made with the same identity keeps its old
    record (its first wall time is the one that means something).

    Raises:
        ArtifactChanged: an artifact re-made with another identity (a world model trained
            again on another CPU differs in its last bits) while recorded results used the
            recorded one: re-recording it would retire them all, so it is refused.
    """
    figures = unit.figures(out) if unit.figures else {}
    uses = unit.uses(out) if unit.uses else {}
    previous = results.get(unit.name)
    if unit.kind == "artifact" and previous is not None and previous.settings == unit.digest:
        if previous.uses == uses:
            return folder / f"{unit.name}.json"
        users = protocol.users(unit.name, results)
        if users:
            raise ArtifactChanged(
                f"{unit.name} was made again and is not the one recorded (recorded "
                f"{json.dumps(previous.uses, sort_keys=True)}, made {json.dumps(uses, sort_keys=True)}"
                f"); {len(users)} recorded result(s) used the recorded one "
                f"({', '.join(users[:4])}{', ...' if len(users) > 4 else ''}): they stay, and "
                f"nothing that needs {unit.name} runs. To start them over with the new one, "
                f"remove {folder / f'{unit.name}.json'} and run again"
            )
    result = UnitResult(
        protocol=protocol.name,
        unit=unit.name,
        kind=unit.kind,
        settings=unit.digest,
        command=unit.shown(),
        figures=figures,
        uses=uses,
        commit=commit_id,
        machine=host,
        seconds=round(seconds, 1),
        finished=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    results[unit.name] = result
    return result.write(folder)
