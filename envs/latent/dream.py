"""Training in imagination: :class:`DreamEnv`, an env stepped by the world model itself.

Each episode starts from observed frames (a window of a dataset's episode, anywhere in it
or at its beginning, or frames you pass): the posterior observes them as in :class:`~keypoint_wm.envs.LatentObservation`.
Then every ``step(action)`` advances the GRU with the agent's action (docs/design.md, "Action
conditioning"), samples the next frame's latent from the PRIOR, decodes its keypoints and
asks the reward head for its reward: from the state before the imagined frame and, for a
``"hidden+keypoints"`` head, the frame's decoded keypoints (as in training, where they are
the detected ones; a ``"hidden+features"`` head of a CNN-VRNN run reads its decoded
features likewise). Observations have the same layout and space as the
latent wrapper's with the same ``features``, so a policy trained in the dream runs on
``KeypointWM/<domain>-<task>-latent-v0`` unchanged.

With a trained run, its reward heads and a dataset::

    env = DreamEnv(run="runs/dmcs", reward_head=True, data="data/dmcs/cheetah-run")
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium
import numpy as np
import torch
from gymnasium import spaces

from keypoint_wm.api import WorldModel
from keypoint_wm.choices import DREAM_STARTS as STARTS
from keypoint_wm.envs.latent.base import resolve_reward_head
from keypoint_wm.envs.latent.online import LatentFilter, resolve_model

__all__ = ["STARTS", "DreamEnv"]


class DreamEnv(gymnasium.Env):
    """A Gymnasium env whose dynamics are the world model's prior and a reward head.

    Args:
        run: a run directory or a loaded :class:`~keypoint_wm.api.WorldModel`.
        reward_head: a :class:`~keypoint_wm.rewards.head.RewardHead`, a head directory, a
            directory of heads with ``task``, or True (the run's ``RUN/rewards``). Required.
        data: episode files to start from (a dataset or one task's directory); or
        start_frames: uint8 ``[N, T0, S, S, 3]`` start sequences with
        start_actions: ``[N, T0, A]`` the actions that led to each start frame.
        task: which head to use from a directory of heads.
        starts: where a ``data`` episode's start window lies: ``"any"`` (uniformly anywhere in
            the episode, default) or ``"initial"`` (its first ``context`` frames: the task's
            own initial-state distribution, where a policy scored on the real task starts).
        context: frames observed at the start of an episode (T0; default 3 or the length of
            ``start_frames``).
        action_size: A, the agent's action dimensions (default: the data's, else the
            model's ``action_size``); actions are ``Box(-1, 1, (A,))``.
        features: as in :class:`~keypoint_wm.envs.LatentObservation`.
        max_episode_steps: imagined steps per episode (then ``truncated=True``).
        sample: sample the prior (default) or follow its mean.
        render_mode: None or ``"rgb_array"`` (the decoded frame with its keypoints).

    ``info`` holds ``"keypoints"`` (``[K, 3]``, decoded) and ``"predicted_reward"``.
    Seeded resets (start choice and latent noise) are reproducible.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}  # noqa: RUF012

    def __init__(
        self,
        run: str | Path | WorldModel,
        reward_head: Any,
        *,
        data: str | Path | None = None,
        start_frames: np.ndarray | None = None,
        start_actions: np.ndarray | None = None,
        task: str | None = None,
        starts: str = "any",
        context: int | None = None,
        action_size: int | None = None,
        features: str | Sequence[str] = "both",
        max_episode_steps: int = 100,
        sample: bool = True,
        device: str | torch.device | None = None,
        render_mode: str | None = None,
        render_scale: int = 4,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if not isinstance(max_episode_steps, int) or max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be a positive int, got {max_episode_steps!r}")
        if reward_head is None:
            raise ValueError("reward_head is required: a DreamEnv's rewards come from it")
        if (data is None) == (start_frames is None):
            raise ValueError("give exactly one of data (episode files) or start_frames")
        if starts not in STARTS:
            raise ValueError(f"starts must be one of {STARTS}, got {starts!r}")
        if starts != "any" and data is None:
            raise ValueError("starts chooses windows of data episodes; start_frames are given")
        self.starts = starts
        self.model = resolve_model(run, device)
        head = resolve_reward_head(reward_head, self.model, task)
        self.render_mode = render_mode
        self.render_scale = render_scale
        self.max_episode_steps = max_episode_steps
        self.sample = bool(sample)
        size = self.model.config.model.image_size
        self._episodes: list[Path] = []
        self._starts: tuple[np.ndarray, np.ndarray] | None = None
        data_actions = 0
        if data is not None:
            from keypoint_wm.data.sequences import EpisodeIndex

            index = EpisodeIndex(data, "all", min_frames=context or 3)
            if index.image_shape != (size, size, 3):
                raise ValueError(
                    f"data={str(data)!r} holds {index.image_shape} frames; the model needs "
                    f"({size}, {size}, 3)"
                )
            self._episodes = [r.path for r in index.records]
            data_actions = index.action_size
            self.context = context or 3
        else:
            frames = np.asarray(start_frames)
            if frames.dtype != np.uint8 or frames.ndim != 5 or frames.shape[2:] != (size, size, 3):
                raise ValueError(
                    f"start_frames must be uint8 [N, T0, {size}, {size}, 3], got "
                    f"{frames.dtype} {list(frames.shape)}"
                )
            actions = np.zeros((*frames.shape[:2], self.model.action_size), np.float32)
            if start_actions is not None:
                given = np.asarray(start_actions, np.float32)
                if given.shape[:2] != frames.shape[:2]:
                    raise ValueError(
                        f"start_actions must be [N={frames.shape[0]}, T0={frames.shape[1]}, A],"
                        f" got {list(given.shape)}"
                    )
                actions = given
            data_actions = actions.shape[-1]
            self._starts = (frames, actions)
            self.context = context or frames.shape[1]
        size_a = action_size or data_actions or self.model.action_size
        self.action_space = spaces.Box(-1.0, 1.0, shape=(max(1, size_a),), dtype=np.float32)
        self.filter = LatentFilter(self.model, 1, features, head, sample_latent=self.sample)
        self.observation_space = spaces.Box(self.filter.low, self.filter.high, dtype=np.float32)
        self._first: np.ndarray | None = None
        self._steps = 0

    def _start(self) -> tuple[np.ndarray, np.ndarray]:
        """A start window: frames ``[T0, S, S, 3]`` and actions ``[T0, A]``."""
        if self._starts is not None:
            frames, actions = self._starts
            i = int(self.np_random.integers(len(frames)))
            return frames[i, : self.context], actions[i, : self.context]
        from keypoint_wm.data.episodes import load_episode

        episode = load_episode(self._episodes[int(self.np_random.integers(len(self._episodes)))])
        start = 0
        if self.starts == "any":
            start = int(self.np_random.integers(episode.num_frames - self.context + 1))
        stop = start + self.context
        return episode.image[start:stop], episode.action[start:stop]

    def _model_action(self, action: np.ndarray) -> np.ndarray | None:
        if not self.model.action_size:
            return None
        array = np.clip(np.asarray(action, np.float32).reshape(1, -1), -1.0, 1.0)
        return array[:, : self.model.action_size]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.filter.seed(seed)
        frames, actions = self._start()
        self.filter.reset(frames[:1])
        for t in range(1, len(frames)):
            self.filter.step(self._model_action(actions[t]), frames[t : t + 1])
        self._first = frames[0]
        self._steps = 0
        return self.filter.observations()[0], self._info()

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._first is None:
            raise RuntimeError("call reset() before step()")
        self.filter.imagine(self._model_action(action), sample=self.sample)
        self._steps += 1
        rewards = self.filter.rewards_numpy()
        assert rewards is not None
        truncated = self._steps >= self.max_episode_steps
        return self.filter.observations()[0], float(rewards[0]), False, truncated, self._info()

    def episode_state(self) -> dict[str, Any]:
        """The imagined episode in progress (beside :attr:`np_random`, which picks starts):
        ``filter`` (:meth:`~keypoint_wm.envs.latent.online.LatentFilter.get_state`),
        ``steps`` (imagined steps so far) and ``first`` (uint8 ``[S, S, 3]``, the start
        window's first frame, which :meth:`render` draws on; None before the first reset)."""
        first = None if self._first is None else self._first.copy()
        return {"filter": self.filter.get_state(), "steps": self._steps, "first": first}

    def restore_episode(self, state: dict[str, Any]) -> None:
        """Continue the episode of an :meth:`episode_state` (of a DreamEnv of the same run,
        head and features) exactly where it stood."""
        self.filter.set_state(state["filter"])
        self._steps = int(state["steps"])
        first = state["first"]
        self._first = None if first is None else np.array(first, dtype=np.uint8)

    def _info(self) -> dict[str, Any]:
        rewards = self.filter.rewards_numpy()
        assert rewards is not None
        return {
            "keypoints": self.filter.keypoints_numpy()[0],
            "predicted_reward": float(rewards[0]),
        }

    def render(self) -> np.ndarray | None:
        """The imagined frame decoded from its keypoints, keypoints drawn (``rgb_array``)."""
        if self.render_mode != "rgb_array" or self._first is None:
            return None
        from keypoint_wm.viz import draw_keypoints

        # The reconstructor draws on the episode's first frame (its keypoints detected there).
        image = self.model.decode(self.filter.keypoints[None], self._first[None])[0]
        return draw_keypoints(image, self.filter.drawn_keypoints(), factor=self.render_scale)[0]
