"""Gymnasium vector side: :class:`LatentVectorObservation` for CleanRL-style agents.

Around a ``gymnasium.vector.VectorEnv`` of pixel environments (``SyncVectorEnv`` /
``AsyncVectorEnv`` / ``gymnasium.make_vec``), observations become the world model's latent
state, computed in ONE batched model call per step:

>>> envs = gymnasium.vector.SyncVectorEnv([lambda: make_env("cheetah-run")] * 8)   # doctest: +SKIP
>>> envs = LatentVectorObservation(envs, run="runs/dmcs")
>>> obs, info = envs.reset(seed=0)          # float32 [8, D]; info["keypoints"] [8, K, 3]

Autoreset modes (``metadata["autoreset_mode"]``): ``NEXT_STEP`` (Gymnasium's default: the
step after an episode ends returns the new episode's first frame, and the model state of
that env restarts there), ``SAME_STEP`` (the final frame's latent vector replaces
``info["final_obs"]``) and ``DISABLED`` (``reset(options={"reset_mask": mask})`` restarts
only the masked envs).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper
from gymnasium.vector.utils import batch_space

from keypoint_wm.api import WorldModel
from keypoint_wm.envs.latent.adapters import ActionAdapter, FrameSource
from keypoint_wm.envs.latent.online import LatentFilter, resolve_model
from keypoint_wm.envs.latent.wrapper import resolve_reward_head

__all__ = ["LatentVectorObservation"]


class LatentVectorObservation(VectorWrapper):
    """A Gymnasium vector wrapper whose observations are the model's latent state.

    Args:
        env: a ``VectorEnv`` whose single observations are uint8 ``(H, W, 3)`` frames (or
            a ``Dict`` with ``"pixels"``).
        run: a run directory or a loaded :class:`~keypoint_wm.api.WorldModel`.
        features, reward_head, task, device, sample_latent, resize: as in
            :class:`~keypoint_wm.envs.LatentObservation`.

    Spaces: ``single_observation_space`` is ``Box(low, high, (D,), float32)``,
    ``observation_space`` its batch ``[num_envs, D]``. ``info`` gains ``"keypoints"``
    ``[num_envs, K, 3]`` (and ``"predicted_reward"`` ``[num_envs]`` with a head), each with
    its ``"_key"`` mask.
    """

    def __init__(
        self,
        env: VectorEnv,
        run: str | Path | WorldModel,
        *,
        features: str | Sequence[str] = "both",
        reward_head: Any = None,
        task: str | None = None,
        device: str | torch.device | None = None,
        sample_latent: bool = False,
        resize: bool = False,
    ) -> None:
        if not isinstance(env, VectorEnv):
            raise TypeError(
                f"env must be a gymnasium.vector.VectorEnv, got {type(env).__name__}; wrap a "
                "single env with LatentObservation instead"
            )
        super().__init__(env)
        model = resolve_model(run, device)
        self.world_model = model
        self.autoreset_mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        self._frames = FrameSource(
            env.single_observation_space,
            None,
            model.config.model.image_size,
            "auto",
            resize,
            "rgb_array",
        )
        if self._frames.source == "render":
            raise ValueError(
                "env's observations must be RGB frames (uint8 [H, W, 3] or a Dict with "
                f"'pixels'), got {env.single_observation_space}"
            )
        self._actions = ActionAdapter(env.single_action_space, model.action_size)
        head = resolve_reward_head(reward_head, model, task)
        self.filter = LatentFilter(model, env.num_envs, features, head, sample_latent)
        self.single_observation_space = spaces.Box(
            self.filter.low, self.filter.high, dtype=np.float32
        )
        self.observation_space = batch_space(self.single_observation_space, env.num_envs)
        self._autoreset = np.zeros(env.num_envs, bool)

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        observations, info = self.env.reset(seed=seed, options=options)
        if isinstance(seed, int):
            self.filter.seed(seed)
        frames = self._frames.batch(observations)
        mask = None if options is None else options.get("reset_mask")
        if mask is None:
            self.filter.reset(frames)
            self._autoreset[:] = False
        else:
            rows = np.flatnonzero(np.asarray(mask, bool))
            self.filter.reset(frames[rows], rows)
            self._autoreset[rows] = False
        return self.filter.observations(), self._add_info(info)

    def step(self, actions: Any) -> tuple[np.ndarray, Any, Any, Any, dict[str, Any]]:
        # The GRU update needs only the actions: it runs while the envs step.
        advanced = self.filter.advance_in_background(self._actions(actions))
        try:
            observations, rewards, terminations, truncations, info = self.env.step(actions)
        except BaseException:
            advanced.result()
            raise
        frames = self._frames.batch(observations)
        ended = np.logical_or(terminations, truncations)
        new_episode, final_frames, final_rows = None, None, np.zeros(0, np.int64)
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            new_episode = self._autoreset.copy()
            self._autoreset = ended.copy()
        elif self.autoreset_mode == AutoresetMode.SAME_STEP:
            new_episode = ended
            final_rows = np.flatnonzero(ended)
            if len(final_rows):
                final = [info["final_obs"][i] for i in final_rows]
                if self._frames.source == "pixels":
                    final = [f["pixels"] for f in final]
                final_frames = self._frames.check(np.stack(final))
        states = self.filter.step(None, frames, new_episode, final_frames, advanced)
        info = self._add_info(info)
        if states is not None:
            final_obs = np.array(info["final_obs"], dtype=object)
            for j, row in enumerate(final_rows):
                final_obs[row] = states.observations[j]
            info["final_obs"] = final_obs
        return self.filter.observations(), rewards, terminations, truncations, info

    def _add_info(self, info: dict[str, Any]) -> dict[str, Any]:
        info = dict(info)
        every = np.ones(self.num_envs, bool)
        info["keypoints"], info["_keypoints"] = self.filter.keypoints_numpy(), every
        rewards = self.filter.rewards_numpy()
        if rewards is not None:
            info["predicted_reward"], info["_predicted_reward"] = rewards, every.copy()
        return info

    def close(self, **kwargs: Any) -> None:
        """Close the envs and stop the model's worker thread."""
        self.filter.close()
        super().close(**kwargs)

    def render(self) -> tuple[Any, ...] | None:
        """Each env's current frame with its keypoints drawn (``rgb_array`` envs)."""
        frames = self.env.render()
        if frames is None:
            return None
        from keypoint_wm.viz import draw_keypoints

        checked = self._frames.check(np.stack(frames))
        return tuple(draw_keypoints(checked, self.filter.keypoints_numpy()))
