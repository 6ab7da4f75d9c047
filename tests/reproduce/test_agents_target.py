"""`keypoint-wm reproduce agents`: its units, its page, and `evaluate agents --seed`.

The page tests write records as a finished protocol would have them (figures made by
:func:`~keypoint_wm.reproduce.agents.agent_figures` from unit results in the layout
``evaluate agents`` writes) and read the page a user reads. The ``--seed`` tests run the
real command on a tiny world model.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from keypoint_wm.reproduce import agents, dream_fidelity, state_probe
from keypoint_wm.reproduce.agents import AgentSettings, agent_figures, unit_name
from keypoint_wm.reproduce.agents_page import BOOTSTRAP_REPS
from keypoint_wm.reproduce.pages import mean_ci_cell
from keypoint_wm.reproduce.protocol import Protocol, UnitResult

os.environ.setdefault("MUJOCO_GL", "egl")

TASK = "cartpole-balance"
WEIGHTS = {"step": 100, "weights": "0123456789abcdef"}


def test_units_read_the_shipped_model_and_count_100k_environment_steps():
    protocol = agents.protocol()
    # The same data unit as the other DMCS targets (one --out makes it once); no world model
    # is trained: every agent reads the shipped default model, the same weights everywhere.
    for other in (state_probe.protocol(), dream_fidelity.protocol()):
        assert protocol.unit("data").digest == other.unit("data").digest
    assert not [u for u in protocol.units if u.name.startswith(("train-", "heads-"))]
    runs = [u for u in protocol.units if u.name.startswith("agent-")]
    assert len(runs) == 4 * 4 * 3  # tasks x (random, state, latent, dream) x agent seeds
    outs = set()
    for unit in runs:
        argv = list(unit.argv)
        flag = {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--")}
        # 100,000 environment steps are 50,000 agent steps at the data's action repeat of 2,
        # a curve point every 10,000 environment steps, 10 episodes at the end.
        assert (flag["--steps"], flag["--eval-every"], flag["--eval-episodes"]) == (
            "50000",
            "5000",
            "10",
        )
        assert flag["--algo"] == "sac" and "," not in flag["--tasks"] + flag["--variants"]
        assert unit.name == unit_name(flag["--tasks"], flag["--variants"], int(flag["--seed"]))
        assert flag["--variants"] != "pixels"  # the published row stands in on the CPU
        outs.add(flag["--out"])
        assert flag["--run"] == "default" and "--heads" not in flag  # its shipped heads
        if flag["--variants"] == "dream":
            assert unit.needs == ("data",) and flag["--data"] == "{out}/data/dmcs250"
        else:
            assert unit.needs == ()
    assert len(outs) == len(runs)  # each resumes from its own checkpoint


def test_rliable_is_imported_only_where_the_page_is_made():
    code = (
        "import sys; from keypoint_wm.reproduce import build; build('agents'); "
        "build('agents', smoke=True); print('rliable' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


# --- The page, from records -----------------------------------------------------------------


def _unit_result(variant: str, value: float, repeat: int = 2) -> dict:
    """A unit result as ``evaluate agents`` writes it (agent steps, SAC, 10 episodes)."""
    trains = variant in ("state", "latent")
    unit = {
        "settings": {"action_repeat": repeat},
        "env_steps": 50_000 if trains else 0,
        "seconds": 2_000.0,
        "final_return": value,
        "final_episode_returns": [value - 1.0, value + 1.0],
        "curve": [[5_000 * i, value * i / 10] for i in range(1, 11)] if trains else [[0, value]],
    }
    if variant == "dream":
        unit |= {"imagined_steps": 50_000, "imagined_curve": [[50_000, value]]}
    return unit


def _records(protocol: Protocol, returns: Callable[[str, str, int], float]) -> dict:
    """Current records of every unit of ``protocol``: agents return ``returns(task,
    variant, seed)``."""

    def record(name: str, figures: dict) -> UnitResult:
        unit = protocol.unit(name)
        uses = {"world_model": WEIGHTS, "export": "fedcba9876543210"}
        return UnitResult(protocol.name, name, unit.kind, unit.digest, unit.shown(), figures,
                          uses, "c0ffee", {"cpu": "test"}, 60.0, "")  # fmt: skip

    records = {}
    settings = AgentSettings()
    for task in settings.tasks:
        for variant in settings.variants:
            for seed in settings.seeds:
                figures = agent_figures(_unit_result(variant, returns(task, variant, seed)))
                name = unit_name(task, variant, seed)
                records[name] = record(name, figures)
    return protocol.current(records)


BASE = {"random": 100.0, "state": 800.0, "latent": 400.0, "dream": 250.0}


def _returns(task: str, variant: str, seed: int) -> float:
    return BASE[variant] + 10.0 * seed + (5.0 if task == "walker-walk" else 0.0)


def _row(page: str, first: str) -> str:
    return next(line for line in page.splitlines() if line.startswith(f"| {first} |"))


def test_the_page_pools_the_seeds_and_marks_the_published_rows(tmp_path):
    protocol = agents.protocol()
    results = _records(protocol, _returns)
    page = protocol.page(results, tmp_path)
    header = _row(page, "variant")
    tasks = [c.strip() for c in header.strip("|").split("|")][1:]
    assert tasks == ["reacher-easy", "walker-walk", "cheetah-run", "cartpole-balance"]
    latent = [c.strip() for c in _row(page, "latent").strip("|").split("|")][1:]
    for task, cell in zip(tasks, latent, strict=True):
        values = [_returns(task, "latent", s) for s in (0, 1, 2)]
        assert cell == f"{mean_ci_cell(values, '.1f')} (3)"  # mean ± 95% CI over 3 seeds
    assert "| walker-walk | latent | seed 0: 405.0, seed 1: 415.0, seed 2: 425.0 |" in page
    # The published rows say so, with their action repeats; no published cartpole figure.
    pixel = _row(page, "pixel SAC (published: CURL Table 1)")
    assert "145 ± 30 (action repeat 4)" in pixel and "42 ± 12 (action repeat 2)" in pixel
    assert pixel.endswith("| - |")
    assert "| state SAC (published: DrQ Table 1, means only) | 919 |" in page
    # Env steps per second of the state and latent agents: 100,000 in 2,000 s.
    assert "| reacher-easy | 50.0 | 50.0 |" in page
    assert f"weights `{WEIGHTS['weights']}` at step 100, shipped weights `fedcba9876543210`" in page
    assert "100,000 environment steps per task at action repeat 2" in page
    assert (tmp_path / "agents-curves.png").read_bytes()[:4] == b"\x89PNG"
    # The protocol's bars, met by these returns.
    assert re.search(r"- `state` at least 70% .*reacher-easy 810.0 \(bar 522\).*: met\.", page)
    assert re.search(r"- `latent` above random .*reached on reacher-easy, walker-walk, "
                     r"cheetah-run\): met\.", page)  # fmt: skip
    assert re.search(r"- `dream` above random on at least 1 task \(on reacher-easy, "
                     r"walker-walk, cheetah-run;.*\): met\.", page)  # fmt: skip
    assert "at or above the published CURL on at least one task: walker-walk, cheetah-run" in page
    # Regenerated from the same records, the page is the same (--report-only).
    assert protocol.page(results, tmp_path) == page


def test_a_task_where_the_state_agent_does_not_clear_random_counts_for_no_bar(tmp_path):
    def returns(task: str, variant: str, seed: int) -> float:
        if task == "cheetah-run" and variant == "state":
            return _returns(task, "random", seed)
        return _returns(task, variant, seed)

    protocol = agents.protocol()
    page = protocol.page(_records(protocol, returns), tmp_path)
    line = next(line for line in page.splitlines() if line.startswith("- `latent`"))
    assert line.endswith("not counted (the state agent does not clear random on cheetah-run).")
    line = next(line for line in page.splitlines() if line.startswith("- `state`"))
    assert line.endswith(": not met.")  # cheetah-run 110.0 < 160


def test_the_aggregate_is_rliables_iqm_with_stratified_bootstrap_intervals(tmp_path):
    from rliable import library, metrics

    protocol, settings = agents.protocol(), AgentSettings()
    page = protocol.page(_records(protocol, _returns), tmp_path)
    matrix = np.array(
        [[_returns(t, "latent", s) / 1000 for t in settings.tasks] for s in settings.seeds]
    )
    iqm = float(np.mean(np.sort(matrix.ravel())[3:9]))  # the middle half of 12 scores
    rows = [line for line in page.splitlines() if line.startswith("| latent |") and "[" in line]
    assert len(rows) == 1  # the across-tasks table's row
    found = [c.strip() for c in rows[0].split("|") if c.strip().startswith(f"{iqm:.3f} [")]
    assert found, (iqm, rows)
    low, high = (float(x) for x in re.findall(r"\d\.\d+", found[0])[1:])
    assert low < iqm < high
    np.random.seed(0)  # noqa: NPY002 (rliable's resamples come from NumPy's global generator)
    points, intervals = library.get_interval_estimates(
        {"latent": matrix}, lambda m: np.array([metrics.aggregate_iqm(m)]), reps=BOOTSTRAP_REPS
    )
    assert found[0] == f"{points['latent'][0]:.3f} [{intervals['latent'][0, 0]:.3f}, " + (
        f"{intervals['latent'][1, 0]:.3f}]"
    )


def test_the_readme_headline_quotes_the_page(tmp_path):
    protocol = agents.protocol()
    empty = protocol.headline({}) if protocol.headline else ""
    quoted = re.findall(r'"([^"]+)"', empty)
    assert empty.startswith("in progress") and quoted
    assert quoted[0] in protocol.page({}, tmp_path)
    for results in (
        _records(protocol, _returns),  # every unit: the IQM per variant
        {k: v for k, v in _records(protocol, _returns).items() if "reacher" in k},  # one task
    ):
        headline = protocol.headline(results) if protocol.headline else ""
        page = protocol.page(results, tmp_path)
        figures = re.findall(r"(?<![\w.,])-?\d[\d,]*(?:\.\d+)?", headline)
        assert figures and all(re.search(rf"(?<![\w.,]){re.escape(f)}(?![\w])", page)
                               for f in figures), headline  # fmt: skip


# --- evaluate agents --seed -----------------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A two-step world model on 4 short cartpole-balance episodes (32x32, action repeat 2)."""
    from kwm_testing import tiny_config

    from keypoint_wm.collect.config import CollectConfig
    from keypoint_wm.collect.runner import collect_dataset
    from keypoint_wm.train import train

    base = tmp_path_factory.mktemp("agents-target")
    data, out = base / "data", base / "run"
    collect_dataset(
        CollectConfig(tasks=(TASK,), episodes=4, steps=12, action_repeat=2, size=32, seed=1,
                      out=data),
        workers=1, progress=False,
    )  # fmt: skip
    train(tiny_config(2, preset="dmcs-cpu"), data, out, progress=False)
    return out


