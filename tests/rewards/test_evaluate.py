"""``rewards evaluate`` plans its variants: the runs grouped as every side-by-side command
groups them (tests/test_run_groups.py), each seed with the ``--heads`` and ``--inputs`` of
the ``--run`` it came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from keypoint_wm.errors import UsageError
from keypoint_wm.rewards.evaluate import _plan


def make_run(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    return path


def test_each_seed_gets_the_heads_and_inputs_of_its_run(tmp_path):
    a, b, c = (make_run(tmp_path / name) for name in ("a", "b", "c"))
    planned = _plan(
        [a, c, b], ["struct", "cnn", "struct"], ["ha", "hc", "hb"], ["hidden", "x", "y"]
    )
    assert [p.variant.name for p in planned] == ["struct", "cnn"]
    assert planned[0].runs == [(a, Path("ha"), "hidden"), (b, Path("hb"), "y")]
    assert planned[1].runs == [(c, Path("hc"), "x")]


def test_a_seed_folder_reads_each_seeds_own_heads(tmp_path):
    out = tmp_path / "out"
    for seed in (0, 1):
        make_run(out / f"seed_{seed}")
    (planned,) = _plan([out], None, None, None)
    assert planned.variant.name == "out" and not planned.variant.labelled
    assert planned.runs == [
        (out / "seed_0", out / "seed_0" / "rewards", None),
        (out / "seed_1", out / "seed_1" / "rewards", None),
    ]
    with pytest.raises(UsageError, match=r"^--heads h: --run .*out is a folder of seed runs"):
        _plan([out], None, ["h"], None)


def test_heads_and_inputs_must_be_one_per_run(tmp_path):
    run = make_run(tmp_path / "a")
    with pytest.raises(UsageError, match=r"^--heads: give one directory per --run \(2\), got 1"):
        _plan([run, run], ["x", "y"], ["h"], None)
    with pytest.raises(UsageError, match=r"^--inputs: give it once for every run or once per"):
        _plan([run, run], ["x", "y"], None, ["hidden"] * 3)
