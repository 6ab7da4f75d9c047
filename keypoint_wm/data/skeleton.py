"""The Human3.6M skeleton: joint names, the 32 -> 17 joint map and the 12 evaluation joints.

Human3.6M's 2D pose files hold 32 joints per frame (several of them duplicates or end
sites). The common 17-joint skeleton keeps pelvis, legs, spine, head and arms; the paper
evaluates "12 of 32 points", which docs/design.md, "Datasets" fixes as shoulders, elbows,
wrists, hips, knees and ankles (left and right). The figure stand-in (:mod:`keypoint_wm.data.figures`) draws the
same 17 joints, so both datasets select joints the same way (:func:`joint_selection`).
"""

from __future__ import annotations

JOINT_NAMES_17 = (
    "pelvis",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "spine",
    "thorax",
    "neck_nose",
    "head",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
)
"""The 17-joint Human3.6M skeleton, in its usual order."""

PARENTS_17 = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
"""Parent of each of the 17 joints (-1 for the pelvis, the root)."""

H36M_32_TO_17 = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
"""Index into the 32 joints of a Human3.6M pose file for each of the 17 joints."""

EVAL_JOINT_NAMES = (
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
"""The paper's 12 evaluation joints (docs/design.md, "Datasets")."""

EVAL_JOINTS_17 = tuple(JOINT_NAMES_17.index(name) for name in EVAL_JOINT_NAMES)
"""Indices of the 12 evaluation joints among the 17."""

JOINT_SETS = ("17", "eval12", "all32")
"""Choices of ``--joints``: the 17-joint skeleton, the 12 evaluation joints, or all 32
(Human3.6M pose files only)."""


def joint_selection(joints: str, source_joints: int) -> tuple[list[int], list[str]]:
    """Which joints of a ``source_joints``-joint pose (17 or 32) go into ``true_object_pos``.

    Args:
        joints: one of :data:`JOINT_SETS`.
        source_joints: 17 (figure stand-in) or 32 (Human3.6M pose file).

    Returns:
        ``(indices into the source joints, joint names)``.

    Raises:
        ValueError: unknown ``joints``, or ``"all32"`` asked of a 17-joint source.
    """
    if joints not in JOINT_SETS:
        raise ValueError(f"--joints must be one of {', '.join(JOINT_SETS)}, got {joints!r}")
    if source_joints not in (17, 32):
        raise ValueError(f"poses must have 17 or 32 joints, got {source_joints}")
    to_source = list(H36M_32_TO_17) if source_joints == 32 else list(range(17))
    if joints == "17":
        return to_source, list(JOINT_NAMES_17)
    if joints == "eval12":
        return [to_source[i] for i in EVAL_JOINTS_17], list(EVAL_JOINT_NAMES)
    if source_joints != 32:
        raise ValueError("--joints all32 needs 32-joint Human3.6M poses; this source has 17")
    names = {j32: JOINT_NAMES_17[i] for i, j32 in enumerate(H36M_32_TO_17)}
    return list(range(32)), [names.get(j, f"joint_{j}") for j in range(32)]