def evaluate_agents(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", "evaluate", "agents", *args],
        capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip


@pytest.mark.integration
def test_seed_runs_exactly_that_agent_seed(run, tmp_path):
    out = tmp_path / "out"
    done = evaluate_agents("--run", str(run), "--tasks", TASK, "--variants", "random,state",
                           "--algo", "sac", "--steps", "16", "--eval-every", "8", "--seed", "2",
                           "--eval-episodes", "2", "--time-limit", "0.2", "--out", str(out),
                           "--quiet", "--device", "cpu")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in (out / "units" / TASK).glob("*.json")) == [
        "random-seed2.json",
        "state-seed2.json",
    ]
    report = json.loads((out / "agents.json").read_text())
    assert report["agent_seeds"] == [2] and report["seeds"] == 1
    assert report["tasks"][TASK]["state"]["seeds"] == [2]
    # What reproduce records of the unit: environment steps (agent steps x 2) and a rate.
    unit = json.loads((out / "units" / TASK / "state-seed2.json").read_text())
    figures = agent_figures(unit)
    assert [point[0] for point in figures["curve"]] == [16, 32] and figures["env_steps"] == 32
    assert figures["env_steps_per_second"] == pytest.approx(32 / unit["seconds"], rel=0.01)
    assert figures["final_return"] == pytest.approx(np.mean(figures["final_episode_returns"]))
    random = agent_figures(json.loads((out / "units" / TASK / "random-seed2.json").read_text()))
    assert random["env_steps"] == 0 and random["env_steps_per_second"] is None


