"""Gymnasium vector side: :class:`LatentVectorObservation` for CleanRL-style agents.

Around a ``gymnasium.vector.VectorEnv`` of pixel environments (``SyncVectorEnv`` /
``AsyncVectorEnv`` / ``gymnasium.make_vec``), observations become the world model's latent
state, computed in ONE batched model call per step (with a trained run and MuJoCo
rendering)::

    envs = gymnasium.vector.SyncVectorEnv([lambda: make_env("cheetah-run")] * 8)
    envs = LatentVectorObservation(envs, run="runs/dmcs")
    obs, info = envs.reset(seed=0)          # float32 [8, D]; info["keypoints"] [8, K, 3]

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
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper
from gymnasium.vector.utils import batch_space

from keypoint_wm.api import WorldModel
from keypoint_wm.envs.latent.base import LatentWrapperMixin

__all__ = ["LatentVectorObservation"]


class LatentVectorObservation(LatentWrapperMixin, VectorWrapper):
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
        run: str | Path | WorldModel | None = None,
        *,
        features: str | Sequence[str] = "both",
        reward_head: Any = None,
        task: str | None = None,
        device: str | torch.device | None = None,
        sample_latent: bool = False,
        resize: bool | None = None,
    ) -> None:
        if not isinstance(env, VectorEnv):
            raise TypeError(
                f"env must be a gymnasium.vector.VectorEnv, got {type(env).__name__}; wrap a "
                "single env with LatentObservation instead"
            )
        super().__init__(env)
        self.autoreset_mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        self.single_observation_space = self._build_latent(
            run,
            num_envs=env.num_envs,
            observation_space=env.single_observation_space,
            action_space=env.single_action_space,
            features=features,
            reward_head=reward_head,
            task=task,
            device=device,
            sample_latent=sample_latent,
            resize=resize,
        )
        self.observation_space = batch_space(self.single_observation_space, env.num_envs)
        self._autoreset = np.zeros(env.num_envs, bool)

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        # Gymnasium's vector envs take a seed per env too; VectorEnv's signature says int.
        observations, info = self.env.reset(seed=seed, options=options)  # type: ignore[arg-type]
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
        return self.filter.observations(), self._with_model_info(info)

    def step(self, actions: Any) -> tuple[np.ndarray, Any, Any, Any, dict[str, Any]]:
        result, advanced = self._step_with_gru(actions, self.env.step)
        observations, rewards, terminations, truncations, info = result
        ended = np.logical_or(terminations, truncations)
        new_episode, final_rows = None, np.zeros(0, np.int64)
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            new_episode = self._autoreset.copy()
            self._autoreset = ended.copy()
        elif self.autoreset_mode == AutoresetMode.SAME_STEP:
            new_episode = ended
            final_rows = np.flatnonzero(ended)
        finals = [info["final_obs"][row] for row in final_rows]
        states = self._observe(self._frames.batch(observations), advanced, new_episode, finals)
        info = self._with_model_info(info)
        if states is not None:
            final_obs = np.array(info["final_obs"], dtype=object)
            for j, row in enumerate(final_rows):
                final_obs[row] = states.observations[j]
            info["final_obs"] = final_obs
        return self.filter.observations(), rewards, terminations, truncations, info

    def _with_model_info(self, info: dict[str, Any]) -> dict[str, Any]:
        info = dict(info)
        every = np.ones(self.num_envs, bool)
        info["keypoints"], info["_keypoints"] = self.filter.keypoints_numpy(), every
        rewards = self.filter.rewards_numpy()
        if rewards is not None:
            info["predicted_reward"], info["_predicted_reward"] = rewards, every.copy()
        return info

    def close(self, **kwargs: Any) -> None:
        """Close the envs and stop the model's worker thread."""
        self._close_latent()
        super().close(**kwargs)

    def render(self) -> tuple[Any, ...] | None:
        """Each env's current frame with its keypoints drawn (``rgb_array`` envs)."""
        frames = self.env.render()
        if frames is None:
            return None
        from keypoint_wm.viz import draw_keypoints

        checked = self._frames.check(np.stack(frames))
        return tuple(draw_keypoints(checked, self.filter.drawn_keypoints()))
