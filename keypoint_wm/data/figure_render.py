"""An articulated stick figure on the 17-joint Human3.6M skeleton: pose -> joints -> pixels.

A pose is a set of joint angles (:class:`PoseAngles`), turned into the 17 joint positions of
:data:`~keypoint_wm.data.skeleton.JOINT_NAMES_17` by 2D forward kinematics
(:func:`pose_to_joints`), and drawn as anti-aliased capsules (limbs, torso) and a disc (head)
by :func:`render_figure`.

Geometry, in the keypoint frame (x right, y up, [-1, 1] across the image): every limb angle
is *absolute*, measured from straight down, counter-clockwise (angle ``a`` points along
``(sin a, -cos a)``: 0 is down, +pi/2 is +x). The figure faces the camera with ``width`` 1
(its left side at +x) and is seen from the side with ``width`` near 0 (shoulders and hips
collapse onto the spine). Body proportions are fractions of the standing height ``height``
(ankle to top of the head, about 0.96 ``height``).

Drawing order, back to front: left leg, left arm, torso, right leg, right arm, head, so the
figure's right limbs (drawn last) are in front. Left limbs are drawn in a lighter shade of
their colour than right limbs, so the two sides can be told apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from keypoint_wm.conventions import keypoint_to_pixel
from keypoint_wm.data.skeleton import JOINT_NAMES_17

# Segment lengths as fractions of the figure's height.
THIGH, SHIN = 0.245, 0.245
PELVIS_TO_SPINE, SPINE_TO_THORAX, THORAX_TO_NECK, NECK_TO_HEAD = 0.12, 0.13, 0.08, 0.08
HIP_HALF_WIDTH, SHOULDER_HALF_WIDTH = 0.07, 0.11
UPPER_ARM, FOREARM = 0.17, 0.16
# Drawing radii as fractions of the height.
LEG_RADIUS, ARM_RADIUS, TORSO_RADIUS, HEAD_RADIUS = 0.042, 0.032, 0.075, 0.07

_J = {name: i for i, name in enumerate(JOINT_NAMES_17)}


@dataclass
class PoseAngles:
    """A sequence of poses; every field is float ``[T]`` (or broadcastable to it).

    Attributes:
        root_x, root_y: pelvis position in the keypoint frame.
        height: standing height in keypoint units (about 1 fills half the image).
        lean: torso angle from upright, radians (positive leans towards +x).
        width: 1 facing the camera, near 0 seen from the side.
        right_thigh, right_shin, left_thigh, left_shin: absolute leg angles (0 = down).
        right_upper_arm, right_forearm, left_upper_arm, left_forearm: absolute arm angles.
    """

    root_x: np.ndarray
    root_y: np.ndarray
    height: np.ndarray
    lean: np.ndarray
    width: np.ndarray
    right_thigh: np.ndarray
    right_shin: np.ndarray
    left_thigh: np.ndarray
    left_shin: np.ndarray
    right_upper_arm: np.ndarray
    right_forearm: np.ndarray
    left_upper_arm: np.ndarray
    left_forearm: np.ndarray


def _direction(angle: np.ndarray) -> np.ndarray:
    """Unit vectors ``[T, 2]`` for absolute angles ``[T]`` (0 = down, counter-clockwise)."""
    return np.stack([np.sin(angle), -np.cos(angle)], axis=-1)


def leg_extent(thigh: np.ndarray, shin: np.ndarray) -> np.ndarray:
    """Height of the hip above the ankle, as a fraction of the figure's height."""
    return THIGH * np.cos(thigh) + SHIN * np.cos(shin)


def pose_to_joints(pose: PoseAngles) -> np.ndarray:
    """Forward kinematics: the 17 Human3.6M joints, float64 ``[T, 17, 2]`` (keypoint frame)."""
    fields = {k: np.atleast_1d(np.asarray(v, np.float64)) for k, v in vars(pose).items()}
    frames = max(v.shape[0] for v in fields.values())
    f = {k: np.broadcast_to(v, (frames,)) for k, v in fields.items()}
    h = f["height"][:, None]
    up = np.stack([np.sin(f["lean"]), np.cos(f["lean"])], axis=-1)  # torso axis
    across = np.stack([np.cos(f["lean"]), -np.sin(f["lean"])], axis=-1)  # towards +x
    joints = np.zeros((frames, 17, 2))
    pelvis = np.stack([f["root_x"], f["root_y"]], axis=-1)
    joints[:, _J["pelvis"]] = pelvis
    joints[:, _J["spine"]] = pelvis + PELVIS_TO_SPINE * h * up
    thorax = joints[:, _J["spine"]] + SPINE_TO_THORAX * h * up
    joints[:, _J["thorax"]] = thorax
    joints[:, _J["neck_nose"]] = thorax + THORAX_TO_NECK * h * up
    joints[:, _J["head"]] = joints[:, _J["neck_nose"]] + NECK_TO_HEAD * h * up
    hip = HIP_HALF_WIDTH * h * f["width"][:, None] * across
    shoulder = SHOULDER_HALF_WIDTH * h * f["width"][:, None] * across
    for side, sign in (("left", 1.0), ("right", -1.0)):
        hip_joint = pelvis + sign * hip
        knee = hip_joint + THIGH * h * _direction(f[f"{side}_thigh"])
        joints[:, _J[f"{side}_hip"]] = hip_joint
        joints[:, _J[f"{side}_knee"]] = knee
        joints[:, _J[f"{side}_ankle"]] = knee + SHIN * h * _direction(f[f"{side}_shin"])
        shoulder_joint = thorax + sign * shoulder
        elbow = shoulder_joint + UPPER_ARM * h * _direction(f[f"{side}_upper_arm"])
        joints[:, _J[f"{side}_shoulder"]] = shoulder_joint
        joints[:, _J[f"{side}_elbow"]] = elbow
        joints[:, _J[f"{side}_wrist"]] = elbow + FOREARM * h * _direction(f[f"{side}_forearm"])
    return joints


