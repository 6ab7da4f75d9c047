"""Basketball: simulator, renderer, court mapping, dataset writer and real-data loader."""

from __future__ import annotations

import itertools
import json
import os

import numpy as np
import pytest

from keypoint_wm.conventions import keypoint_to_pixel, pixel_to_keypoint
from keypoint_wm.data import basketball as bb
from keypoint_wm.data.basketball_sim import FPS, simulate_basketball
from keypoint_wm.data.episodes import check_episode_file, load_episode, read_manifest
from keypoint_wm.errors import DataError, UsageError

LEFT_BASKET = np.array([5.25, 25.0])
RIGHT_BASKET = np.array([94 - 5.25, 25.0])


@pytest.fixture(scope="module")
def sims() -> np.ndarray:
    return simulate_basketball(100, seed=0)


def objects(positions: np.ndarray) -> np.ndarray:
    """[..., T, 22] -> [..., T, 11, 2]: ball, offence 1-5, defence 1-5."""
    return positions.reshape(*positions.shape[:-1], 11, 2)


def lone(position: tuple[float, float], column: int = 1, frames: int = 1) -> np.ndarray:
    """A [T, 22] array with one object at ``position`` and the rest far outside the view."""
    positions = np.tile(np.float32([70.0, 25.0]), (frames, 11))
    positions[:, 2 * column : 2 * column + 2] = position
    return positions


# -- simulator ------------------------------------------------------------------------------


def test_simulator_shape_dtype_and_determinism(sims: np.ndarray) -> None:
    assert sims.shape == (100, 50, 22) and sims.dtype == np.float32
    assert np.isfinite(sims).all()
    np.testing.assert_array_equal(simulate_basketball(3, seed=0), sims[:3])  # same seed, prefix
    assert not np.allclose(simulate_basketball(3, seed=1), sims[:3])
    assert simulate_basketball(2, seed=0, num_frames=7).shape == (2, 7, 22)
    assert simulate_basketball(0).shape == (0, 50, 22)


def test_everything_stays_on_court_in_one_half(sims: np.ndarray) -> None:
    p = objects(sims)
    assert p[..., 0].min() >= 0 and p[..., 0].max() <= 94
    assert p[..., 1].min() >= 0 and p[..., 1].max() <= 50
    right = bb.attacks_right(sims)
    assert 20 < right.sum() < 80  # both baskets are attacked
    offence_x = p[:, :, 1:6, 0]
    assert (offence_x[right] >= 47).all() and (offence_x[~right] <= 47).all()


def test_speeds_are_plausible(sims: np.ndarray) -> None:
    p = objects(sims)
    speed = np.linalg.norm(np.diff(p, axis=1), axis=-1) * FPS  # ft/s, [N, T-1, 11]
    players = speed[..., 1:]
    assert players.max() < 25.0
    assert 2.0 < players.mean() < 12.0  # mostly well below the top speed
    accel = np.linalg.norm(np.diff(p[..., 1:, :], 2, axis=1), axis=-1) * FPS**2
    assert np.percentile(accel, 99) < 25.0  # smooth, acceleration-limited
    assert speed[..., 0].max() < 60.0  # ball flights


def test_ball_is_held_or_flying_and_changes_hands(sims: np.ndarray) -> None:
    p = objects(sims)
    ball, offence = p[:, :, 0], p[:, :, 1:6]
    gap = np.linalg.norm(ball[:, :, None] - offence, axis=-1)
    held = gap.min(-1) < 3.0
    ball_speed = np.linalg.norm(np.diff(ball, axis=1), axis=-1) * FPS
    at_rim = np.minimum(
        np.linalg.norm(ball - LEFT_BASKET, axis=-1), np.linalg.norm(ball - RIGHT_BASKET, axis=-1)
    )
    flying = ball_speed > 15.0
    ok = held[:, 1:] | flying | (at_rim[:, 1:] < 5.0)
    assert ok.all()
    assert 0.7 < held.mean() < 0.98
    holder = np.where(held, gap.argmin(-1), -1)
    changes = [np.count_nonzero(np.diff(h[h >= 0])) for h in holder]
    assert sum(changes) > 100 and np.count_nonzero(changes) > 50


