"""What the three latent wrappers share: :class:`LatentWrapperMixin`.

:class:`~keypoint_wm.envs.LatentObservation` (one Gymnasium env),
:class:`~keypoint_wm.envs.LatentVectorObservation` (a Gymnasium vector env) and
:class:`~keypoint_wm.envs.LatentVecEnv` (a Stable-Baselines3 ``VecEnv``) speak three APIs but
compute one thing. The mixin holds that thing once:

- the constructor's model side (:meth:`LatentWrapperMixin._build_latent`): the world model
  from a run directory, its reward head, the env's frames and actions adapted to the model,
  the batched :class:`~keypoint_wm.envs.latent.online.LatentFilter` and the observation space;
- one step (:meth:`LatentWrapperMixin._step_with_gru` and
  :meth:`LatentWrapperMixin._observe`): the GRU update starts on the filter's worker thread
  with the actions, the env steps meanwhile, then the new frames -- and the final frames of
  the episodes that ended, for the final observations -- go through the model in one batch.

Each wrapper keeps only its API: how it reads observations, writes infos and resets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from keypoint_wm.api import WorldModel
from keypoint_wm.data.frames import FrameCrop
from keypoint_wm.envs.latent.adapters import ActionAdapter, FrameSource
from keypoint_wm.envs.latent.online import FinalStates, LatentFilter, resolve_model

if TYPE_CHECKING:
    from keypoint_wm.rewards.head import RewardHead

__all__ = ["LatentWrapperMixin", "resolve_reward_head"]

_R = TypeVar("_R")


def resolve_reward_head(reward_head: Any, model: WorldModel, task: str | None) -> RewardHead | None:
    """``reward_head`` as a loaded head: a ``RewardHead``, a head directory, a directory of
    heads (picked by ``task``), ``True`` (the run's own ``RUN/rewards`` heads) or None.

    The head reads, for the current frame t, h_{t-1} and (``inputs="hidden+keypoints"``) the
    frame's keypoints or (``"hidden+features"``) a CNN-VRNN run's features of the frame, as
    in training (:mod:`keypoint_wm.rewards.head`).

    Raises:
        ValueError: the head was trained on a model of another size (``rnn_units`` or,
            for a head that reads keypoints or features, ``num_keypoints``) or reads another
            representation's per-frame input (``hidden+keypoints`` of a CNN-VRNN run,
            ``hidden+features`` of a Struct-VRNN one).
    """
    if reward_head is None or reward_head is False:
        return None
    head = _load_reward_head(reward_head, model, task)
    head.check_model(
        model.config.model.rnn_units, model.num_keypoints, model.config.model.representation
    )
    return head


def _load_reward_head(reward_head: Any, model: WorldModel, task: str | None) -> RewardHead:
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


class LatentWrapperMixin:
    """The model side of a latent wrapper; mix in before the wrapper's API base class.

    Attributes (set by :meth:`_build_latent`):
        world_model: the :class:`~keypoint_wm.api.WorldModel` in use.
        filter: the :class:`~keypoint_wm.envs.latent.online.LatentFilter` holding every
            env's state.
    """

    world_model: WorldModel
    filter: LatentFilter
    _frames: FrameSource
    _actions: ActionAdapter

    def _build_latent(
        self,
        run: str | Path | WorldModel | None,
        *,
        num_envs: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        features: str | Sequence[str],
        reward_head: Any,
        task: str | None,
        device: str | torch.device | None,
        sample_latent: bool,
        feed_observed: bool = False,
        frame_source: str = "auto",
        resize: bool | None = None,
        render: Callable[[], Any] | None = None,
        render_mode: str | None = None,
    ) -> spaces.Box:
        """Load the model side; returns the single observation space ``Box(low, high, (D,))``.

        ``observation_space`` / ``action_space`` are ONE env's; ``render`` (with
        ``render_mode``) is the single env's ``render``, None for a vector of envs (whose
        frames must then be in the observations). ``resize=None``: resize (and crop) when
        the model was trained on ``collect --env`` frames (its config records ``data.crop``),
        as they were resized; else frames must have the model's size.
        """
        model = resolve_model(run, device)
        head = resolve_reward_head(reward_head, model, task)
        self.world_model = model
        size = model.config.model.image_size
        rendered = "crop" in model.config.data  # trained on frames from env.render()
        crop = FrameCrop.from_json(model.config.data.get("crop")) if rendered else None
        self._frames = FrameSource(
            observation_space,
            render,
            size,
            frame_source,
            rendered if resize is None else resize,
            render_mode,
            crop,
        )
        self._actions = ActionAdapter(action_space, model.action_size)
        self.filter = LatentFilter(model, num_envs, features, head, sample_latent, feed_observed)
        return spaces.Box(self.filter.low, self.filter.high, dtype=np.float32)

    @property
    def reward_head(self) -> RewardHead | None:
        """The :class:`~keypoint_wm.rewards.head.RewardHead` in use, or None."""
        return self.filter.reward_head

    @property
    def features(self) -> tuple[str, ...]:
        """The features of the observation vector, in order (``"keypoints"``, ``"hidden"``)."""
        return self.filter.features

    def _step_with_gru(self, actions: Any, step: Callable[[Any], _R]) -> tuple[_R, Future[Tensor]]:
        """``step(actions)`` (the env's step) while the GRU update for ``actions`` runs on the
        filter's worker thread; returns what ``step`` returned and the update's future.

        An error of ``step`` reaches the caller after the worker has finished.
        """
        advanced = self.filter.advance_in_background(self._actions(actions))
        try:
            return step(actions), advanced
        except BaseException:
            advanced.result()
            raise

    def _observe(
        self,
        frames: np.ndarray,
        advanced: Future[Tensor],
        new_episode: np.ndarray | None = None,
        final_observations: Sequence[Any] = (),
    ) -> FinalStates | None:
        """Every env's new frame, after the GRU update ``advanced``, in one batch.

        Args:
            frames: uint8 ``[num_envs, S, S, 3]``, the new frames (``self._frames.batch`` of
                the observations the envs returned).
            advanced: the future of :meth:`_step_with_gru` (or of
                ``filter.advance_in_background``).
            new_episode: bool ``[num_envs]``: these observations start new episodes.
            final_observations: the final observations (pixel observations, as the env
                returns them) of the ended episodes among ``new_episode``, in row order.

        Returns:
            What the model makes of ``final_observations`` (None without them).
        """
        final = self._frames.stack(final_observations) if len(final_observations) else None
        return self.filter.step(None, frames, new_episode, final, advanced)

    def _close_latent(self) -> None:
        """Stop the filter's worker thread."""
        self.filter.close()
