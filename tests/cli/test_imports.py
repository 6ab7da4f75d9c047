"""The command line without the Gymnasium side: building the parser imports nothing heavy, and
``train``, ``evaluate`` and ``rewards`` run where gymnasium, dm_control and
stable_baselines3 cannot be imported.

Each check runs the real ``python -m keypoint_wm.cli`` in a subprocess whose
``sitecustomize`` installs an import hook that makes those three packages raise ImportError.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kwm_testing import TINY_OVERRIDES

pytestmark = pytest.mark.integration

BLOCKED = ("gymnasium", "dm_control", "stable_baselines3")

SITECUSTOMIZE = f'''
import sys

BLOCKED = {BLOCKED!r}


class _Blocker:
    """Refuses the Gymnasium-side packages, as on a machine without them."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is blocked by the test (not installed here)")
        return None


sys.meta_path.insert(0, _Blocker())
'''

COMMANDS = (
    (),
    ("collect",),
    ("data",),
    ("data", "info"),
    ("data", "check"),
    ("data", "basketball"),
    ("data", "figures"),
    ("data", "shapes"),
    ("data", "human36m"),
    ("train",),
    ("evaluate",),
    ("evaluate", "tracking"),
    ("evaluate", "video"),
    ("evaluate", "actions"),
    ("evaluate", "diversity"),
    ("evaluate", "compare"),
    ("evaluate", "agents"),
    ("evaluate", "state-probe"),
    ("evaluate", "dream-fidelity"),
    ("rewards",),
    ("rewards", "train"),
    ("rewards", "evaluate"),
    ("bench",),
    ("bench", "collect"),
    ("bench", "train"),
    ("bench", "wrapper"),
    ("bench", "replay"),
    ("reproduce",),
)


@pytest.fixture(scope="module")
def blocked_env(tmp_path_factory) -> dict[str, str]:
    """Environment of a subprocess in which gymnasium, dm_control and SB3 cannot import."""
    folder = tmp_path_factory.mktemp("blocker")
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


def cli(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_the_hook_blocks_the_gymnasium_side(blocked_env):
    for name in BLOCKED:
        result = subprocess.run(
            [sys.executable, "-c", f"import {name}"], capture_output=True, text=True,
            env=blocked_env, timeout=60,
        )  # fmt: skip
        assert result.returncode != 0 and "blocked by the test" in result.stderr


def test_building_the_parser_imports_nothing_heavy():
    code = (
        "import sys\n"
        "from keypoint_wm.cli import build_parser\n"
        "build_parser()\n"
        "heavy = ('torch', 'gymnasium', 'dm_control', 'stable_baselines3', 'matplotlib')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_every_help_works_without_the_gymnasium_side(blocked_env):
    for command in COMMANDS:
        result = cli(blocked_env, *command, "--help", timeout=120)
        assert result.returncode == 0, (command, result.stderr[-2000:])
        assert result.stdout.startswith("usage: keypoint-wm"), command


def test_train_evaluate_and_rewards_run_without_the_gymnasium_side(blocked_env, tmp_path):
    data, run = tmp_path / "data", tmp_path / "run"
    result = cli(blocked_env, "data", "basketball", "--out", str(data), "--sequences", "24",
                 "--size", "32", "--quiet")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]

    sets = [f"--set={k}={v}" for k, v in TINY_OVERRIDES.items()]
    result = cli(blocked_env, "train", "--data", str(data), "--preset", "basketball-cpu",
                 "--out", str(run), "--steps", "2", "--device", "cpu", "--quiet",
                 "--set=train.probe_every=0", *sets)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "trained" in result.stdout and "to step 2" in result.stdout

    figures = tmp_path / "tracking.json"
    result = cli(blocked_env, "evaluate", "tracking", "--run", str(run), "--data", str(data),
                 "--samples", "2", "--max-windows", "4", "--device", "cpu", "--quiet",
                 "--json", str(figures), "--plot", str(tmp_path / "tracking.png"))  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(json.loads(figures.read_text())["r2_observed"]) == 6  # ball + 5 offence

    result = cli(blocked_env, "rewards", "train", "--run", str(run), "--data", str(data),
                 "--window", "4", "--stride", "8", "--max-windows", "16", "--steps", "2",
                 "--validation-fraction", "0", "--device", "cpu", "--quiet")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run / "rewards").is_dir() and "held-out normalized MSE" in result.stdout


def test_flag_texts_repeated_in_the_parser_match_their_sources():
    """The parser repeats a few texts so that it need not import torch; they must agree."""
    from keypoint_wm.cli import data
    from keypoint_wm.data.human36m import DEFAULT_TEST_SUBJECTS, DEFAULT_TRAIN_SUBJECTS

    assert data.H36M_TRAIN_SUBJECTS == tuple(DEFAULT_TRAIN_SUBJECTS)
    assert data.H36M_TEST_SUBJECTS == tuple(DEFAULT_TEST_SUBJECTS)


def test_console_script_and_module_are_the_same_command():
    script = Path(sys.executable).with_name("keypoint-wm")
    if not script.exists():
        pytest.skip("the keypoint-wm console script is not installed beside this Python")
    by_script = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    by_module = subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", "--help"], capture_output=True, text=True
    )
    assert by_script.returncode == by_module.returncode == 0
    assert by_script.stdout == by_module.stdout