def test_defenders_shadow_their_man_from_the_basket_side(sims: np.ndarray) -> None:
    p = objects(sims)
    offence, defence = p[:, :, 1:6], p[:, :, 6:]
    assigned = np.linalg.norm(defence - offence, axis=-1).mean()
    others = np.mean(
        [np.linalg.norm(defence - np.roll(offence, k, axis=2), axis=-1).mean() for k in (1, 2)]
    )
    assert assigned < 8.0 and assigned < 0.5 * others
    basket = np.where(bb.attacks_right(sims)[:, None, None, None], RIGHT_BASKET, LEFT_BASKET)
    nearer = np.linalg.norm(defence - basket, axis=-1) < np.linalg.norm(offence - basket, axis=-1)
    assert nearer.mean() > 0.8


# -- court mapping and renderer -------------------------------------------------------------


def test_render_shapes_and_dtype(sims: np.ndarray) -> None:
    one = bb.render_basketball(sims[0])
    assert one.shape == (50, 64, 64, 3) and one.dtype == np.uint8
    many = bb.render_basketball(sims[:2, :5], size=32, draw_defence=True)
    assert many.shape == (2, 5, 32, 32, 3) and many.dtype == np.uint8
    with pytest.raises(ValueError, match="22"):
        bb.render_basketball(np.zeros((5, 20), np.float32))


def test_colours_are_distinct_and_drawn() -> None:
    palette = [*bb.OFFENCE_COLOURS, bb.DEFENCE_COLOUR, bb.BALL_COLOUR, bb.BACKGROUND_COLOUR]
    for a, b in itertools.combinations(np.array(palette, float), 2):
        assert np.linalg.norm(a - b) > 60
    spot = (20.0, 25.0)  # the nearest pixel to a dot's centre is fully covered
    col, row = np.rint(keypoint_to_pixel(bb.court_to_keypoint(spot), 64)).astype(int)
    for k, colour in enumerate(bb.OFFENCE_COLOURS):
        image = bb.render_basketball(lone(spot, 1 + k), canonicalize=False)[0]
        np.testing.assert_allclose(image[row, col], colour, atol=2)
    ball = bb.render_basketball(lone(spot, 0), canonicalize=False)[0]
    np.testing.assert_allclose(ball[row, col], bb.BALL_COLOUR, atol=2)
    # Defenders only when asked for.
    guard = lone(spot, 7)
    hidden = bb.render_basketball(guard, canonicalize=False, court_lines=False)[0]
    assert (hidden == bb.BACKGROUND_COLOUR).all()
    shown = bb.render_basketball(guard, draw_defence=True, canonicalize=False)[0]
    np.testing.assert_allclose(shown[row, col], bb.DEFENCE_COLOUR, atol=2)


def test_ball_is_smaller_and_on_top() -> None:
    spot = (30.0, 20.0)
    both = lone(spot, 1)
    both[:, :2] = spot
    image = bb.render_basketball(both, canonicalize=False, court_lines=False)[0]
    col, row = np.rint(keypoint_to_pixel(bb.court_to_keypoint(spot), 64)).astype(int)
    np.testing.assert_allclose(image[row, col], bb.BALL_COLOUR, atol=2)
    background = np.array(bb.BACKGROUND_COLOUR)

    def area(column: int) -> float:
        frame = bb.render_basketball(lone(spot, column), canonicalize=False, court_lines=False)[0]
        return float(np.abs(frame.astype(float) - background).max(-1).sum() / 255)

    assert area(0) < 0.6 * area(1)


def test_dot_centroid_matches_court_to_keypoint() -> None:
    rng = np.random.default_rng(0)
    background = np.array(bb.BACKGROUND_COLOUR, float)
    grid = np.stack(np.meshgrid(np.arange(64), np.arange(64)), -1).astype(float)  # (col, row)
    for column in (0, 1, 3):
        for _ in range(8):
            spot = rng.uniform([4.0, 4.0], [43.0, 46.0])
            image = bb.render_basketball(lone(spot, column), canonicalize=False, court_lines=False)
            weight = np.abs(image[0].astype(float) - background).sum(-1)
            centroid = (grid * weight[..., None]).sum((0, 1)) / weight.sum()
            found = pixel_to_keypoint(centroid, 64)
            expected = bb.court_to_keypoint(spot)
            assert np.abs(found - expected).max() < 0.05
    # Orientation: the far sideline (large y) is at the top, the baseline at the left.
    top_left = bb.court_to_keypoint(np.array([0.0, 50.0]))
    assert top_left[0] < -0.8 and top_left[1] > 0.8


