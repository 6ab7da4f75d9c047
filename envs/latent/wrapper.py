"""The world model's latent state as a Gymnasium observation: :class:`LatentObservation`.

Around a pixel environment (ours, or any env whose observations or renders are RGB frames)
and a trained run, the wrapper keeps the VRNN state online -- detect the keypoints of each
new frame, posterior update after advancing the GRU with the action just taken (docs/design.md,
"Action conditioning") -- and returns the latent state as a 1-D float32 ``Box``:

>>> import gymnasium, keypoint_wm.envs                                   # doctest: +SKIP
>>> env = gymnasium.make("KeypointWM/cheetah-run-latent-v0", run="runs/dmcs")
>>> obs, info = env.reset(seed=0)        # obs: float32 [K * 3 + rnn_units]
>>> info["keypoints"].shape              # (K, 3): x, y in [-1, 1] (y up), scale in [0, 1]
>>> env = LatentObservation(gymnasium.make("CarRacing-v3"), run="runs/car", resize=True)

``gymnasium.make("KeypointWM/<domain>-<task>-latent-v0", run=PATH)`` is registered for every
pixel task (:func:`make_latent_env`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium
import numpy as np
import torch
from gymnasium import spaces

from keypoint_wm.api import WorldModel
from keypoint_wm.envs.latent.adapters import ActionAdapter, FrameSource
from keypoint_wm.envs.latent.online import LatentFilter, resolve_model

__all__ = ["LatentObservation", "make_latent_env", "resolve_reward_head", "run_action_repeat"]


def resolve_reward_head(
    reward_head: Any, model: WorldModel, task: str | None
) -> Any:  # RewardHead | None
    """``reward_head`` as a loaded head: a ``RewardHead``, a head directory, a directory of
    heads (picked by ``task``), ``True`` (the run's own ``RUN/rewards`` heads) or None."""
    if reward_head is None or reward_head is False:
        return None
    from keypoint_wm.rewards.head import RewardHead, load_reward_head

    if isinstance(reward_head, RewardHead):
        return reward_head
    if reward_head is True:
        if model.run_dir is None:
            raise ValueError("reward_head=True needs a model loaded from a run directory")
        reward_head = Path(model.run_dir) / "rewards"
    if not isinstance(reward_head, (str, Path)):
        raise TypeError(
            "reward_head must be None, True, a RewardHead or a directory, got "
            f"{type(reward_head).__name__}"
        )
    return load_reward_head(reward_head, task, device=model.device)


def run_action_repeat(model: WorldModel) -> int | None:
    """The action repeat of the run's training data, from its manifest (None if unknown)."""
    root = model.config.data.get("root") if isinstance(model.config.data, dict) else None
    if not root:
        return None
    try:
        manifest = json.loads((Path(root) / "manifest.json").read_text())
        value = manifest["spec"]["action_repeat"]
    except (OSError, KeyError, TypeError, ValueError):
        return None
    return int(value) if isinstance(value, int) and value > 0 else None


def _env_task(env: gymnasium.Env) -> str | None:
    base = env.unwrapped
    domain, task = getattr(base, "domain", None), getattr(base, "task", None)
    return f"{domain}-{task}" if isinstance(domain, str) and isinstance(task, str) else None


class LatentObservation(gymnasium.ObservationWrapper):
    """A pixel environment seen through a trained world model's latent state.

    Args:
        env: a Gymnasium env whose observations are uint8 ``(H, W, 3)`` frames (or a
            ``Dict`` with ``"pixels"``), or any env made with ``render_mode="rgb_array"``.
        run: a run directory written by ``keypoint-wm train``, or a loaded
            :class:`~keypoint_wm.api.WorldModel`.
        features: ``"keypoints"``, ``"hidden"`` or ``"both"`` (default): what the
            observation vector holds (see :mod:`keypoint_wm.envs.latent.online`).
        reward_head: None, a :class:`~keypoint_wm.rewards.head.RewardHead`, a head directory,
            a directory of heads (``RUN/rewards``; the head of ``task`` is used) or True
            (the run's own heads). Its prediction goes to ``info["predicted_reward"]``.
        task: which head to pick from a directory of heads (default: the DMCS env's
            ``"domain-task"``).
        device: torch device of the model (default CPU).
        sample_latent: sample the posterior instead of using its mean (seeded by ``reset``).
        feed_observed: feed the detected keypoints to the GRU instead of the decoded
            posterior sample.
        frame_source: ``"auto"``, ``"observation"``, ``"pixels"`` or ``"render"``.
        resize: resize frames of another size to the model's.
        render_scale: ``render()`` upscales the frame by this integer factor.

    Spaces:
        observation: ``Box(low, high, (D,), float32)``, D = K * 3 and/or ``rnn_units``.
        action: the wrapped env's (Box actions are mapped onto [-1, 1] for the model).

    ``info`` gains ``"keypoints"`` (float32 ``[K, 3]``, the current frame's) and, with a
    head, ``"predicted_reward"`` (float, the head's prediction for the current frame).
    ``render()`` returns the frame with the keypoints drawn on it (uint8
    ``[S * render_scale, S * render_scale, 3]``) when the env renders ``rgb_array``.
    """

    def __init__(
        self,
        env: gymnasium.Env,
        run: str | Path | WorldModel,
        *,
        features: str | Sequence[str] = "both",
        reward_head: Any = None,
        task: str | None = None,
        device: str | torch.device | None = None,
        sample_latent: bool = False,
        feed_observed: bool = False,
        frame_source: str = "auto",
        resize: bool = False,
        render_scale: int = 4,
    ) -> None:
        if not isinstance(env, gymnasium.Env):
            raise TypeError(f"env must be a gymnasium.Env, got {type(env).__name__}")
        super().__init__(env)
        if not isinstance(render_scale, int) or render_scale < 1:
            raise ValueError(f"render_scale must be a positive int, got {render_scale!r}")
        self.world_model = resolve_model(run, device)
        self.task = task or _env_task(env)
        head = resolve_reward_head(reward_head, self.world_model, self.task)
        size = self.world_model.config.model.image_size
        self._frames = FrameSource(
            env.observation_space, env.render, size, frame_source, resize, env.render_mode
        )
        self._actions = ActionAdapter(env.action_space, self.world_model.action_size)
        self.filter = LatentFilter(
            self.world_model, 1, features, head, sample_latent, feed_observed
        )
        self.features = self.filter.features
        self.render_scale = render_scale
        self.observation_space = spaces.Box(self.filter.low, self.filter.high, dtype=np.float32)
        self._frame: np.ndarray | None = None

    @property
    def reward_head(self) -> Any:
        """The :class:`~keypoint_wm.rewards.head.RewardHead` in use, or None."""
        return self.filter.reward_head

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset the env and the model state; the first frame is observed with h = 0."""
        observation, info = self.env.reset(seed=seed, options=options)
        self.filter.seed(seed)
        self._frame = self._frames(observation)
        self.filter.reset(self._frame[None])
        return self.observation(observation), self._info(info)

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env, advance the GRU with ``action`` and observe the new frame.

        The GRU update runs on a worker thread while the env steps (it needs the action, not
        the frame); the detector and the posterior then run on the new frame.
        """
        advanced = self.filter.advance_in_background(self._actions(action))
        try:
            observation, reward, terminated, truncated, info = self.env.step(action)
        except BaseException:
            advanced.result()  # let the worker finish before the error leaves the wrapper
            raise
        self._frame = self._frames(observation)
        self.filter.step(None, self._frame[None], advanced=advanced)
        return self.observation(observation), reward, terminated, truncated, self._info(info)

    def observation(self, observation: Any) -> np.ndarray:
        """The latent state of the current frame (the pixel ``observation`` is already in it)."""
        return self.filter.observations()[0]

    def _info(self, info: dict[str, Any]) -> dict[str, Any]:
        info = dict(info)
        info["keypoints"] = self.filter.keypoints_numpy()[0]
        rewards = self.filter.rewards_numpy()
        if rewards is not None:
            info["predicted_reward"] = float(rewards[0])
        return info

    def render(self) -> Any:
        """The current frame with its keypoints drawn on it (``render_mode="rgb_array"``)."""
        if self.env.render_mode != "rgb_array":
            return self.env.render()
        if self._frame is None:
            return None
        from keypoint_wm.viz import draw_keypoints

        keypoints = self.filter.keypoints_numpy()
        return draw_keypoints(self._frame[None], keypoints, factor=self.render_scale)[0]

    def close(self) -> None:
        """Close the env and stop the model's worker thread."""
        self.filter.close()
        super().close()


def make_latent_env(
    domain: str,
    task: str,
    run: str | Path | WorldModel | None = None,
    *,
    features: str | Sequence[str] = "both",
    reward_head: Any = None,
    device: str | torch.device | None = None,
    sample_latent: bool = False,
    size: int | None = None,
    action_repeat: int | None = None,
    render_mode: str | None = None,
    **env_kwargs: Any,
) -> LatentObservation:
    """A DMCS pixel task wrapped in :class:`LatentObservation` (the ``-latent-v0`` ids).

    ``size`` defaults to the model's image size and ``action_repeat`` to that of the run's
    training data (its manifest), else 1; other keyword arguments go to
    :class:`~keypoint_wm.envs.dmc.DMCPixelEnv`.
    """
    if run is None:
        raise ValueError(
            f"run is required: gymnasium.make('KeypointWM/{domain}-{task}-latent-v0', "
            "run='path/to/run')"
        )
    from keypoint_wm.envs.dmc import DMCPixelEnv

    model = resolve_model(run, device)
    if action_repeat is None:
        action_repeat = run_action_repeat(model) or 1
    env = DMCPixelEnv(
        domain,
        task,
        size=model.config.model.image_size if size is None else size,
        action_repeat=action_repeat,
        render_mode=render_mode,
        **env_kwargs,
    )
    return LatentObservation(
        env,
        model,
        features=features,
        reward_head=reward_head,
        task=f"{domain}-{task}",
        device=device,
        sample_latent=sample_latent,
    )


# gymnasium.make reads the creator's render modes (human -> rgb_array via HumanRendering).
make_latent_env.metadata = {"render_modes": ["rgb_array"], "render_fps": None}  # type: ignore[attr-defined]
