"""Stable-Baselines3 side: :class:`LatentVecEnv`, the latent state of a whole ``VecEnv``.

The wrapper runs the world model ONCE per step for all environments as one batch: the new
frames of every env, the first frames of the episodes that auto-reset, and the final frames
of the ones that ended (whose latent vectors replace ``info["terminal_observation"]``, so
off-policy agents bootstrap from the right state).

With a trained run and MuJoCo rendering::

    from stable_baselines3.common.env_util import make_vec_env
    venv = make_vec_env("KeypointWM/cheetah-run-v0", n_envs=8, env_kwargs={"size": 64})
    venv = LatentVecEnv(venv, run="runs/dmcs")
    obs = venv.reset()                      # float32 [8, D]

Stable-Baselines3 is imported with this module, which :mod:`keypoint_wm.envs` loads on
first access to ``LatentVecEnv``: ``LatentVecEnv`` is a real ``VecEnvWrapper`` subclass, so
SB3's ``isinstance`` checks, ``unwrap_vec_wrapper`` and wrappers on top of it work.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from keypoint_wm.api import WorldModel
from keypoint_wm.envs.latent.base import LatentWrapperMixin

__all__ = ["LatentVecEnv"]


class LatentVecEnv(LatentWrapperMixin, VecEnvWrapper):
    """A Stable-Baselines3 ``VecEnvWrapper`` whose observations are the model's latent state.

    Args:
        venv: an SB3 ``VecEnv`` of pixel environments (observations uint8 ``[H, W, 3]``, or
            ``Dict`` observations with ``"pixels"``).
        run: a run directory or a loaded :class:`~keypoint_wm.api.WorldModel`.
        features: ``"keypoints"``, ``"hidden"`` or ``"both"`` (see
            :mod:`keypoint_wm.envs.latent.online`).
        reward_head: as in :class:`~keypoint_wm.envs.LatentObservation`; predictions go to
            ``info["predicted_reward"]``.
        task: which head to pick from a directory of heads.
        device: torch device of the model (default CPU).
        sample_latent: sample the posterior instead of using its mean.
        resize: resize frames of another size to the model's (None: when the model
            was trained on ``collect --env`` frames, cropped and resized as they were).

    Observations: float32 ``[n_envs, D]``; each info gains ``"keypoints"`` ``[K, 3]`` (and
    ``"predicted_reward"`` with a head), of the frame the step produced; for an ended
    episode, of its final frame (the one in ``info["terminal_observation"]``).
    ``render()`` / ``get_images()`` show each env's frame with its keypoints drawn.
    """

    def __init__(
        self,
        venv: VecEnv,
        run: str | Path | WorldModel | None = None,
        *,
        features: str | Sequence[str] = "both",
        reward_head: Any = None,
        task: str | None = None,
        device: str | torch.device | None = None,
        sample_latent: bool = False,
        resize: bool | None = None,
    ) -> None:
        if not isinstance(venv, VecEnv):
            raise TypeError(
                f"venv must be a stable_baselines3 VecEnv, got {type(venv).__name__}; "
                "wrap a single gymnasium env with LatentObservation instead"
            )
        space = self._build_latent(
            run,
            num_envs=venv.num_envs,
            observation_space=venv.observation_space,
            action_space=venv.action_space,
            features=features,
            reward_head=reward_head,
            task=task,
            device=device,
            sample_latent=sample_latent,
            resize=resize,
        )
        VecEnvWrapper.__init__(self, venv, observation_space=space)
        self._advanced: Future[torch.Tensor] | None = None
        self._current_frames: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        observations = self.venv.reset()
        frames = self._frames.batch(observations)
        self.filter.reset(frames)
        self._current_frames = frames
        self.reset_infos = [dict(info) for info in self.venv.reset_infos]
        self._add_infos(self.reset_infos)
        return self.filter.observations()

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        self.filter.seed(seed)
        return self.venv.seed(seed)

    def step_async(self, actions: np.ndarray) -> None:
        # The GRU update needs only the actions: it runs while the envs step.
        self._advanced = self.filter.advance_in_background(self._actions(actions))
        self.venv.step_async(actions)

    def step_wait(self) -> VecEnvStepReturn:
        observations, rewards, dones, infos = self.venv.step_wait()
        if self._advanced is None:
            raise RuntimeError("step_wait() without step_async()")
        advanced, self._advanced = self._advanced, None
        dones = np.asarray(dones, bool)
        ended = np.flatnonzero(dones)
        finals = [infos[row].get("terminal_observation") for row in ended]
        if any(final is None for final in finals):  # a VecEnv that does not hand them over
            finals = []
        frames = self._frames.batch(observations)
        final_states = self._observe(frames, advanced, dones, finals)
        self._current_frames = frames
        self._add_infos(infos)
        if final_states is not None:  # an ended episode's info describes its last frame
            for j, row in enumerate(ended):
                infos[row]["terminal_observation"] = final_states.observations[j]
                infos[row]["keypoints"] = final_states.keypoints[j]
                if final_states.rewards is not None:
                    infos[row]["predicted_reward"] = float(final_states.rewards[j])
        return self.filter.observations(), rewards, dones, infos

    def episode_state(self) -> dict[str, Any]:
        """The model's side of the episodes in progress, between two steps: ``filter``
        (:meth:`~keypoint_wm.envs.latent.online.LatentFilter.get_state`) and ``frames``
        (uint8 ``[n_envs, S, S, 3]``, the current frames :meth:`get_images` draws; None
        before the first reset). The wrapped envs' own state is not in it."""
        if self._advanced is not None:
            raise RuntimeError("episode_state() between step_async() and step_wait()")
        frames = None if self._current_frames is None else self._current_frames.copy()
        return {"filter": self.filter.get_state(), "frames": frames}

    def restore_episode(self, state: dict[str, Any]) -> None:
        """Continue from an :meth:`episode_state` (of a wrapper of the same run, envs and
        features) exactly; the wrapped envs are restored on their own."""
        self.filter.set_state(state["filter"])
        frames = state["frames"]
        self._current_frames = None if frames is None else np.array(frames, dtype=np.uint8)

    def _add_infos(self, infos: list[dict[str, Any]]) -> None:
        keypoints = self.filter.keypoints_numpy()
        rewards = self.filter.rewards_numpy()
        for i, info in enumerate(infos):
            info["keypoints"] = keypoints[i]
            if rewards is not None:
                info["predicted_reward"] = float(rewards[i])

    def get_images(self) -> Sequence[np.ndarray | None]:
        from keypoint_wm.viz import draw_keypoints

        if self._current_frames is None:
            return [None] * self.num_envs
        return list(draw_keypoints(self._current_frames, self.filter.drawn_keypoints()))

    def close(self) -> None:
        self._close_latent()
        self.venv.close()
