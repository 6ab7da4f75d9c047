"""`keypoint-wm evaluate state-probe`: the ridge probe from the filtered latent to the state."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keypoint_wm.data.state_layout import StatePart
from keypoint_wm.evaluation.state_probe import fit_state_probe

os.environ.setdefault("MUJOCO_GL", "egl")

PARTS = (StatePart("position", 0, 3, "position"), StatePart("velocity", 3, 5, "velocity"))


SPLITS = ("train", "validation", "test")


def splits(rng: np.random.Generator, frames: int = 300) -> dict[str, np.ndarray]:
    return {s: rng.normal(size=(frames, 5)) for s in ("train", "validation", "test")}


def test_a_latent_that_is_a_linear_function_of_the_state_scores_one():
    rng = np.random.default_rng(0)
    state = splits(rng)
    mixing = rng.normal(size=(5, 40))
    latent = {s: x @ mixing + 3.0 for s, x in state.items()}
    probe = fit_state_probe(latent, state, PARTS)
    assert probe.positions == pytest.approx(1.0, abs=1e-4)
    assert probe.velocities == pytest.approx(1.0, abs=1e-4)
    assert set(probe.parts) == {"position", "velocity"}
    assert probe.frames == {"train": 300, "validation": 300, "test": 300}


def test_a_latent_blind_to_the_velocities_scores_them_near_zero():
    rng = np.random.default_rng(1)
    state = splits(rng)
    latent = {
        s: np.concatenate([x[:, :3], rng.normal(size=(len(x), 6))], 1) for s, x in state.items()
    }
    probe = fit_state_probe(latent, state, PARTS)
    assert probe.positions > 0.99
    assert probe.velocities is not None and probe.velocities < 0.05


def test_the_ridge_strength_is_chosen_on_validation_not_test():
    """A test split the probe fits badly does not change the chosen strength."""
    rng = np.random.default_rng(2)
    state = splits(rng, 60)
    mixing = rng.normal(size=(5, 50))
    latent = {s: x @ mixing + rng.normal(size=(60, 50)) for s, x in state.items()}
    chosen = fit_state_probe(latent, state, PARTS)
    shuffled = dict(state, test=state["test"][::-1].copy())
    assert fit_state_probe(latent, shuffled, PARTS).alpha == chosen.alpha


def test_a_dimension_that_never_varies_is_left_out_of_the_averages():
    rng = np.random.default_rng(3)
    state = splits(rng)
    for x in state.values():
        x[:, 4] = 1.3  # e.g. walker's height while it lies still
    mixing = rng.normal(size=(4, 10))
    latent = {s: x[:, :4] @ mixing for s, x in state.items()}
    probe = fit_state_probe(latent, state, PARTS)
    assert probe.velocities == pytest.approx(1.0, abs=1e-4)


def test_raw_angles_are_scored_through_their_cosines_and_sines():
    """A multi-turn angle (reacher's shoulder) is what the image shows only modulo 2 pi: a
    latent holding the arm's direction probes to R^2 ~ 1 through cos/sin, not on the raw
    angle."""
    from keypoint_wm.evaluation.state_probe import angle_targets

    rng = np.random.default_rng(4)
    parts = (StatePart("position", 0, 1, "angle"), StatePart("velocity", 1, 2, "velocity"))
    state = {s: np.stack([rng.uniform(-4, 7, 400), rng.normal(size=400)], 1) for s in SPLITS}
    mixing = rng.normal(size=(3, 3))
    latent = {
        s: np.stack([np.cos(x[:, 0]), np.sin(x[:, 0]), x[:, 1]], 1) @ mixing
        for s, x in state.items()
    }
    raw = fit_state_probe(latent, state, parts)
    targets = {s: angle_targets(x, parts)[0] for s, x in state.items()}
    probe = fit_state_probe(latent, targets, angle_targets(state["test"], parts)[1])
    assert probe.positions == pytest.approx(1.0, abs=1e-4)
    assert raw.positions is not None and raw.positions < 0.5


def test_named_entries_are_scored_one_by_one_behind_a_widened_angle():
    """An Atari game's ball byte among RAM bytes the latent does not hold: the named byte
    scores ~1 on its own while the whole part averages far lower; an angle part before it
    (widened to cosine and sine) does not shift which column is scored."""
    from keypoint_wm.evaluation.state_probe import angle_targets, moved_columns, named_entries

    rng = np.random.default_rng(5)
    parts = (StatePart("angle", 0, 1, "angle"), StatePart("ram", 1, 9, "position"))
    state = {s: rng.normal(size=(400, 9)) for s in SPLITS}
    latent = {s: np.stack([np.cos(x[:, 0]), np.sin(x[:, 0]), x[:, 4]], 1) for s, x in state.items()}
    named = named_entries({"ram_bytes": {"ball_x": 4, "noise": 7, "outside": 200}}, parts)
    assert named == {"ball_x": 4, "noise": 7}
    targets = {s: angle_targets(x, parts)[0] for s, x in state.items()}
    widened = angle_targets(state["test"], parts)[1]
    moved = moved_columns(named, parts, widened)
    assert moved == {"ball_x": 5, "noise": 8}
    probe = fit_state_probe(latent, targets, widened, named=moved)
    assert probe.named["ball_x"] == pytest.approx(1.0, abs=1e-3)
    assert probe.named["noise"] < 0.05
    assert probe.parts["ram"] < 0.3
    assert probe.to_json()["named"] == probe.named


# ---------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def probe_setup(tmp_path_factory):
    """Real cartpole rollouts with their state, and a tiny run trained on them for 2 steps."""
    from kwm_testing import tiny_config

    from keypoint_wm.collect.config import CollectConfig
    from keypoint_wm.collect.runner import collect_dataset
    from keypoint_wm.train import train

    base = tmp_path_factory.mktemp("state-probe")
    data = base / "data"
    config = CollectConfig(
        tasks=("cartpole-balance",),
        episodes=16,
        steps=12,
        action_repeat=2,
        size=32,
        seed=4,
        out=data,
    )
    collect_dataset(config, workers=1, progress=False)
    splits = {"train.test_fraction": 0.25, "train.validation_fraction": 0.25}
    runs = []
    for seed in (0, 1):
        run = base / f"runs/seed_{seed}"
        train(
            tiny_config(2, "dmcs-cpu", **splits, **{"seed": seed}),
            data,
            run,
            progress=False,
        )
        runs.append(run)
    return data, runs


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", "evaluate", "state-probe", *args, "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.integration
def test_state_probe_writes_the_table_json_and_plot_over_seeds(probe_setup, tmp_path):
    data, runs = probe_setup
    out, gif = tmp_path / "probe.json", tmp_path / "pictures" / "keypoints.gif"
    done = cli(
        "--run", str(runs[0].parent), "--data", str(data), "--json", str(out), "--gif", str(gif)
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "positions" in done.stdout and "cartpole-balance" in done.stdout
    result = json.loads(out.read_text())
    assert result["features"] == "both"
    task = result["tasks"]["cartpole-balance"]
    assert set(task) >= {"positions", "velocities", "parts", "alpha", "frames"}
    assert set(task["parts"]) == {"position", "velocity"}
    assert -1e3 < task["positions"] <= 1.0
    assert set(result["untrained"]["tasks"]) == {"cartpole-balance"}  # the floor, always
    assert len(result["per_run"]) == 2 and result["seed_ci95"] is not None
    assert out.with_suffix(".png").stat().st_size > 0
    # The frames come from the three splits, none shared: the run's own fractions.
    frames = task["frames"]
    assert frames["train"] > 0 and frames["validation"] > 0 and frames["test"] > 0
    # The keypoints of the first run on a whole test episode (13 frames of 32 x 32, x4).
    import imageio.v3 as iio

    overlay = iio.imread(gif)
    assert overlay.shape[:3] == (13, 128, 128)


@pytest.mark.integration
def test_state_probe_refuses_data_without_state_in_one_line(probe_setup, tmp_path):
    from keypoint_wm.data.episodes import iter_episode_files, load_episode, save_episode

    data, runs = probe_setup
    old = tmp_path / "old"
    for path in iter_episode_files(data):
        episode = load_episode(path)
        episode.state = None
        save_episode(old / path.relative_to(data), episode)
    done = cli("--run", str(runs[0]), "--data", str(old))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "'state'" in lines[0] and "collect" in lines[0]
    bad = cli("--run", str(runs[0]), "--data", str(data), "--tasks", "cheetah-run")
    assert bad.returncode == 2 and "--tasks cheetah-run" in bad.stderr


def test_state_probe_help_lists_the_features():
    done = subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", "evaluate", "state-probe", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "{keypoints,hidden,both}" in done.stdout
