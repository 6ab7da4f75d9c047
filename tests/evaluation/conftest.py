"""Fixtures of the evaluation tests: a tiny figure stand-in dataset and tiny runs."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def figures_dir(tmp_path_factory):
    """The figure stand-in at 32x32: 36 sequences (6 per action) of 20 frames."""
    from keypoint_wm.data.figures import write_figures_dataset

    out = tmp_path_factory.mktemp("figures") / "data"
    write_figures_dataset(out, num_sequences=36, num_frames=20, size=32, progress=False)
    return out


@pytest.fixture(scope="session")
def figures_run(figures_dir, tmp_path_factory):
    """A tiny Struct-VRNN trained for 4 steps on the tiny figure dataset."""
    from kwm_testing import tiny_config

    from keypoint_wm.train import train

    run = tmp_path_factory.mktemp("runs") / "struct-vrnn"
    train(tiny_config(4, "human36m-cpu"), figures_dir, run, progress=False)
    return run


@pytest.fixture(scope="session")
def rnn_run(basketball_dir, tmp_path_factory):
    """A tiny deterministic Struct-RNN trained for 2 steps on the tiny Basketball dataset."""
    from kwm_testing import tiny_config

    from keypoint_wm.train import train

    run = tmp_path_factory.mktemp("runs") / "struct-rnn"
    train(tiny_config(2, **{"model.dynamics": "rnn"}), basketball_dir, run, progress=False)
    return run
