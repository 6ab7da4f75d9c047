"""Bad flags (``--seed`` against ``--set seed``, ``--out``, ``--device``) end in one line
naming the flag, the right exit code, no traceback, and nothing on disk changed. Each runs the
real command in a subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from kwm_testing import TINY_OVERRIDES

pytestmark = pytest.mark.integration

TINY_SETS = [f"--set={k}={v}" for k, v in {**TINY_OVERRIDES, "train.probe_every": 0}.items()]


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` (or ``root`` itself) -> sha256 of its bytes."""
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, *words: str) -> None:
    assert result.returncode == code, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and ": error: " in lines[0], result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


# ------------------------------------------------------------------------ --seed and --set seed
def test_set_seed_is_not_overwritten_by_the_seed_default(basketball_dir, tmp_path):
    run = tmp_path / "run"
    result = cli("train", "--data", str(basketball_dir), "--preset", "basketball-cpu",
                 "--out", str(run), "--steps", "2", "--device", "cpu", "--quiet",
                 "--set", "seed=7", *TINY_SETS)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run / "config.json").read_text())["seed"] == 7


def test_seed_and_set_seed_that_disagree_are_refused(basketball_dir, tmp_path):
    run = tmp_path / "run"
    before = tree_digest(basketball_dir)
    result = cli("train", "--data", str(basketball_dir), "--preset", "basketball-cpu",
                 "--out", str(run), "--seed", "3", "--set", "seed=7", *TINY_SETS)  # fmt: skip
    assert_one_line_error(result, 2, "--seed 3", "--set seed=7")
    assert not run.exists() and tree_digest(basketball_dir) == before


# ---------------------------------------------------------------------------------------- --out
def test_train_out_pointing_at_a_file_is_refused(basketball_dir, tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("my notes")
    before = tree_digest(basketball_dir)
    result = cli("train", "--data", str(basketball_dir), "--preset", "basketball-cpu",
                 "--out", str(target), *TINY_SETS)  # fmt: skip
    assert_one_line_error(result, 2, f"--out {target}", "is a file")
    assert target.read_text() == "my notes" and tree_digest(basketball_dir) == before


# ------------------------------------------------------------------------------------- --device
def test_device_banana_is_a_usage_error(tiny_run, basketball_dir, tmp_path):
    run = tmp_path / "run"
    before = {**tree_digest(tiny_run), **tree_digest(basketball_dir)}
    result = cli("train", "--data", str(basketball_dir), "--preset", "basketball-cpu",
                 "--out", str(run), "--device", "banana", *TINY_SETS)  # fmt: skip
    assert_one_line_error(result, 2, "--device", "'banana'", "cpu, cuda or cuda:N")
    assert not run.exists()
    result = cli("evaluate", "tracking", "--run", str(tiny_run), "--data", str(basketball_dir),
                 "--device", "banana", "--json", str(tmp_path / "t.json"))  # fmt: skip
    assert_one_line_error(result, 2, "--device", "'banana'")
    assert not (tmp_path / "t.json").exists()
    assert {**tree_digest(tiny_run), **tree_digest(basketball_dir)} == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_where_there_is_none_is_a_usage_error(tiny_run, basketball_dir, tmp_path):
    before = {**tree_digest(tiny_run), **tree_digest(basketball_dir)}
    result = cli("evaluate", "tracking", "--run", str(tiny_run), "--data", str(basketball_dir),
                 "--device", "cuda", "--plot", str(tmp_path / "t.png"))  # fmt: skip
    assert_one_line_error(result, 2, "--device cuda", "CUDA is not available", "--device cpu")
    assert not (tmp_path / "t.png").exists()
    result = cli("train", "--data", str(basketball_dir), "--preset", "basketball-cpu",
                 "--out", str(tmp_path / "run"), "--device", "cuda", *TINY_SETS)  # fmt: skip
    assert_one_line_error(result, 2, "--device cuda", "CUDA is not available")
    assert not (tmp_path / "run").exists()
    assert {**tree_digest(tiny_run), **tree_digest(basketball_dir)} == before
