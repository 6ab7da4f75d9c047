"""What a Gymnasium env's episodes store as ``state`` beside the frames, and its parts.

``keypoint-wm collect --env`` records, per frame, the low-dimensional state the frame shows
(docs/design.md, "Episode files"), named part by part in the metadata's ``"state_keys"`` so
that a probe (``evaluate state-probe``) scores positions and velocities apart:

- an Atari game of ``ale-py``: its 128 bytes of RAM at the time step of the frame, one part
  ``ram``; for the games of :data:`ATARI_RAM_BYTES`, the metadata's ``"ram_bytes"`` names
  the bytes of the objects' positions and the scores;
- a Gymnasium MuJoCo env whose observation is its joint positions (less the first ``k``,
  the root's x and y that its reward measures) then its joint velocities, as Gymnasium
  documents for HalfCheetah, Hopper, Walker2d, Swimmer, Ant without contact forces and
  InvertedPendulum: one part per joint, named after it, and one ``velocity`` part. A hinge
  without limits (HalfCheetah's ``rooty``: the body can flip) is kind ``"angle"``, scored
  through its cosine and sine as dm_control's unlimited angles are; limited hinges and
  slides are ``"position"``;
- any other env whose observation is a flat ``Box``: the observation, one part
  ``observation`` (kind ``"position"``);
- else nothing.

>>> from keypoint_wm.envs.gym_pixels import make_gym_env
>>> env = make_gym_env("HalfCheetah-v5")
>>> [(p.name, p.size, p.kind) for p in state_source(env).parts][:3]
[('rootz', 1, 'position'), ('rooty', 1, 'angle'), ('bthigh', 1, 'position')]
>>> state_source(env).parts[-1].to_json()
{'name': 'velocity', 'start': 8, 'stop': 17, 'kind': 'velocity'}
>>> env.close()
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from keypoint_wm.data.state_layout import StatePart, layout_from_sizes

__all__ = ["ATARI_RAM_BYTES", "EnvState", "flat_state_size", "mujoco_state_parts", "state_source"]

ATARI_RAM_BYTES: dict[str, dict[str, int]] = {
    "pong": {
        "player_y": 51,
        "player_x": 46,
        "enemy_y": 50,
        "enemy_x": 45,
        "ball_x": 49,
        "ball_y": 54,
        "enemy_score": 13,
        "player_score": 14,
    },
}
"""Per ale-py game, the RAM bytes known to hold named quantities (the index into ``state``),
as annotated by AtariARI (Anand et al., 2019, "Unsupervised State Representation Learning
in Atari"); stored in an episode's metadata as ``"ram_bytes"``. Pong's ball and player
bytes are checked against its frames in tests/collect/test_env_families.py."""

# MuJoCo's joint types (mjtJoint): free, ball, slide, hinge, and their qpos widths.
_FREE, _BALL, _SLIDE, _HINGE = 0, 1, 2, 3
_QPOS_WIDTH = {_FREE: 7, _BALL: 4, _SLIDE: 1, _HINGE: 1}


def flat_state_size(space: spaces.Space) -> int | None:
    """D when observations are a flat ``Box`` ``(D,)`` of numbers (stored as ``state``)."""
    if isinstance(space, spaces.Box) and len(space.shape) == 1 and space.dtype.kind in "fiu":
        return int(space.shape[0])
    return None


@dataclass(frozen=True)
class EnvState:
    """What an env's episodes store as ``state``: float32 ``[D]`` per frame.

    ``parts`` are its slices in storage order (the metadata's ``"state_keys"``);
    ``read(observation, info)`` gives the vector of the time step just reset to or stepped
    to; ``metadata`` is more for the episode's metadata (``"ram_bytes"`` of a known game)."""

    parts: tuple[StatePart, ...]
    read: Callable[[Any, dict[str, Any]], np.ndarray]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(part.size for part in self.parts)


def state_source(env: gymnasium.Env) -> EnvState | None:
    """The ``state`` of an env's episodes (module doc), or None when it has none.

    An Atari game's RAM is read from the emulator beside the frame (``ale.getRAM()`` after
    ``reset``/``step``: the RAM of the time step the rendered frame shows, whatever
    ``obs_type``), as float32 in [0, 255]; other envs' state is their observation.
    """
    ale = getattr(env.unwrapped, "ale", None)
    if ale is not None and hasattr(ale, "getRAM"):

        def ram(observation: Any, info: dict[str, Any]) -> np.ndarray:
            return np.asarray(ale.getRAM(), np.float32)

        game = getattr(env.unwrapped, "_game", None)
        known = ATARI_RAM_BYTES.get(str(game))
        return EnvState(
            layout_from_sizes([("ram", len(ale.getRAM()))]),
            ram,
            {} if known is None else {"ram_bytes": known},
        )
    size = flat_state_size(env.observation_space)
    if size is None:
        return None
    parts = mujoco_state_parts(env, size) or layout_from_sizes([("observation", size)])
    return EnvState(parts, _observation_state)


def mujoco_state_parts(env: gymnasium.Env, size: int) -> tuple[StatePart, ...] | None:
    """The parts of a Gymnasium MuJoCo env's observation of ``size`` entries when it is its
    joint positions less the first ``k`` then its ``nv`` velocities (module doc), else None.

    The layout is read from the model: ``size == nq - k + nv`` with ``0 <= k <= 2`` (the
    excluded root coordinates), and every joint's positions lie wholly in or wholly out of
    the observed ``qpos[k:]``, except that a free joint's x and y may be the ones excluded.
    """
    model = getattr(env.unwrapped, "model", None)
    if model is None or not all(hasattr(model, a) for a in ("nq", "nv", "jnt_type")):
        return None
    nq, nv = int(model.nq), int(model.nv)
    skipped = nq + nv - size
    if not 0 <= skipped <= 2 or nq - skipped < 1:
        return None
    import mujoco

    entries: list[tuple[str, int, str]] = []
    for joint in range(int(model.njnt)):
        joint_type = int(model.jnt_type[joint])
        start = int(model.jnt_qposadr[joint])
        stop = start + _QPOS_WIDTH[joint_type]
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, joint) or f"joint{joint}"
        if stop <= skipped:
            continue
        if start < skipped:  # only a free joint's x (and y) may be left out
            if joint_type != _FREE:
                return None
            start = skipped
        angle = joint_type == _HINGE and not bool(model.jnt_limited[joint])
        entries.append((name, stop - start, "angle" if angle else "position"))
    parts, at = [], 0
    for name, width, kind in entries:
        parts.append(StatePart(name, at, at + width, kind))
        at += width
    if at != nq - skipped:
        return None
    return (*parts, StatePart("velocity", at, at + nv, "velocity"))


def _observation_state(observation: Any, info: dict[str, Any]) -> np.ndarray:
    return np.asarray(observation, np.float32).reshape(-1)
