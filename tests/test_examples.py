"""Smoke tests of examples/: each script runs end to end with a tiny budget on a real run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from latent_testing import tiny_dmc_run

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_dmc_run(tmp_path_factory.getbasetemp())


def example(name: str, *args: str, cwd: Path) -> str:
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=cwd,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.parametrize("algo", ["sac"])
def test_sb3_agent(run, tmp_path, algo):
    out = example(
        "sb3_agent.py", "--run", str(run), "--task", "cartpole-balance", "--algo", algo,
        "--timesteps", "16", "--envs", "2", "--time-limit", "0.1", cwd=tmp_path,
    )  # fmt: skip
    assert "latent features (both)" in out
    assert f"{algo} on cartpole-balance latent state: mean return" in out


def test_latent_vs_pixels_prints_both_returns(run, tmp_path):
    out = example(
        "latent_vs_pixels.py", "--run", str(run), "--task", "reacher-easy",
        "--timesteps", "16", "--envs", "2", "--time-limit", "0.08", cwd=tmp_path,
    )  # fmt: skip
    assert "latent-state return:" in out and "raw-pixel return:" in out


def test_counterfactual_writes_a_gif(run, tmp_path):
    out = example(
        "counterfactual.py", "--run", str(run), "--task", "cartpole-balance", "--keypoint",
        "1", "--observed", "3", "--future", "3", "--out", "cf.gif", cwd=tmp_path,
    )  # fmt: skip
    assert (tmp_path / "cf.gif").stat().st_size > 0 and (tmp_path / "cf.png").exists()
    assert "displacement" in out
