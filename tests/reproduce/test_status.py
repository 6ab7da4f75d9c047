"""`keypoint-wm reproduce NAME --status`: what is recorded, running and left, running nothing."""

from __future__ import annotations

import subprocess
import sys

from keypoint_wm.claims import claim, claimed_by
from keypoint_wm.reproduce.protocol import Protocol, Unit, UnitResult
from keypoint_wm.reproduce.status import format_status, unit_states

DATA = Unit("data", ("data",), kind="artifact")
TRAIN = Unit("train-seed0", ("train",), kind="artifact", needs=("data",))
PROBE0 = Unit("probe-seed0", ("probe", "0"), needs=("train-seed0",))
PROBE1 = Unit("probe-seed1", ("probe", "1"), needs=("train-seed0",))
PROTOCOL = Protocol("p", "", {}, (DATA, TRAIN, PROBE0, PROBE1), page=lambda r, root: "")


def record(unit: Unit, digest: str | None = None) -> UnitResult:
    return UnitResult("p", unit.name, unit.kind, digest or unit.digest, "", {}, {}, "abc",
                      {"cpu": "AMD EPYC"}, 90.0, "2026-12-07T10:00:00Z")  # fmt: skip


def test_each_unit_is_recorded_running_or_left(tmp_path):
    records = {u.name: record(u) for u in (DATA, TRAIN, PROBE0)}
    records["probe-seed1"] = record(PROBE1, digest="an older command")  # not current
    with claim(PROBE1.claim_file(tmp_path)):
        rows = unit_states(PROTOCOL, records, tmp_path)
    states = {row.unit: (row.state, row.detail) for row in rows}
    assert states["data"] == ("made", "1.5 min, finished 2026-12-07T10:00:00Z, AMD EPYC")
    assert states["probe-seed0"][0] == "recorded"
    assert states["probe-seed1"][0] == "running" and "pid" in states["probe-seed1"][1]
    rows = unit_states(PROTOCOL, records, tmp_path)  # the claim released: left to run
    assert [row.state for row in rows] == ["made", "made", "recorded", "to run"]
    text = format_status(PROTOCOL, rows)
    assert text.splitlines()[0] == "reproduce p: 1 of 2 result unit(s) recorded, 0 running"
    assert "probe-seed1  to run    needs train-seed0" in text


def test_units_that_share_only_a_name_do_not_share_a_claim(tmp_path):
    """Each protocol has a unit called ``data``; only the same command into the same files
    (the DMCS collection several protocols share) is one piece of work."""
    other = Unit("data", ("data", "figures"), kind="artifact")
    same = Unit("data", ("data",), kind="artifact")
    assert DATA.claim_file(tmp_path) != other.claim_file(tmp_path)
    assert DATA.claim_file(tmp_path) == same.claim_file(tmp_path)
    with claim(other.claim_file(tmp_path)):
        assert unit_states(PROTOCOL, {}, tmp_path)[0].state == "to make"


def test_looking_at_a_claim_neither_takes_nor_leaves_it(tmp_path):
    path = tmp_path / "unit.claim"
    assert claimed_by(path) is None and not path.exists()  # nothing made
    with claim(path) as holder:
        assert holder is None and claimed_by(path) is not None
        with claim(path) as second:  # the holder keeps it after being looked at
            assert second is not None
    assert claimed_by(path) is None and not path.exists()


def test_status_runs_nothing_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "keypoint_wm.cli", "reproduce", "state-probe", "--out",
            str(out), "--smoke", "--status"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("reproduce state-probe: 0 of ")
    assert "data" in done.stdout and "to make" in done.stdout and "to run" in done.stdout
    assert not out.exists()
