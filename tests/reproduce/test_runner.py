"""`keypoint-wm reproduce`: units recorded as they finish, skipped when recorded, re-made
when a new machine needs them, and the page regenerated from the records."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from keypoint_wm.reproduce import TARGETS
from keypoint_wm.reproduce.protocol import Protocol, Unit, UnitResult, load_results
from keypoint_wm.reproduce.runner import plan

os.environ.setdefault("MUJOCO_GL", "egl")


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", "reproduce", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_help_lists_every_target_with_its_cost():
    done = cli("--help")
    assert done.returncode == 0
    for name in TARGETS:
        assert f"{name}:" in done.stdout
    assert "2-core CPU" in done.stdout and "one GPU" in done.stdout


def _protocol() -> Protocol:
    units = (
        Unit("data", ("collect",), kind="artifact"),
        Unit("train-a", ("train",), kind="artifact", needs=("data",)),
        Unit("probe-a", ("evaluate",), needs=("train-a",)),
        Unit("train-b", ("train",), kind="artifact", needs=("data",)),
        Unit("probe-b", ("evaluate",), needs=("train-b",)),
    )
    return Protocol("p", "a protocol", {"k": 1}, units, page=lambda results, root: "")


def _record(protocol: Protocol, unit: str, settings: str | None = None) -> UnitResult:
    digest = settings or protocol.unit(unit).digest
    return UnitResult(protocol.name, unit, "result", digest, "", {}, {}, "", {}, 1.0, "")  # fmt: skip


def test_plan_runs_what_is_not_recorded_and_remakes_what_it_needs():
    protocol = _protocol()
    names = [u.name for u in plan(protocol, {})]
    assert names == ["data", "train-a", "probe-a", "train-b", "probe-b"]
    recorded = {"probe-a": _record(protocol, "probe-a")}
    assert [u.name for u in plan(protocol, recorded)] == ["data", "train-b", "probe-b"]
    # A record of the unit as it was under other settings (another command) does not count.
    stale = {"probe-a": _record(protocol, "probe-a", settings="other")}
    assert "probe-a" in [u.name for u in plan(protocol, stale)]
    assert [u.name for u in plan(protocol, {}, only=["probe-b"])] == ["data", "train-b", "probe-b"]
    everything = {n: _record(protocol, n) for n in ("probe-a", "probe-b")}
    assert plan(protocol, everything) == []


def test_a_result_of_a_re_made_model_is_run_again_not_taken_as_made_elsewhere(tmp_path):
    """A probe recorded with weights its train unit no longer records (a new machine trained
    the model again) is planned, and the runner does not skip it as another process's."""
    from dataclasses import replace

    from keypoint_wm.reproduce.runner import _made_elsewhere

    protocol = _protocol()
    train = replace(_record(protocol, "train-a"), kind="artifact", uses={"model": "new"})
    probe = replace(_record(protocol, "probe-a"), uses={"model": "old"}, finished="2026")
    for result in (train, probe):
        result.write(tmp_path)
    records = {"train-a": train, "probe-a": probe}
    assert "probe-a" in [u.name for u in plan(protocol, records)]
    assert not _made_elsewhere(protocol, tmp_path, protocol.unit("probe-a"), "2025", False)
    replace(probe, uses={"model": "new"}).write(tmp_path)
    assert _made_elsewhere(protocol, tmp_path, protocol.unit("probe-a"), "2025", False)


def test_an_artifact_made_again_differently_never_retires_recorded_results(tmp_path):
    """On a new machine a world model trained again differs in its last bits: recorded
    results that used the recorded one stay, the new one is not recorded, nothing needing it
    runs, and the message says how to start over; with the record removed, it is."""
    from dataclasses import replace

    from keypoint_wm.reproduce.runner import UnitFailed, reproduce

    def made(out: Path) -> dict:
        return {"data": (out / "identity").read_text()}

    data = Unit("data", ("--version",), kind="artifact", uses=made)
    units = (data, Unit("probe-a", ("--version",), needs=("data",), uses=made),
             Unit("probe-b", ("--version",), needs=("data",), uses=made))  # fmt: skip
    protocol = Protocol("p", "", {}, units, page=lambda results, root: "# p\n")
    out, results = tmp_path / "out", tmp_path / "results"
    for name in ("data", "probe-a"):
        kind = protocol.unit(name).kind
        replace(_record(protocol, name), kind=kind, uses={"data": "old"}).write(results / "p")
    out.mkdir()
    (out / "identity").write_text("new")
    recorded = (results / "p" / "data.json").read_text()
    with pytest.raises(UnitFailed, match=r"data was made again .*1 recorded result\(s\) used "
                       r"the recorded one \(probe-a\).* remove .*data.json and run again"):  # fmt: skip
        reproduce(protocol, out, results, jobs=1, quiet=True)
    assert (results / "p" / "data.json").read_text() == recorded
    assert not (results / "p" / "probe-b.json").exists()
    assert not list((out / "claims").glob("*.claim"))
    (results / "p" / "data.json").unlink()  # start over with the new one
    reproduce(protocol, out, results, jobs=1, quiet=True)
    assert "probe-a" not in protocol.current(load_results(results / "p"))  # retired
    reproduce(protocol, out, results, jobs=1, quiet=True)  # and made with the new data
    current = protocol.current(load_results(results / "p"))
    assert sorted(current) == ["data", "probe-a", "probe-b"]
    assert {r.uses["data"] for r in current.values()} == {"new"}


