"""The Human3.6M stand-in: an articulated figure performing labelled actions, as episodes.

Human3.6M is licensed and cannot be downloaded here, so ``keypoint-wm data figures`` writes a
procedural substitute in the same episode format as ``keypoint-wm data human36m``: a stick
figure on the 17-joint Human3.6M skeleton (:mod:`keypoint_wm.data.figure_render`), 64 x 64,
performing one of :data:`ACTIONS` per sequence. Every sequence draws its own speed
(0.03-0.08 cycles per frame), phase, amplitude, size (height 1.1-1.5 keypoint units, about
35-47 pixels at 64 x 64), position, facing direction and colours (shirt, trousers, skin,
background, floor).

Episodes: ``<out>/figure_NNNNNN.npz`` with ``image`` uint8 ``[T, S, S, 3]``, zero actions and
rewards, ``true_object_pos`` float32 ``[T, J, 2]`` (the joints, keypoint frame; J = 17, or 12
with ``joints="eval12"``) and metadata holding ``action`` (name), ``action_index``, ``split``
(``"train"``/``"test"``, the same deterministic hash split as training's default test
fraction 0.2) and the drawn parameters. Sequence ``i`` performs action ``i mod 6``, so classes
are balanced. The same seed gives byte-identical files; a killed run finishes when the same
command runs again (damaged files are written again), and a directory written with other
settings is refused, never overwritten (:class:`~keypoint_wm.data.writer.DatasetWriter`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from keypoint_wm.data.episodes import Episode
from keypoint_wm.data.figure_render import FigureStyle, PoseAngles, leg_extent, pose_to_joints
from keypoint_wm.data.figure_render import render_figure as _render
from keypoint_wm.data.sequences import is_test_file
from keypoint_wm.data.skeleton import joint_selection
from keypoint_wm.data.writer import DatasetWriter, sequence_fields
from keypoint_wm.errors import UsageError

__all__ = ["ACTIONS", "FILE_PATTERN", "figure_sequence", "write_figures_dataset"]

FILE_PATTERN = "figure_{:06d}.npz"
DEFAULT_TEST_FRACTION = 0.2
_Motion = Callable[[np.ndarray, dict[str, float]], dict[str, np.ndarray]]


def _walking(phase: np.ndarray, p: dict[str, float]) -> dict[str, np.ndarray]:
    """Side view, legs and arms swinging in opposition, moving towards the facing side."""
    d, a = p["facing"], p["amplitude"]
    s, c = np.sin(phase), np.cos(phase)
    thigh_r, thigh_l = d * 0.45 * a * s, -d * 0.45 * a * s
    return dict(
        width=np.full_like(phase, 0.15),
        right_thigh=thigh_r,
        right_shin=thigh_r - d * 0.7 * a * np.maximum(0.0, c),
        left_thigh=thigh_l,
        left_shin=thigh_l - d * 0.7 * a * np.maximum(0.0, -c),
        right_upper_arm=-d * 0.4 * a * s,
        right_forearm=-d * 0.4 * a * s + d * 0.35,
        left_upper_arm=d * 0.4 * a * s,
        left_forearm=d * 0.4 * a * s + d * 0.35,
        lean=np.full_like(phase, d * 0.06),
    )


def _waving(phase: np.ndarray, p: dict[str, float]) -> dict[str, np.ndarray]:
    """Facing the camera, one arm raised and its forearm swinging; the other hangs."""
    side, a = p["facing"], p["amplitude"]  # +1: the left arm waves
    s = np.sin(phase)
    raised = side * 2.2
    hanging = -side * 0.12
    arms = {
        "up": (raised, raised + side * (0.1 + 0.55 * a * s)),
        "down": (hanging, hanging - side * 0.05),
    }
    left, right = (arms["up"], arms["down"]) if side > 0 else (arms["down"], arms["up"])
    return dict(
        width=np.ones_like(phase),
        right_thigh=-0.06,
        right_shin=-0.04,
        left_thigh=0.06,
        left_shin=0.04,
        left_upper_arm=left[0],
        left_forearm=left[1],
        right_upper_arm=right[0],
        right_forearm=right[1],
        lean=-side * 0.04 * a * s,
    )


def _jumping_jacks(phase: np.ndarray, p: dict[str, float]) -> dict[str, np.ndarray]:
    """Facing the camera: arms from the sides to overhead while the legs spread, jumping."""
    a = p["amplitude"]
    open_ = (1.0 - np.cos(phase)) / 2.0
    arm = 0.2 + np.minimum(2.6 * a, 2.85) * open_
    leg = 0.05 + 0.3 * a * open_
    return dict(
        width=np.ones_like(phase),
        right_thigh=-leg,
        right_shin=-leg,
        left_thigh=leg,
        left_shin=leg,
        left_upper_arm=arm,
        left_forearm=arm + 0.2 * open_,
        right_upper_arm=-arm,
        right_forearm=-arm - 0.2 * open_,
        lean=0.0,
        lift=0.08 * a * np.abs(np.sin(phase)),
    )


def _squats(phase: np.ndarray, p: dict[str, float]) -> dict[str, np.ndarray]:
    """Facing the camera: knees out and down, arms raised sideways for balance."""
    a = p["amplitude"]
    down = (1.0 - np.cos(phase)) / 2.0
    thigh = 0.1 + 1.1 * a * down
    arm = 0.3 + 1.2 * down
    return dict(
        width=np.ones_like(phase),
        right_thigh=-thigh,
        right_shin=-0.1 + 0.3 * down,
        left_thigh=thigh,
        left_shin=0.1 - 0.3 * down,
        left_upper_arm=arm,
        left_forearm=arm + 0.1,
        right_upper_arm=-arm,
        right_forearm=-arm - 0.1,
        lean=0.0,
    )


def _boxing(phase: np.ndarray, p: dict[str, float]) -> dict[str, np.ndarray]:
    """Guard up, fists punching up and out in turn, bouncing on the feet."""
    a = p["amplitude"]
    s = np.sin(phase)
    punch_l, punch_r = np.maximum(0.0, s) ** 2, np.maximum(0.0, -s) ** 2
    upper_l, upper_r = 0.6 + 1.1 * a * punch_l, -0.6 - 1.1 * a * punch_r
    return dict(
        width=np.full_like(phase, 0.8),
        right_thigh=-0.18,
        right_shin=-0.06,
        left_thigh=0.18,
        left_shin=0.06,
        left_upper_arm=upper_l,
        left_forearm=-2.6 * (1 - punch_l) + upper_l * punch_l,
        right_upper_arm=upper_r,
        right_forearm=2.6 * (1 - punch_r) + upper_r * punch_r,
        lean=0.08 * a * s,
        lift=0.025 * np.abs(np.sin(2 * phase)),
    )


def _bending(phase: np.ndarray, p: dict[str, float]) -> dict[str, np.ndarray]:
    """Side view: bending forward at the hips to reach the floor and back up."""
    d, a = p["facing"], p["amplitude"]
    down = (1.0 - np.cos(phase)) / 2.0
    arm = d * 0.25 * down
    return dict(
        width=np.full_like(phase, 0.15),
        right_thigh=d * 0.35 * down,
        right_shin=-d * 0.15 * down,
        left_thigh=d * 0.35 * down,
        left_shin=-d * 0.15 * down,
        right_upper_arm=arm,
        right_forearm=arm + d * 0.1,
        left_upper_arm=arm,
        left_forearm=arm + d * 0.1,
        lean=d * np.minimum(1.35 * a, 1.5) * down,
        shift=-d * 0.12 * down,
    )


ACTIONS: dict[str, _Motion] = {
    "walking": _walking,
    "waving": _waving,
    "jumping_jacks": _jumping_jacks,
    "squats": _squats,
    "boxing": _boxing,
    "bending": _bending,
}
"""The stand-in's action classes, in label order."""