def test_court_mapping_inverse_and_canonical_half(sims: np.ndarray) -> None:
    points = np.random.default_rng(1).uniform(0, [94, 50], (20, 2))
    for view in bb.VIEWS:
        back = bb.keypoint_to_court(bb.court_to_keypoint(points, view), view)
        np.testing.assert_allclose(back, points, atol=1e-9)
    canon, flipped = bb.canonical_half_court(sims)
    np.testing.assert_array_equal(flipped, bb.attacks_right(sims))
    assert not bb.attacks_right(canon).any()
    np.testing.assert_allclose(canon[flipped], np.tile([94.0, 50.0], 11) - sims[flipped], atol=1e-4)
    xy = bb.court_to_keypoint(objects(canon)[:, :, :6])
    assert np.abs(xy).max() <= 1.0
    right = int(np.flatnonzero(flipped)[0])
    np.testing.assert_array_equal(
        bb.render_basketball(sims[right, :3]),
        bb.render_basketball(canon[right, :3], canonicalize=False),
    )


# -- dataset writing ------------------------------------------------------------------------


def test_write_dataset_valid_resumable_and_idempotent(tmp_path, sims: np.ndarray) -> None:
    out = tmp_path / "bb"
    summary = bb.write_basketball_dataset(out, num_sequences=4, seed=0, progress=False)
    assert summary["written"] == 4 and summary["kept"] == 0 and summary["num_sequences"] == 4
    files = sorted(out.glob("*.npz"))
    assert [f.name for f in files] == [f"basketball_{i:06d}.npz" for i in range(4)]
    for f in files:
        assert check_episode_file(f) == []
    episode = load_episode(files[1])
    assert episode.image.shape == (50, 64, 64, 3) and episode.image.dtype == np.uint8
    assert episode.action.shape == (50, 0) and not episode.reward.any()
    assert episode.true_object_pos.shape == (50, 6, 2)
    assert np.abs(episode.true_object_pos).max() <= 1.0
    canon = bb.canonical_half_court(sims[1])[0]
    expected = bb.court_to_keypoint(objects(canon)[:, :6])
    np.testing.assert_allclose(episode.true_object_pos, expected, atol=1e-5)
    np.testing.assert_array_equal(episode.image, bb.render_basketball(sims[1]))
    meta = episode.metadata
    assert meta["dataset"] == "basketball" and meta["source"] == "simulator"
    assert meta["index"] == 1 and meta["seed"] == 0 and meta["fps"] == 6.25
    assert meta["size"] == 64 and meta["object_names"] == ["ball"] + [
        f"offence_{i}" for i in range(1, 6)
    ]
    manifest = read_manifest(out)
    assert manifest["num_episodes"] == 4 and manifest["complete"] is True
    assert manifest["image_shape"] == [50, 64, 64, 3]

    # Re-running keeps finished files untouched; a deleted one comes back byte for byte.
    stamps = {f.name: os.stat(f).st_mtime_ns for f in files}
    original = files[2].read_bytes()
    again = bb.write_basketball_dataset(out, num_sequences=4, seed=0, progress=False)
    assert again["written"] == 0 and again["kept"] == 4
    assert {f.name: os.stat(f).st_mtime_ns for f in files} == stamps
    files[2].unlink()
    refill = bb.write_basketball_dataset(out, num_sequences=4, seed=0, progress=False)
    assert refill["written"] == 1 and files[2].read_bytes() == original
    assert os.stat(files[0]).st_mtime_ns == stamps[files[0].name]

    # Other settings in the same directory are refused.
    with pytest.raises(ValueError, match="seed"):
        bb.write_basketball_dataset(out, num_sequences=4, seed=1, progress=False)