@dataclass(frozen=True)
class FigureStyle:
    """Colours (RGB 0-255) of one figure and its scene."""

    background: tuple[int, int, int]
    floor: tuple[int, int, int]
    shirt: tuple[int, int, int]
    trousers: tuple[int, int, int]
    skin: tuple[int, int, int]


def _shade(colour: tuple[int, int, int], factor: float) -> np.ndarray:
    return np.clip(np.array(colour, np.float32) * factor, 0, 255).astype(np.float32)


def _draw_capsules(
    canvas: np.ndarray, a: np.ndarray, b: np.ndarray, radius: float, colour: np.ndarray
) -> None:
    """Blend one anti-aliased capsule per frame into ``canvas`` float32 ``[T, S, S, 3]``.

    ``a``, ``b``: ``[T, 2]`` segment end points in pixels (col, row); ``radius`` in pixels.
    A pixel's opacity is ``clip(radius + 0.5 - distance to the segment, 0, 1)``.
    """
    size = canvas.shape[1]
    grid = np.arange(size, dtype=np.float32)
    cols, rows = grid[None, None, :], grid[None, :, None]
    ax, ay = a[:, 0, None, None], a[:, 1, None, None]
    dx, dy = (b[:, 0] - a[:, 0])[:, None, None], (b[:, 1] - a[:, 1])[:, None, None]
    length2 = np.maximum(dx * dx + dy * dy, 1e-9)
    t = np.clip(((cols - ax) * dx + (rows - ay) * dy) / length2, 0.0, 1.0)
    dist = np.hypot(cols - ax - t * dx, rows - ay - t * dy)
    alpha = np.clip(radius + 0.5 - dist, 0.0, 1.0).astype(np.float32)[..., None]
    canvas += alpha * (colour - canvas)


def render_figure(
    joints: np.ndarray, height: float, style: FigureStyle, ground_y: float, size: int = 64
) -> np.ndarray:
    """Draw a figure given its joints.

    Args:
        joints: ``[T, 17, 2]`` in the keypoint frame (:func:`pose_to_joints`).
        height: the figure's height in keypoint units (sets limb thickness).
        style: colours.
        ground_y: the floor's top edge in the keypoint frame (below it the floor colour).
        size: image side S.

    Returns:
        uint8 ``[T, S, S, 3]``.
    """
    joints = np.asarray(joints, np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (17, 2):
        raise ValueError(f"joints must be [T, 17, 2], got {list(joints.shape)}")
    frames = joints.shape[0]
    px = keypoint_to_pixel(joints, size).astype(np.float32)  # [T, 17, 2]
    unit = (size - 1) / 2.0 * height  # pixels per figure height
    canvas = np.empty((frames, size, size, 3), np.float32)
    canvas[:] = np.array(style.background, np.float32)
    floor_row = int(
        np.clip(np.ceil(keypoint_to_pixel(np.array([0.0, ground_y]), size)[1]), 0, size)
    )
    canvas[:, floor_row:] = np.array(style.floor, np.float32)

    def limb(first: str, second: str, radius: float, colour: np.ndarray) -> None:
        _draw_capsules(canvas, px[:, _J[first]], px[:, _J[second]], radius * unit, colour)

    def leg(side: str, factor: float) -> None:
        colour = _shade(style.trousers, factor)
        limb(f"{side}_hip", f"{side}_knee", LEG_RADIUS, colour)
        limb(f"{side}_knee", f"{side}_ankle", LEG_RADIUS * 0.9, colour)

    def arm(side: str, factor: float) -> None:
        limb(f"{side}_shoulder", f"{side}_elbow", ARM_RADIUS, _shade(style.shirt, factor))
        limb(f"{side}_elbow", f"{side}_wrist", ARM_RADIUS * 0.85, _shade(style.skin, factor))

    leg("left", 1.2)
    arm("left", 1.2)
    limb("pelvis", "thorax", TORSO_RADIUS, _shade(style.shirt, 1.0))
    limb("left_hip", "right_hip", LEG_RADIUS, _shade(style.trousers, 1.0))
    limb("left_shoulder", "right_shoulder", ARM_RADIUS, _shade(style.shirt, 1.0))
    leg("right", 0.8)
    arm("right", 0.8)
    limb("thorax", "neck_nose", ARM_RADIUS, _shade(style.skin, 0.9))
    head = px[:, _J["head"]]
    _draw_capsules(canvas, head, head, HEAD_RADIUS * unit, _shade(style.skin, 1.0))
    return np.rint(canvas).astype(np.uint8)
