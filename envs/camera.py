"""Project 3D world points through a fixed MuJoCo camera into pixels and the keypoint frame.

MuJoCo cameras look along their local ``-z`` axis with ``+y`` up and ``+x`` right;
``data.cam_xpos`` / ``data.cam_xmat`` hold the world pose (the columns of ``cam_xmat`` are the
camera axes in world coordinates) and ``model.cam_fovy`` the vertical field of view (degrees
for a perspective camera, length units for an orthographic one). The horizontal extent follows
from the image's aspect ratio, so one focal length serves both axes.

Pixel coordinates here are ``(col, row)`` with the centre of the top-left pixel at ``(0, 0)``
and rows growing downwards, matching images from ``physics.render``. The keypoint frame is the
package's (``keypoint_wm.conventions``): x, y in [-1, 1] across the pixel centres, y up. Points
outside the view map outside [-1, 1]; points behind the camera (closer than its near clipping
plane) are projected as if they lay on that plane, far outside [-1, 1] but finite.

Works on a ``dm_control.mujoco.Physics``; this module imports neither dm_control nor mujoco.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keypoint_wm.conventions import pixel_to_keypoint

__all__ = ["body_positions", "camera_index", "project_to_keypoints", "project_to_pixels"]

_ORTHOGRAPHIC = 1  # mujoco.mjtProjection.mjPROJ_ORTHOGRAPHIC


def camera_index(physics: Any, camera_id: int | str) -> int:
    """Resolve a fixed camera's index from its index or name.

    Raises:
        ValueError: no such fixed camera (the free camera ``-1`` has no pose in the model).
    """
    model = physics.model
    names = tuple(model.id2name(i, "camera") or str(i) for i in range(model.ncam))
    if isinstance(camera_id, str):
        if camera_id not in names:
            raise ValueError(f"unknown camera {camera_id!r}; the model's cameras are {names}")
        return names.index(camera_id)
    if isinstance(camera_id, bool) or not isinstance(camera_id, (int, np.integer)):
        raise ValueError(f"camera_id must be an int or a camera name, got {camera_id!r}")
    if not 0 <= int(camera_id) < model.ncam:
        raise ValueError(
            f"camera_id must be in [0, {model.ncam - 1}] (a fixed camera of the model: "
            f"{names}), got {camera_id}"
        )
    return int(camera_id)


def project_to_pixels(
    physics: Any, points: np.ndarray, camera_id: int, height: int, width: int
) -> np.ndarray:
    """Project world points ``[N, 3]`` to pixel coordinates ``[N, 2]`` as (col, row), float64.

    Uses the camera's current pose, so call it after the physics state it should describe
    (the same state the image is rendered from).
    """
    model, data = physics.model, physics.data
    if np.any(np.asarray(model.cam_sensorsize[camera_id]) > 0):
        raise NotImplementedError(
            "cameras with an explicit sensorsize/intrinsic are not supported; use a camera "
            "defined by fovy"
        )
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    position = np.asarray(data.cam_xpos[camera_id], dtype=np.float64)
    rotation = np.asarray(data.cam_xmat[camera_id], dtype=np.float64).reshape(3, 3)
    local = (points - position) @ rotation  # rows: (x right, y up, z backwards) per point
    fovy = float(model.cam_fovy[camera_id])
    if int(model.cam_projection[camera_id]) == _ORTHOGRAPHIC:
        pixels_per_unit = height / fovy
        u = local[:, 0] * pixels_per_unit
        v = local[:, 1] * pixels_per_unit
    else:
        focal = (height / 2.0) / np.tan(np.deg2rad(fovy) / 2.0)
        # Points behind the near clipping plane (not drawn) get its depth: they land far
        # outside the image, on their side of it, and stay finite.
        near = float(model.vis.map.znear) * float(model.stat.extent)
        depth = np.maximum(-local[:, 2], near)
        u = focal * local[:, 0] / depth
        v = focal * local[:, 1] / depth
    # Image-plane offsets from the centre -> pixel indices (pixel centres at integers).
    col = width / 2.0 + u - 0.5
    row = height / 2.0 - v - 0.5
    return np.stack([col, row], axis=-1)


def project_to_keypoints(
    physics: Any, points: np.ndarray, camera_id: int, height: int, width: int
) -> np.ndarray:
    """Project world points ``[N, 3]`` into the keypoint frame ``[N, 2]`` (x, y; y up), float64.

    Points visible in the ``height x width`` image land in [-1, 1] x [-1, 1].
    """
    pixels = project_to_pixels(physics, points, camera_id, height, width)
    return pixel_to_keypoint(pixels, (height, width))


def body_positions(physics: Any) -> tuple[tuple[str, ...], np.ndarray]:
    """Names and world centres of mass ``[N, 3]`` of all bodies except the world body.

    The centre of mass (``data.xipos``) lies inside the body's geometry for the suite's limbs
    and objects, unlike the body frame origin, which often sits on a joint at the body's end.
    """
    model = physics.model
    names = tuple(model.id2name(i, "body") or f"body_{i}" for i in range(1, model.nbody))
    return names, np.array(physics.data.xipos[1:], dtype=np.float64)