def test_only_names_an_unknown_unit_in_one_line():
    from keypoint_wm.errors import UsageError

    with pytest.raises(UsageError, match="--only probe-c: no such unit of p"):
        plan(_protocol(), {}, only=["probe-c"])


@pytest.mark.integration
def test_state_probe_smoke_end_to_end_skips_and_resumes_on_a_new_machine(tmp_path):
    out, results = tmp_path / "out", tmp_path / "results"
    done = cli("state-probe", "--out", str(out), "--results", str(results), "--smoke",
               "--threads", "1")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    data_log = (out / "logs" / "state-probe" / "data.log").read_text()
    assert "--workers 1 " in data_log  # --threads, not cores
    folder = results / "state-probe"
    recorded = sorted(p.stem for p in folder.glob("*.json"))
    assert recorded == ["data", "probe-struct-seed0", "probe-struct-seed1", "reference",
                        "train-struct-seed0", "train-struct-seed1"]  # fmt: skip
    reference = json.loads((folder / "reference.json").read_text())["figures"]
    assert set(reference["tasks"]["cartpole-balance"]) == {"linear", "mlp"}
    probe = json.loads((folder / "probe-struct-seed0.json").read_text())
    assert probe["figures"]["tasks"]["cartpole-balance"]["positions"] is not None
    assert probe["uses"]["world_model"]["weights"]
    assert probe["machine"]["cpu"] and probe["machine"]["torch"]
    assert probe["command"].startswith("keypoint-wm evaluate state-probe --run OUT/runs/struct")
    page = (results / "state-probe.md").read_text()
    assert "2 of 2 seeds" in page and (results / "state-probe-struct.png").stat().st_size > 0
    assert "What the frames can tell" in page and "velocities, MLP" in page
    # Everything recorded: nothing runs.
    again = cli("state-probe", "--out", str(out), "--results", str(results), "--smoke")
    assert again.returncode == 0 and "0 unit(s) to run" in again.stdout
    # A new machine: --out is gone, one probe is not recorded. The dataset and that seed's
    # world model are made again, the other records stay as they were.
    kept = (folder / "probe-struct-seed0.json").read_bytes()
    (folder / "probe-struct-seed1.json").unlink()
    shutil.rmtree(out)
    resumed = cli("state-probe", "--out", str(out), "--results", str(results), "--smoke")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "3 unit(s) to run" in resumed.stdout
    assert (folder / "probe-struct-seed1.json").exists()
    assert (folder / "probe-struct-seed0.json").read_bytes() == kept
    assert not (out / "runs" / "struct" / "seed_0").exists()
    # --report-only regenerates the page from the records alone.
    page = (results / "state-probe.md").read_text()
    (results / "state-probe.md").unlink()
    report = cli("state-probe", "--out", str(out), "--results", str(results), "--smoke",
                 "--report-only")  # fmt: skip
    assert report.returncode == 0 and (results / "state-probe.md").read_text() == page
    # In a repository, the README's row of the page is rewritten from the same records.
    repo = tmp_path / "repo"
    shutil.copytree(results, repo / "docs" / "results")
    readme = Path(__file__).resolve().parents[2] / "README.md"
    (repo / "README.md").write_text(readme.read_text())
    report = cli("state-probe", "--out", str(out), "--results", str(repo / "docs" / "results"),
                 "--smoke", "--report-only")  # fmt: skip
    assert report.returncode == 0, report.stderr
    rows = [line for line in (repo / "README.md").read_text().splitlines()
            if "(docs/results/state-probe.md)" in line]  # fmt: skip
    assert len(rows) == 1 and "test R², mean over the tasks: Struct-VRNN: positions" in rows[0]
    headline = rows[0].split(" | ")[1]
    shown = (repo / "docs" / "results" / "state-probe.md").read_text()
    for number in re.findall(r"-?\d+\.\d+", headline):
        assert number in shown, (number, headline)