def _colour(
    rng: np.random.Generator, low: int, high: int, *avoid: tuple[int, int, int]
) -> tuple[int, int, int]:
    """A random colour at least 120 (summed over RGB) away from every colour in ``avoid``,
    so that the figure always stands out from the background and floor."""
    while True:
        red, green, blue = (int(v) for v in rng.integers(low, high, size=3))
        colour = (red, green, blue)
        if all(
            sum(abs(a - b) for a, b in zip(colour, other, strict=True)) >= 120 for other in avoid
        ):
            return colour


def figure_sequence(
    seed: int, index: int, num_frames: int = 50, size: int = 64
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Sequence ``index`` of the stand-in: ``(images uint8 [T, S, S, 3], joints float32
    [T, 17, 2] in the keypoint frame, parameters)``; a pure function of its arguments."""
    rng = np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFF, index, 17]))
    names = list(ACTIONS)
    action = names[index % len(names)]
    height = float(rng.uniform(1.1, 1.5))
    params: dict[str, Any] = {
        "facing": float(rng.choice([-1.0, 1.0])),
        "amplitude": float(rng.uniform(0.8, 1.2)),
        "frequency": float(rng.uniform(0.03, 0.08)),
        "phase": float(rng.uniform(0, 2 * np.pi)),
    }
    t = np.arange(num_frames, dtype=np.float64)
    motion = ACTIONS[action](2 * np.pi * params["frequency"] * t + params["phase"], params)
    ground_y = float(rng.uniform(-0.95, -0.8))
    drift = 0.0
    if action == "walking":  # the body moves with its stride, staying in the picture
        drift = params["facing"] * min(0.25 * height * params["frequency"], 0.7 / num_frames)
    centre_x = float(rng.uniform(-0.3, 0.3))
    root_x = centre_x + drift * (t - num_frames / 2) + motion.pop("shift", 0.0) * height
    extent = np.maximum(
        leg_extent(motion["left_thigh"], motion["left_shin"]),
        leg_extent(motion["right_thigh"], motion["right_shin"]),
    )
    root_y = ground_y + (extent + motion.pop("lift", 0.0)) * height
    pose = PoseAngles(root_x=root_x, root_y=root_y, height=np.float64(height), **motion)
    joints = pose_to_joints(pose)
    background = _colour(rng, 150, 235)
    floor = _colour(rng, 90, 160)
    style = FigureStyle(
        background=background,
        floor=floor,
        shirt=_colour(rng, 20, 235, background, floor),
        trousers=_colour(rng, 20, 200, background, floor),
        skin=_colour(rng, 150, 250, background, floor),
    )
    images = _render(joints, height, style, ground_y, size)
    params.update(
        action=action,
        action_index=names.index(action),
        height=height,
        centre_x=centre_x,
        ground_y=ground_y,
        style=dataclasses.asdict(style),
    )
    return images, joints.astype(np.float32), params


def _figure_episode(
    settings: dict[str, Any], index: int, joint_indices: list[int]
) -> tuple[str, Episode]:
    """The file name and episode of sequence ``index`` of the dataset of ``settings``."""
    name = FILE_PATTERN.format(index)
    num_frames = settings["num_frames"]
    images, all_joints, params = figure_sequence(
        settings["seed"], index, num_frames, settings["size"]
    )
    split = "test" if is_test_file(name, DEFAULT_TEST_FRACTION) else "train"
    return name, Episode(
        image=images,
        action=np.zeros((num_frames, 0), np.float32),
        reward=np.zeros(num_frames, np.float32),
        true_object_pos=all_joints[:, joint_indices],
        metadata={**settings, **params, "index": index, "split": split},
    )


def write_figures_dataset(
    out_dir: str | Path,
    num_sequences: int = 1000,
    seed: int = 0,
    num_frames: int = 50,
    size: int = 64,
    joints: str = "17",
    progress: bool = True,
) -> dict[str, Any]:
    """Write (or finish writing) the figure stand-in dataset.

    Args:
        out_dir: output directory (created; an existing dataset with other settings is
            refused with a message naming the settings that differ).
        num_sequences: number of sequences (episodes).
        seed: dataset seed.
        num_frames: frames per sequence.
        size: image side in pixels (>= 16).
        joints: ``"17"`` (the skeleton) or ``"eval12"`` (the paper's 12 evaluation joints)
            in ``true_object_pos``.
        progress: show a tqdm progress bar.

    Returns:
        A summary: ``out_dir``, ``num_sequences``, ``written``, ``kept``, ``seconds``,
        ``manifest``, ``actions`` (episodes per action).
    """
    if num_sequences < 1 or num_frames < 2 or size < 16:
        raise UsageError(
            f"need --sequences >= 1, --frames >= 2 and --size >= 16; got {num_sequences}, "
            f"{num_frames}, {size}"
        )
    indices, joint_names = joint_selection(joints, 17)
    settings: dict[str, Any] = {
        "dataset": "figures",
        "seed": int(seed),
        "size": int(size),
        "num_frames": int(num_frames),
        "joints": joints,
        "joint_names": joint_names,
        "actions": list(ACTIONS),
        "test_fraction": DEFAULT_TEST_FRACTION,
    }
    writer = DatasetWriter(out_dir, settings, label="figures")
    writer.start(
        sequence_fields(writer.out, FILE_PATTERN, num_sequences, num_frames, size, len(indices))
    )
    counts: dict[str, int] = dict.fromkeys(ACTIONS, 0)
    from tqdm.auto import tqdm

    for index in tqdm(range(num_sequences), desc="figures", unit="seq", disable=not progress):
        counts[list(ACTIONS)[index % len(ACTIONS)]] += 1
        if not writer.finished(FILE_PATTERN.format(index)):
            writer.save(*_figure_episode(settings, index, indices))
    writer.finish()
    summary = {"out_dir": str(writer.out), "num_sequences": int(num_sequences), **writer.tally()}
    return {**summary, "manifest": str(writer.manifest_path), "actions": counts}