@pytest.mark.integration
@pytest.mark.parametrize(
    ("flags", "says"),
    [(["--seed", "-1"], "--seed expects an agent seed >= 0, got -1"),
     (["--seed", "1", "--seeds", "2"], "--seed 1 runs that agent seed alone")],
)  # fmt: skip
def test_seed_refuses_bad_input_in_one_line(run, tmp_path, flags, says):
    out = tmp_path / "out"
    done = evaluate_agents("--run", str(run), "--tasks", TASK, "--out", str(out), *flags)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert says in lines[0] and lines[0].startswith("keypoint-wm evaluate agents: error: ")
    assert not out.exists()


def test_the_dream_bar_quotes_the_shipped_models_dream_fidelity(tmp_path):
    from keypoint_wm.reproduce import default_model

    protocol, shipped = agents.protocol(), default_model.protocol()
    results = _records(protocol, _returns)
    unit = shipped.unit("fidelity-export")
    correlations = {"reacher-easy": 0.25, "walker-walk": 0.5, "cheetah-run": 0.75}

    def quoted(weights: dict) -> str:
        figures = {t: {"30": {"imagined_mean": 0.0}, "4": {"imagined_mean": c}}
                   for t, c in correlations.items()}  # fmt: skip
        UnitResult(shipped.name, unit.name, unit.kind, unit.digest, unit.shown(),
                   figures, {"world_model": weights}, "c0ffee",
                   {"cpu": "test"}, 60.0, "").write(tmp_path / shipped.name)  # fmt: skip
        page = protocol.page(results, tmp_path)
        return next(line for line in page.splitlines() if line.startswith("- `dream`"))

    assert "reacher-easy 0.250, walker-walk 0.500, cheetah-run 0.750): met." in quoted(WEIGHTS)
    # Measured on other weights than the agents read: not quoted.
    assert "same weights: not recorded): met." in quoted({"step": 1, "weights": "other"})