@pytest.mark.integration
def test_a_failing_unit_is_not_recorded_and_names_its_log(tmp_path):
    out, results = tmp_path / "out", tmp_path / "results"
    (out / "data").mkdir(parents=True)
    (out / "data" / "dmcs16-smoke").write_text("not a folder")  # collect cannot write here
    done = cli("state-probe", "--out", str(out), "--results", str(results), "--smoke")
    assert done.returncode == 1
    assert "data failed" in done.stderr and "logs/state-probe/data.log" in done.stderr
    assert not list((results / "state-probe").glob("*.json"))
    assert Path(out / "logs" / "state-probe" / "data.log").read_text()


def test_a_unit_whose_outputs_are_not_a_result_fails_unrecorded(tmp_path):
    """The command ended well, but what it wrote cannot be read as figures: the unit is a
    failure that names it, nothing is recorded, and no claim is left behind."""
    from keypoint_wm.reproduce.runner import UnitFailed, reproduce

    def figures(out: Path) -> dict:
        return json.loads((out / "never-written.json").read_text())

    unit = Unit("probe", ("--version",), figures=figures)
    protocol = Protocol("p", "", {}, (unit,), page=lambda results, root: "# p\n")
    out, results = tmp_path / "out", tmp_path / "results"
    with pytest.raises(UnitFailed, match=r"probe ended but its outputs are not a result"):
        reproduce(protocol, out, results, jobs=1, quiet=True)
    assert not list((results / "p").glob("*.json"))
    assert not list((out / "claims").glob("*.claim"))


@pytest.mark.integration
@pytest.mark.parametrize(
    "name", sorted(set(TARGETS) - {"state-probe", "default-model", "gym-envs", "video"})
)
def test_every_target_runs_end_to_end_on_its_smoke_setting(name, tmp_path):
    out = tmp_path / "out"
    done = cli(name, "--out", str(out), "--smoke")
    assert done.returncode == 0, done.stdout + done.stderr
    records = list((out / "results" / name).glob("*.json"))
    assert any(json.loads(p.read_text())["kind"] == "result" for p in records)
    assert (out / "results" / f"{name}.md").read_text().startswith("# ")
    again = cli(name, "--out", str(out), "--smoke")
    assert again.returncode == 0 and "0 unit(s) to run" in again.stdout


@pytest.mark.integration
def test_two_processes_sharing_an_out_run_each_unit_once(tmp_path):
    """Started together on one --out, the processes claim units: every unit runs once (its
    log holds one command), both finish, and the page holds every seed."""
    out, results = tmp_path / "out", tmp_path / "results"
    command = [sys.executable, "-m", "keypoint_wm.cli", "reproduce", "state-probe", "--out",
               str(out), "--results", str(results), "--smoke", "--jobs", "1"]  # fmt: skip
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    outputs = [p.communicate(timeout=600)[0] for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    for unit in ("train-struct-seed0", "train-struct-seed1", "probe-struct-seed0",
                 "probe-struct-seed1"):  # fmt: skip
        log = (out / "logs" / "state-probe" / f"{unit}.log").read_text()
        assert log.count("\n$ ") == 1, (unit, log[:500])
    assert "2 of 2 seeds" in (results / "state-probe.md").read_text()


def test_commit_records_only_its_files_and_is_quiet_when_a_record_is_unchanged(tmp_path, capsys):
    """``--commit`` beside a maintainer's uncommitted edits: a record is committed alone, and
    re-recording an unchanged file commits nothing and warns of nothing."""
    from keypoint_wm.reproduce.runner import _commit

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(tmp_path), *args], capture_output=True, text=True, check=True
        ).stdout

    git("init", "-q")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    record, notes = tmp_path / "unit.json", tmp_path / "notes.md"
    notes.write_text("draft\n")
    git("add", "notes.md")
    git("commit", "-qm", "notes")
    notes.write_text("an edit in progress\n")
    record.write_text('{"figures": 1}\n')
    _commit(tmp_path, [record], "results: unit")
    _commit(tmp_path, [record], "results: unit")  # the same record again
    assert capsys.readouterr().out == ""
    assert git("log", "--format=%s").split("\n")[:2] == ["results: unit", "notes"]
    assert git("status", "--porcelain").strip() == "M notes.md"
