"""Shared test set-up: headless rendering, small thread counts, tiny datasets."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before anything imports dm_control

import pytest


@pytest.fixture(scope="session")
def basketball_dir(tmp_path_factory):
    """A tiny built-in Basketball dataset (32x32 frames, 24 sequences of 50 frames)."""
    from keypoint_wm.data.basketball import write_basketball_dataset

    out = tmp_path_factory.mktemp("basketball") / "data"
    write_basketball_dataset(out, num_sequences=24, seed=0, size=32, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_run(basketball_dir, tmp_path_factory):
    """A tiny Struct-VRNN trained for 4 steps on the tiny Basketball dataset."""
    from kwm_testing import tiny_config

    from keypoint_wm.train import train

    run = tmp_path_factory.mktemp("runs") / "tiny"
    train(tiny_config(4), basketball_dir, run, progress=False)
    return run


def pytest_configure(config):
    # A Gymnasium MuJoCo env the tests make directly (as a user would, for LatentObservation)
    # would otherwise print MuJoCo's model deprecations and append them to MUJOCO_LOG.TXT in
    # the checkout; the package's own makers route them the same way.
    from keypoint_wm.envs.gl import route_mujoco_warnings

    route_mujoco_warnings()
    config.addinivalue_line(
        "markers", "cuda: needs a CUDA device (skipped without one; reproduce gpu-check runs them)"
    )
