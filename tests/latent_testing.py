"""A tiny action-conditioned DMCS world model, trained once per test session.

Shared by tests/envs/test_latent*.py, tests/rewards and tests/test_examples.py: real
dm_control rollouts (32x32, two tasks with different action sizes) and a real few-step
training of the model, cached under pytest's session base temp directory.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

TASKS = ("cartpole-balance", "reacher-easy")
SIZE = 32


def tiny_dmc_data(base: Path) -> Path:
    """6 episodes x 31 frames of each of :data:`TASKS` at 32x32, action repeat 2."""
    from keypoint_wm.collect.config import CollectConfig
    from keypoint_wm.collect.runner import collect_dataset

    out = Path(base) / "kwm-dmc-data"
    if not (out / "manifest.json").exists() or len(list(out.glob("*/*.npz"))) < 12:
        config = CollectConfig(
            tasks=TASKS, episodes=6, steps=30, action_repeat=2, size=SIZE, seed=1, out=out
        )
        collect_dataset(config, workers=1, progress=False)
    return out


def tiny_dmc_run(base: Path, representation: str = "keypoints") -> Path:
    """A tiny action-conditioned Struct-VRNN trained for 4 steps on :func:`tiny_dmc_data`
    (``representation="cnn"``: a CNN-VRNN, in a folder of its own).

    Half of the episode files are held out (``train.test_fraction=0.5``) so that the
    reward tests have a test split to work on.
    """
    from kwm_testing import tiny_config

    from keypoint_wm.checkpoint import latest_checkpoint
    from keypoint_wm.train import train

    data = tiny_dmc_data(base)
    suffix = "" if representation == "keypoints" else f"-{representation}"
    run = Path(base) / f"kwm-dmc-run{suffix}"
    if latest_checkpoint(run) is None:
        overrides = {"train.test_fraction": 0.5}
        if suffix:
            overrides["model.representation"] = representation
        config = tiny_config(4, preset="dmcs-cpu", **overrides)
        train(config, data, run, progress=False)
    return run
