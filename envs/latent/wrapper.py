"""The world model's latent state as a Gymnasium observation: :class:`LatentObservation`.

Around a pixel environment (ours, or any env whose observations or renders are RGB frames)
and a world model (a trained run, or the one shipped in the package), the wrapper keeps the VRNN state online -- detect the keypoints of each
new frame, posterior update after advancing the GRU with the action just taken (docs/design.md,
"Action conditioning") -- and returns the latent state as a 1-D float32 ``Box``
(with a trained run and MuJoCo rendering)::

    import gymnasium, keypoint_wm.envs
    env = gymnasium.make("KeypointWM/cheetah-run-latent-v0")  # the shipped default model
    env = gymnasium.make("KeypointWM/cheetah-run-latent-v0", run="runs/dmcs")  # your run
    obs, info = env.reset(seed=0)        # obs: float32 [K * 3 + rnn_units]
    info["keypoints"].shape              # (K, 3): x, y in [-1, 1] (y up), scale in [0, 1]
    env = LatentObservation(gymnasium.make("Reacher-v5", render_mode="rgb_array"), run="runs/own")

The last line wraps an environment of your own: its frames come from ``env.render()``,
cropped and area-resized as ``keypoint-wm collect --env`` stored the run's training frames
(docs/your-own-environment.md).

``gymnasium.make("KeypointWM/<domain>-<task>-latent-v0", run=PATH)`` is registered for every
pixel task (:func:`make_latent_env`); without ``run`` it uses the shipped default model.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium
import numpy as np
import torch

from keypoint_wm.api import WorldModel
from keypoint_wm.data.episodes import manifest_action_repeat, positive_int_or_none
from keypoint_wm.envs.gym_pixels import render_frame, restart_renderer
from keypoint_wm.envs.latent.base import LatentWrapperMixin
from keypoint_wm.envs.latent.online import resolve_model

__all__ = ["LatentObservation", "make_latent_env", "training_action_repeat"]


def training_action_repeat(model: WorldModel) -> int:
    """The action repeat of the run's training data, so that an env steps like the data did.

    From the run's config (``data.action_repeat``, recorded by ``keypoint-wm train``); for a
    run trained before it was recorded, from its training data's manifest if that is still
    where the run says. Otherwise 1, with a warning that names the run: never silently.
    """
    data = model.config.data
    run = str(model.run_dir) if model.run_dir is not None else "the world model"
    if "action_repeat" in data:
        value = positive_int_or_none(data["action_repeat"])
        if value is not None:
            return value
        reason = "its training data does not record an action repeat"
    else:
        value = manifest_action_repeat(data.get("root"))
        if value is not None:
            return value
        root = data.get("root")
        missing = f"{root}/manifest.json does not give it" if root else "it names no data"
        reason = f"its config.json predates data.action_repeat and {missing}"
    warnings.warn(
        f"run {run}: {reason}; the env steps with action_repeat=1 -- pass action_repeat=N "
        "(the repeat the training data was collected with) to silence this",
        stacklevel=3,
    )
    return 1


def _env_task(env: gymnasium.Env) -> str | None:
    base = env.unwrapped
    domain, task = getattr(base, "domain", None), getattr(base, "task", None)
    return f"{domain}-{task}" if isinstance(domain, str) and isinstance(task, str) else None


class LatentObservation(
    LatentWrapperMixin, gymnasium.ObservationWrapper, gymnasium.utils.RecordConstructorArgs
):
    """A pixel environment seen through a trained world model's latent state.

    Args:
        env: a Gymnasium env whose observations are uint8 ``(H, W, 3)`` frames (or a
            ``Dict`` with ``"pixels"``), or any env made with ``render_mode="rgb_array"``.
        run: a run directory written by ``keypoint-wm train``, an exported model's folder,
            a loaded :class:`~keypoint_wm.api.WorldModel`, or None (default): the world
            model shipped in the package (:mod:`keypoint_wm.bundled`).
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
        resize: resize frames of another size to the model's (None: when the model
            was trained on ``collect --env`` frames, cropped and resized as they were).
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
        run: str | Path | WorldModel | None = None,
        *,
        features: str | Sequence[str] = "both",
        reward_head: Any = None,
        task: str | None = None,
        device: str | torch.device | None = None,
        sample_latent: bool = False,
        feed_observed: bool = False,
        frame_source: str = "auto",
        resize: bool | None = None,
        render_scale: int = 4,
    ) -> None:
        if not isinstance(env, gymnasium.Env):
            raise TypeError(f"env must be a gymnasium.Env, got {type(env).__name__}")
        # recorded, so that the env's spec (and gymnasium.make of it) rebuilds the wrapper; a
        # loaded model by its folder, so that two wrappers of one run have equal specs
        folder = run.run_dir if isinstance(run, WorldModel) else None
        gymnasium.utils.RecordConstructorArgs.__init__(
            self,
            run=str(folder) if folder is not None else run,
            features=features,
            reward_head=reward_head,
            task=task,
            device=device,
            sample_latent=sample_latent,
            feed_observed=feed_observed,
            frame_source=frame_source,
            resize=resize,
            render_scale=render_scale,
        )
        gymnasium.ObservationWrapper.__init__(self, env)
        if not isinstance(render_scale, int) or render_scale < 1:
            raise ValueError(f"render_scale must be a positive int, got {render_scale!r}")
        self.task = task or _env_task(env)
        self.observation_space = self._build_latent(
            run,
            num_envs=1,
            observation_space=env.observation_space,
            action_space=env.action_space,
            features=features,
            reward_head=reward_head,
            task=self.task,
            device=device,
            sample_latent=sample_latent,
            feed_observed=feed_observed,
            frame_source=frame_source,
            resize=resize,
            render=partial(render_frame, env),
            render_mode=env.render_mode,
        )
        self.render_scale = render_scale
        self._frame: np.ndarray | None = None
        if self._frames.source == "render":  # the frames ARE render(): no other mode works
            self.metadata = {**env.metadata, "render_modes": ["rgb_array"]}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset the env and the model state; the first frame is observed with h = 0."""
        observation, info = self.env.reset(seed=seed, options=options)
        if self._frames.source == "render":  # frames as a new env renders them (collect --env)
            restart_renderer(self.env)
        self.filter.seed(seed)
        self._frame = self._frames(observation)
        self.filter.reset(self._frame[None])
        return self.observation(observation), self._info(info)

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env, advance the GRU with ``action`` and observe the new frame.

        The GRU update runs on a worker thread while the env steps (it needs the action, not
        the frame); the detector and the posterior then run on the new frame.
        """
        result, advanced = self._step_with_gru(action, self.env.step)
        observation, reward, terminated, truncated, info = result
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

        keypoints = self.filter.drawn_keypoints()
        return draw_keypoints(self._frame[None], keypoints, factor=self.render_scale)[0]

    def close(self) -> None:
        """Close the env and stop the model's worker thread."""
        self._close_latent()
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
    resize: bool = False,
    action_repeat: int | None = None,
    render_mode: str | None = None,
    **env_kwargs: Any,
) -> LatentObservation:
    """A DMCS pixel task wrapped in :class:`LatentObservation` (the ``-latent-v0`` ids).

    ``size`` defaults to the model's image size (another ``size`` needs ``resize=True``:
    frames are resized to the model's) and ``action_repeat`` to that of the run's training
    data (:func:`training_action_repeat`); other keyword arguments go to
    :class:`~keypoint_wm.envs.dmc.DMCPixelEnv`.
    """
    from keypoint_wm.envs.dmc import DMCPixelEnv

    model = resolve_model(run, device)
    if action_repeat is None:
        action_repeat = training_action_repeat(model)
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
        resize=resize,
    )


# gymnasium.make reads the creator's render modes (human -> rgb_array via HumanRendering).
make_latent_env.metadata = {"render_modes": ["rgb_array"], "render_fps": None}  # type: ignore[attr-defined]
