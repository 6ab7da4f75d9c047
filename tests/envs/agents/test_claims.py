"""Processes sharing one ``--out`` of ``evaluate agents``: a unit is trained by one of them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from keypoint_wm.envs.agents.claims import claim_path, claimed
from keypoint_wm.envs.agents.config import Unit

pytestmark = pytest.mark.integration

TASK = "cartpole-balance"
HOLD = """\
import sys
from pathlib import Path
from keypoint_wm.envs.agents.claims import claimed
from keypoint_wm.envs.agents.config import Unit
unit = Unit(sys.argv[1], sys.argv[2], int(sys.argv[3]))
with claimed(unit, Path(sys.argv[4])) as holder:
    print("held" if holder is None else holder, flush=True)
    sys.stdin.read()
"""


def _hold(unit: Unit, out: Path) -> subprocess.Popen:
    """Another process that claims ``unit`` and keeps it until its stdin closes."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, unit.task, unit.variant, str(unit.seed), str(out)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_claim_is_its_process_until_that_process_dies_however(tmp_path):
    unit = Unit(TASK, "state", 0)
    holder = _hold(unit, tmp_path)
    try:
        with claimed(unit, tmp_path) as taken:
            assert taken is not None and f"pid {holder.pid}" in taken
        with claimed(Unit(TASK, "state", 1), tmp_path) as taken:
            assert taken is None  # another unit is free
    finally:
        holder.kill()  # SIGKILL: no clean-up runs in the holder
        holder.wait()
    assert claim_path(unit, tmp_path).exists()  # left behind, but no longer locked
    with claimed(unit, tmp_path) as taken:
        assert taken is None
    assert not claim_path(unit, tmp_path).exists()  # released on exit


def test_a_second_command_on_the_same_out_skips_the_units_held_by_the_first(tmp_path):
    """... and ``--report-only`` reports the finished units without training the rest."""
    from kwm_testing import tiny_config

    from keypoint_wm.collect.config import CollectConfig
    from keypoint_wm.collect.runner import collect_dataset
    from keypoint_wm.train import train

    data, run, out = tmp_path / "data", tmp_path / "run", tmp_path / "out"
    collect_dataset(
        CollectConfig(tasks=(TASK,), episodes=2, steps=10, action_repeat=2, size=64, out=data),
        workers=1,
        progress=False,
    )
    train(
        tiny_config(2, preset="dmcs-cpu", **{"train.probe_every": 0}),
        data,
        run,
        progress=False,
    )
    command = [sys.executable, "-m", "keypoint_wm.cli", "evaluate", "agents", "--run", str(run),
               "--out", str(out), "--tasks", TASK, "--variants", "random", "--seeds", "3",
               "--eval-episodes", "1", "--time-limit", "0.2", "--device", "cpu", "--quiet"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    units = out / "units" / TASK
    holder = _hold(Unit(TASK, "random", 1), out)
    try:
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"random seed 1: being trained by pid {holder.pid}" in result.stdout + result.stderr
    assert sorted(p.name for p in units.glob("*.json")) == [
        "random-seed0.json",
        "random-seed2.json",
    ]
    report = json.loads((out / "agents.json").read_text())
    assert len(report["tasks"][TASK]["random"]["final_return"]["per_run"]) == 2

    (out / "agents.json").unlink()
    report_only = [*command, "--report-only"]  # trains nothing, reports what is finished
    result = subprocess.run(report_only, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (units / "random-seed1.json").exists()
    report = json.loads((out / "agents.json").read_text())
    assert len(report["tasks"][TASK]["random"]["final_return"]["per_run"]) == 2
    assert (out / "agents.png").is_file()

    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (units / "random-seed1.json").is_file()
    report = json.loads((out / "agents.json").read_text())
    assert len(report["tasks"][TASK]["random"]["final_return"]["per_run"]) == 3
