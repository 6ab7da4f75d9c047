"""info["true_object_pos"]: shape, range, and agreement with where bodies are drawn."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from keypoint_wm.conventions import keypoint_to_pixel
from keypoint_wm.envs import PAPER_TASKS, DMCPixelEnv, parse_task_name
from keypoint_wm.envs.camera import body_positions, project_to_keypoints


def _body_masks(env: DMCPixelEnv) -> np.ndarray:
    """Per-pixel body index (0 = world/background) from a segmentation render."""
    segmentation = env.segmentation()
    is_geom = segmentation[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM)
    geom = np.maximum(segmentation[..., 0], 0)
    return np.where(is_geom, env.physics.model.geom_bodyid[geom], -1)


@pytest.mark.parametrize("name", PAPER_TASKS)
def test_projected_bodies_land_on_their_pixels(name):
    size = 64
    env = DMCPixelEnv(*parse_task_name(name), size=size)
    rng = np.random.default_rng(0)
    try:
        _, info = env.reset(seed=1)
        for _ in range(15):
            _, _, _, _, info = env.step(rng.uniform(-1, 1, env.action_size))
        positions = info["true_object_pos"]
        assert positions.dtype == np.float32
        assert positions.shape == (len(env.object_names), 2)
        assert np.all(np.abs(positions) <= 1.0)  # every body of these tasks is in view
        bodies = _body_masks(env)
        col_row = keypoint_to_pixel(positions.astype(np.float64), size)
        for index, body_name in enumerate(env.object_names):
            rows, cols = np.nonzero(bodies == index + 1)
            assert len(rows) > 0, f"{body_name} is not drawn"
            # The centre of mass lies on (or within a pixel of) the body's own pixels ...
            distance = np.hypot(cols - col_row[index, 0], rows - col_row[index, 1]).min()
            assert distance <= 1.0, (name, body_name, distance)
            # ... and near the middle of them.
            centroid = np.array([cols.mean(), rows.mean()])
            assert np.hypot(*(col_row[index] - centroid)) <= 3.0, (name, body_name)
    finally:
        env.close()


def test_y_points_up_and_x_right():
    # At the start of cartpole-balance the pole stands upright on the cart.
    env = DMCPixelEnv("cartpole", "balance", size=32)
    try:
        _, info = env.reset(seed=0)
        cart, pole = info["true_object_pos"]
        assert env.object_names == ("cart", "pole_1")
        assert pole[1] > cart[1] + 0.2
        # Pushing right moves the cart to larger x (camera 0 looks at the cart from the front).
        for _ in range(40):
            _, _, _, _, info = env.step([1.0])
        assert info["true_object_pos"][0, 0] > cart[0] + 0.05
        # A point above the cart in the world is above it in the image.
        _, centre = body_positions(env.physics)
        lifted = project_to_keypoints(env.physics, centre[:1] + [0, 0, 0.5], 0, 32, 32)
        now = project_to_keypoints(env.physics, centre[:1], 0, 32, 32)
        assert lifted[0, 1] > now[0, 1]
    finally:
        env.close()


def test_rectangular_images_use_one_focal_length():
    # The same world point projected into a wide image keeps its vertical position.
    env = DMCPixelEnv("reacher", "easy", size=(24, 48))
    try:
        _, info = env.reset(seed=0)
        _, centres = body_positions(env.physics)
        square = project_to_keypoints(env.physics, centres, 0, 24, 24)
        wide = info["true_object_pos"]
        np.testing.assert_allclose(wide[:, 1], square[:, 1], atol=1e-5)
        np.testing.assert_allclose(wide[:, 0], square[:, 0] / 2.0 * 23 / 47 * 48 / 24, atol=1e-5)
    finally:
        env.close()


def test_points_behind_the_camera_are_finite_and_out_of_view():
    env = DMCPixelEnv("cartpole", "balance", size=16)
    try:
        env.reset(seed=0)
        position = env.physics.data.cam_xpos[0]
        axes = env.physics.data.cam_xmat[0].reshape(3, 3)  # columns: right, up, backwards
        behind = position + 2.0 * axes[:, 2] + 0.5 * axes[:, 0] + 0.1 * axes[:, 1]
        xy = project_to_keypoints(env.physics, behind[None], 0, 16, 16)[0]
        assert np.all(np.isfinite(xy))
        assert xy[0] > 1.0 and xy[1] > 1.0  # off to the right and above, not mirrored
    finally:
        env.close()