def test_ball_x_reward_is_the_balls_x_and_never_mixes_with_zero_rewards(tmp_path) -> None:
    out = tmp_path / "bb"
    bb.write_basketball_dataset(out, num_sequences=2, size=32, progress=False, reward="ball-x")
    episode = load_episode(out / "basketball_000001.npz")
    assert episode.reward[0] == 0.0 and episode.metadata["reward"] == "ball-x"
    np.testing.assert_array_equal(episode.reward[1:], episode.true_object_pos[1:, 0, 0])
    assert np.ptp(episode.reward[1:]) > 0  # the ball moves: a reward to predict
    # A folder of ball-x rewards is never topped up with zero rewards, nor the other way.
    with pytest.raises(ValueError, match="reward: 'ball-x' there, 'zero' now"):
        bb.write_basketball_dataset(out, num_sequences=3, size=32, progress=False)
    zeros = tmp_path / "zeros"
    bb.write_basketball_dataset(zeros, num_sequences=1, size=32, progress=False)
    assert "reward" not in read_manifest(zeros)  # default datasets are as they always were
    with pytest.raises(ValueError, match="reward: 'zero' there, 'ball-x' now"):
        bb.write_basketball_dataset(
            zeros, num_sequences=1, size=32, progress=False, reward="ball-x"
        )


def test_write_refuses_a_file_as_out_dir(tmp_path) -> None:
    target = tmp_path / "taken"
    target.write_text("x")
    with pytest.raises(ValueError, match=str(target)):
        bb.write_basketball_dataset(target, num_sequences=1, progress=False)


def test_write_from_source(tmp_path, sims: np.ndarray) -> None:
    path = tmp_path / "real.npy"
    np.save(path, sims[:3, :10])
    out = tmp_path / "real"
    summary = bb.write_basketball_dataset(out, num_sequences=None, source=path, progress=False)
    assert summary["written"] == 3 and summary["source"] == "real.npy"
    episode = load_episode(out / "basketball_000002.npz")
    assert episode.image.shape == (10, 64, 64, 3)
    assert episode.metadata["source"] == "real.npy"
    np.testing.assert_array_equal(episode.image, bb.render_basketball(sims[2, :10]))
    capped = bb.write_basketball_dataset(
        tmp_path / "two", num_sequences=2, source=sims[:3], source_name="arr", progress=False
    )
    assert (
        capped["num_sequences"] == 2
        and json.loads((tmp_path / "two" / "manifest.json").read_text())["source"] == "arr"
    )


# -- loading real trajectories --------------------------------------------------------------


def test_load_source_trajectories(tmp_path, sims: np.ndarray) -> None:
    data = sims[:4].astype(np.float64)
    np.save(tmp_path / "a.npy", data)
    loaded = bb.load_source_trajectories(tmp_path / "a.npy")
    assert loaded.dtype == np.float32 and loaded.shape == (4, 50, 22)
    np.savez(tmp_path / "b.npz", data=data, other=np.zeros((2, 3)))
    np.testing.assert_array_equal(bb.load_source_trajectories(tmp_path / "b.npz"), loaded)
    np.savez(tmp_path / "c.npz", meta=np.zeros(3), test=data)
    np.testing.assert_array_equal(bb.load_source_trajectories(tmp_path / "c.npz", "test"), loaded)


def test_load_source_errors(tmp_path, sims: np.ndarray) -> None:
    np.save(tmp_path / "flat.npy", np.zeros((4, 50, 20)))
    with pytest.raises(DataError, match=r"flat\.npy.*\[N, T, 22\].*\[4, 50, 20\]"):
        bb.load_source_trajectories(tmp_path / "flat.npy")
    np.savez(tmp_path / "c.npz", meta=np.zeros(3), test=sims[:2])
    with pytest.raises(DataError, match=r"c\.npz.*\[3\]"):  # the first array is the wrong one
        bb.load_source_trajectories(tmp_path / "c.npz")
    with pytest.raises(DataError, match=r"c\.npz.*'nope'.*\['meta', 'test'\]"):
        bb.load_source_trajectories(tmp_path / "c.npz", key="nope")
    np.save(tmp_path / "d.npy", sims[:2])
    with pytest.raises(UsageError, match=r"d\.npy.*key"):
        bb.load_source_trajectories(tmp_path / "d.npy", key="x")
    np.save(tmp_path / "norm.npy", sims[:2] / 94.0)
    with pytest.raises(DataError, match="normalised"):
        bb.load_source_trajectories(tmp_path / "norm.npy")
    np.save(tmp_path / "obj.npy", np.array([None, 1], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"obj\.npy"):
        bb.load_source_trajectories(tmp_path / "obj.npy")
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(DataError, match=r"x\.csv.*\.npy or \.npz"):
        bb.load_source_trajectories(tmp_path / "x.csv")
    with pytest.raises(UsageError, match="missing"):
        bb.load_source_trajectories(tmp_path / "missing.npy")
