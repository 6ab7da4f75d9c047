"""Batched online filtering with a trained world model: the state behind the latent wrappers.

:class:`LatentFilter` keeps, for each of B environments, the VRNN state of the online
arrangement (docs/design.md, "Action conditioning"): after frame t it holds h_{t-1}
(``hidden``), the posterior z_t and the keypoints fed to the GRU; when the agent's action
a_{t+1} is known, :meth:`LatentFilter.step` advances ``h_t = GRU([x_t, z_t, a_{t+1}],
h_{t-1})`` and infers frame t+1 from its detected keypoints. Every call runs the detector
and the posterior ONCE for all the rows it touches (the frames of new episodes and the final
frames of ended ones included), which is what makes the vectorised wrappers fast.

The observation it produces is a float32 vector per environment, the selected features
(:mod:`keypoint_wm.latent_features`: the current frame's keypoints, h_{t-1}) flattened and
concatenated in that order; over a recorded sequence
:meth:`keypoint_wm.api.WorldModel.filter` gives the same states.

Overlap: the GRU update of step t+1 needs only the action, not the new frame, so the
wrappers start it with :meth:`LatentFilter.advance_in_background` before they step the
environment and hand the result to :meth:`LatentFilter.step`: torch releases the GIL, and
the GRU runs on the second core while the physics and renderer run on the first
(docs/design.md, "Wrapper speed").

The model's numbers, one step at a time: the posterior and the prior are the dynamics'
own :meth:`~keypoint_wm.model.KeypointDynamics.posterior_step` and
:meth:`~keypoint_wm.model.KeypointDynamics.prior_step`, the GRU update its
:meth:`~keypoint_wm.model.KeypointDynamics.advance`; over a sequence the filter's states are
those of :meth:`keypoint_wm.api.WorldModel.observe` given the same frames, actions and noise.

Randomness: the posterior mean is used by default (deterministic); with
``sample_latent=True`` z is sampled from a :class:`torch.Generator` that :meth:`seed`
reseeds, so a seeded reset is still reproducible.

What the filter is built from (the model, its observation bounds, its torch threads) is
:mod:`~keypoint_wm.envs.latent.filter_setup`; those names are importable from here too.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
from torch import Tensor

from keypoint_wm.api import WorldModel
from keypoint_wm.conventions import frames_to_tensor
from keypoint_wm.envs.latent.filter_setup import feature_bounds, resolve_model, torch_threads
from keypoint_wm.latent_features import FEATURES, parse_features
from keypoint_wm.model.inference import InferenceDetector

if TYPE_CHECKING:
    from keypoint_wm.rewards.head import RewardHead

__all__ = [
    "FEATURES",
    "FinalStates",
    "LatentFilter",
    "feature_bounds",
    "parse_features",
    "resolve_model",
    "torch_threads",
]

_R = TypeVar("_R")


@dataclass
class FinalStates:
    """The last frames of ended episodes as the model sees them (M of them).

    Attributes:
        observations: float32 ``[M, D]`` feature vectors.
        keypoints: float32 ``[M, K, 3]`` detected keypoints.
        rewards: float32 ``[M]`` predicted rewards (None without a reward head).
    """

    observations: np.ndarray
    keypoints: np.ndarray
    rewards: np.ndarray | None


def _in_filter_threads(method: Callable[..., _R]) -> Callable[..., _R]:
    """Run a :class:`LatentFilter` method without gradients under its ``num_threads``."""

    @functools.wraps(method)
    def wrapped(self: LatentFilter, *args: Any, **kwargs: Any) -> _R:
        with torch.no_grad(), torch_threads(self.num_threads):
            return method(self, *args, **kwargs)

    return wrapped


class LatentFilter:
    """Online posterior filtering of B environments' frames in one batch.

    Args:
        model: the trained world model (its ``image_size`` fixes the frame size).
        num_envs: B.
        features: see :func:`parse_features`.
        reward_head: optional :class:`~keypoint_wm.rewards.head.RewardHead`; then
            :attr:`predicted_reward` ``[B]`` is its prediction for the current frame (from
            h_{t-1} and, for a ``"hidden+keypoints"`` head, the frame's keypoints; for a
            ``"hidden+features"`` head, a CNN-VRNN run's features of the frame). It must fit
            the model (:meth:`~keypoint_wm.rewards.head.RewardHead.check_model`).
        sample_latent: sample z from the posterior instead of using its mean.
        feed_observed: feed the detected keypoints to the GRU instead of the decoded
            posterior sample (the authors' inference behaviour feeds the decoded sample).
        seed: seed of the latent noise (only used with ``sample_latent``).
        num_threads: torch threads for the model's work, set for the duration of each call
            and restored after it (None: leave torch's setting). ``"auto"``: 1 for a single
            env, else None. One frame's work is small: with bf16 kernels a second thread
            costs more than it saves, and a float32 detector on an idle AVX2 CPU gains only
            about 8 % from it, while on cores shared with other work every extra thread
            waits for the slowest (docs/measurements.md, "the latent wrapper on an AVX2
            CPU", has both figures and their machines).

    The detector is a snapshot (:class:`~keypoint_wm.model.InferenceDetector`) of the
    model's weights when the filter is built. Frames are uint8 ``[N, S, S, 3]``; actions
    float32 ``[B, A]`` in the model's action units (``A <= action_size``, zero-padded like
    the multi-task training data).
    """

    def __init__(
        self,
        model: WorldModel,
        num_envs: int,
        features: str | Sequence[str] = "both",
        reward_head: RewardHead | None = None,
        sample_latent: bool = False,
        feed_observed: bool = False,
        seed: int = 0,
        num_threads: int | str | None = "auto",
    ) -> None:
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        self.detector = InferenceDetector(model.model)
        if num_threads == "auto":
            num_threads = 1 if num_envs == 1 else None
        if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
            raise ValueError(
                f"num_threads must be 'auto', None or a positive int, got {num_threads!r}"
            )
        self.num_threads: int | None = num_threads
        self.model = model
        self.dynamics = model.model.dynamics
        self.num_envs = num_envs
        self.features = parse_features(features)
        self.reward_head = reward_head
        if reward_head is not None:
            reward_head.check_model(
                model.config.model.rnn_units, model.num_keypoints, model.config.model.representation
            )
            reward_head.to(model.device).eval()
        self.sample_latent = bool(sample_latent)
        self.feed_observed = bool(feed_observed)
        self.device = model.device
        self.generator = torch.Generator(device=self.device)
        self.seed(seed)
        self.low, self.high = feature_bounds(model, self.features)
        b, h = num_envs, model.config.model.rnn_units
        self.hidden = torch.zeros(b, h, device=self.device)
        self.keypoints = torch.zeros(b, model.num_keypoints, 3, device=self.device)
        self.feed = torch.zeros(b, model.num_keypoints * 3, device=self.device)
        z = self.dynamics.latent_size
        self.latent: Tensor | None = torch.zeros(b, z, device=self.device) if z else None
        self.head_state: Tensor | None = None
        self.predicted_reward: Tensor | None = None
        self._worker: ThreadPoolExecutor | None = None
        self._worker_pid = 0
        if reward_head is not None:
            self.head_state = reward_head.initial_state(b, self.device)
            self.predicted_reward = torch.zeros(b, device=self.device)

    # ------------------------------------------------------------------ basics
    @property
    def image_size(self) -> int:
        return self.model.config.model.image_size

    @property
    def action_size(self) -> int:
        return self.model.action_size

    def seed(self, seed: int | None) -> None:
        """Reseed the latent noise (``None``: leave it)."""
        if seed is not None:
            self.generator.manual_seed(int(seed) % 2**63)

    STATE_TENSORS = ("hidden", "keypoints", "feed", "latent", "head_state", "predicted_reward")
    """The tensors that hold every row's state (:meth:`get_state`)."""

    def get_state(self) -> dict[str, Tensor | None]:
        """Every row's state, copied: what :meth:`set_state` needs to continue exactly here.

        ``hidden`` ``[B, H]`` (h_{t-1}), ``keypoints`` ``[B, K, 3]``, ``feed`` ``[B, 3K]``,
        ``latent`` ``[B, Z]`` (None for a deterministic model), ``head_state`` ``[L, B, U]``
        and ``predicted_reward`` ``[B]`` (None without a reward head), and ``generator``: the
        latent noise's :class:`torch.Generator` state (uint8 ``[N]``, on the CPU).
        """
        state: dict[str, Tensor | None] = {}
        for name in self.STATE_TENSORS:
            value = getattr(self, name)
            state[name] = None if value is None else value.detach().clone()
        state["generator"] = self.generator.get_state()
        return state

    def set_state(self, state: dict[str, Tensor | None]) -> None:
        """Continue from a :meth:`get_state` of a filter of the same model, rows and head.

        Raises:
            ValueError: a tensor of another shape, or one that this filter lacks or has.
        """
        for name in self.STATE_TENSORS:
            value, target = state.get(name), getattr(self, name)
            if (value is None) != (target is None) or (
                value is not None and value.shape != target.shape
            ):
                got = None if value is None else list(value.shape)
                want = None if target is None else list(target.shape)
                raise ValueError(f"filter state {name}: got {got}, this filter holds {want}")
            if value is not None:
                target.copy_(value)
        generator = state.get("generator")
        if generator is None:
            raise ValueError("filter state: no generator state")
        self.generator.set_state(generator)

    # ------------------------------------------------------------------ core update
    @torch.no_grad()
    def _infer(
        self, hidden: Tensor, frames: np.ndarray, head_state: Tensor | None
    ) -> tuple[Tensor, Tensor | None, Tensor, Tensor | None, Tensor | None]:
        """Posterior for frames ``[N, S, S, 3]`` given h ``[N, H]``.

        Returns (keypoints [N, K, 3], z [N, Z] or None, feed [N, D], reward [N] or None,
        head state [L, N, U] or None).
        """
        frames = np.asarray(frames)
        size = self.image_size
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != (size, size, 3):
            raise ValueError(
                f"frames must be uint8 [N, {size}, {size}, 3] (the model's image_size), got "
                f"{frames.dtype} {list(frames.shape)}"
            )
        images = frames_to_tensor(
            torch.from_numpy(np.ascontiguousarray(frames))[:, None], self.device
        )
        keypoints = self.detector(images[:, 0])
        step = self.dynamics.posterior_step(
            hidden,
            keypoints.flatten(1),
            self.feed_observed,
            noise=self._noise(len(frames), self.sample_latent),
            sample=self.sample_latent,
            with_prior=False,
        )
        latent, feed = step.latent, step.feed
        reward = None
        if self.reward_head is not None:
            reward, head_state = self.reward_head.step(hidden, head_state, keypoints)
        return keypoints, latent, feed, reward, head_state

    def _store(self, rows: Tensor | slice, hidden: Tensor, result: tuple) -> None:
        """Write one batch of results into ``rows`` (a slice of every row is a plain copy)."""
        keypoints, latent, feed, reward, head_state = result
        self.hidden[rows] = hidden
        self.keypoints[rows] = keypoints
        self.feed[rows] = feed
        if latent is not None and self.latent is not None:
            self.latent[rows] = latent
        if reward is not None and self.predicted_reward is not None:
            self.predicted_reward[rows] = reward
            assert self.head_state is not None
            self.head_state[:, rows] = head_state

    def _noise(self, rows: int, sample: bool) -> Tensor | None:
        """Standard-normal noise ``[rows, Z]`` from :attr:`generator` (None: not sampling)."""
        if not sample or not self.dynamics.stochastic:
            return None
        return torch.randn(
            rows, self.dynamics.latent_size, generator=self.generator, device=self.device
        )

    def _head_zero(self, n: int) -> Tensor | None:
        if self.reward_head is None:
            return None
        return self.reward_head.initial_state(n, self.device)

    # ------------------------------------------------------------------ public API
    @_in_filter_threads
    def reset(self, frames: np.ndarray, rows: Sequence[int] | np.ndarray | None = None) -> None:
        """Start new episodes in ``rows`` (default all) from their first frames ``[N, S, S, 3]``."""
        index = self._rows(rows)
        zeros = torch.zeros(len(index), self.hidden.shape[1], device=self.device)
        self._store(index, zeros, self._infer(zeros, frames, self._head_zero(len(index))))

    def model_actions(self, actions: np.ndarray | None) -> Tensor:
        """float ``[B, A_env]`` -> ``[B, action_size]`` (zero-padded) on the model's device."""
        if actions is None:
            raise ValueError(
                f"the world model is action-conditioned: pass actions [B={self.num_envs}, A]"
            )
        tensor = torch.as_tensor(np.asarray(actions, np.float32), device=self.device)
        if tensor.dim() != 2 or tensor.shape[0] != self.num_envs:
            raise ValueError(f"actions must be [B={self.num_envs}, A], got {list(tensor.shape)}")
        if tensor.shape[1] > self.action_size:
            raise ValueError(
                f"the environment's actions have {tensor.shape[1]} dimensions but the world "
                f"model was trained with action_size={self.action_size}"
            )
        return torch.nn.functional.pad(tensor, (0, self.action_size - tensor.shape[1]))

    def advance(self, actions: np.ndarray | None) -> Tensor:
        """``h_t = GRU([feed_t, z_t, a_{t+1}], h_{t-1})`` for every row -> ``[B, H]`` (not stored)."""
        return self._advance(self.model_actions(actions) if self.action_size else None)

    def advance_in_background(self, actions: np.ndarray | None) -> Future[Tensor]:
        """:meth:`advance` on a worker thread; pass the future to :meth:`step` as ``advanced``.

        Start it before stepping the environment: the GRU update then overlaps the physics
        and rendering (it reads the state and changes nothing). The actions are checked here,
        on the caller's thread.
        """
        action = self.model_actions(actions) if self.action_size else None
        if self._worker is None or self._worker_pid != os.getpid():  # none yet, or forked
            self._worker, self._worker_pid = self._start_worker(), os.getpid()
        return self._worker.submit(self._advance, action)

    def _start_worker(self) -> ThreadPoolExecutor:
        """The GRU update's worker thread, with :attr:`num_threads` torch threads of its
        own, or one when that is None: its work overlaps the environments', which keep a
        core busy.

        torch's thread count is per thread, but setting it also changes the default of
        threads that have not run torch yet: that default is put back once the worker has
        taken its count, so the caller's threads are left as they were.
        """
        count = self.num_threads or 1
        worker = ThreadPoolExecutor(
            1,
            thread_name_prefix="keypoint-wm-worker",
            initializer=torch.set_num_threads,
            initargs=(count,),
        )
        previous = torch.get_num_threads()
        worker.submit(int).result()  # the initializer has run
        torch.set_num_threads(previous)
        return worker

    @torch.no_grad()
    def _advance(self, action: Tensor | None) -> Tensor:
        return self.dynamics.advance(self.hidden, self.feed, self.latent, action)

    def close(self) -> None:
        """Stop the background worker, if one was started."""
        if self._worker is not None:
            self._worker.shutdown(wait=True)
            self._worker = None

    @_in_filter_threads
    def step(
        self,
        actions: np.ndarray | None,
        frames: np.ndarray,
        new_episode: np.ndarray | None = None,
        final_frames: np.ndarray | None = None,
        advanced: Future[Tensor] | None = None,
    ) -> FinalStates | None:
        """Advance every row with its action and observe its next frame, in one batch.

        Args:
            actions: ``[B, A]`` the actions just taken (None for an action-free model).
            frames: ``[B, S, S, 3]`` the frames the environments returned.
            new_episode: bool ``[B]``: these rows' ``frames`` start a new episode (state
                reset instead of advanced; an auto-resetting vector env).
            final_frames: ``[M, S, S, 3]``, the last frames of the ended episodes, for the
                ``M`` rows marked in ``new_episode`` whose final observation is wanted
                (in row order), or None.
            advanced: the future of :meth:`advance_in_background` for these ``actions``
                (default: advance now).

        Returns:
            What the model makes of ``final_frames`` (None without them).
        """
        next_hidden = self.advance(actions) if advanced is None else advanced.result()
        b = self.num_envs
        reset = np.zeros(b, bool) if new_episode is None else np.asarray(new_episode, bool)
        hidden, head_state = next_hidden, self.head_state
        if reset.any():  # most steps end no episode: then there is nothing to zero
            reset_t = torch.as_tensor(reset, device=self.device)
            hidden = torch.where(reset_t[:, None], torch.zeros_like(next_hidden), next_hidden)
            if head_state is not None:
                head_state = torch.where(
                    reset_t[None, :, None], torch.zeros_like(head_state), head_state
                )
        if final_frames is not None:
            ended = torch.as_tensor(np.flatnonzero(reset), device=self.device, dtype=torch.long)
            final_frames = np.asarray(final_frames)
            if len(final_frames) != len(ended):
                raise ValueError(
                    f"final_frames holds {len(final_frames)} frames for {len(ended)} ended episodes"
                )
            frames = np.concatenate([np.asarray(frames), final_frames])
            hidden = torch.cat([hidden, next_hidden[ended]])
            if head_state is not None:
                assert self.head_state is not None
                head_state = torch.cat([head_state, self.head_state[:, ended]], dim=1)
        keypoints, latent, feed, reward, head_out = self._infer(hidden, frames, head_state)
        self._store(
            slice(None),
            hidden[:b],
            (
                keypoints[:b],
                None if latent is None else latent[:b],
                feed[:b],
                None if reward is None else reward[:b],
                None if head_out is None else head_out[:, :b],
            ),
        )
        if final_frames is None:
            return None
        return FinalStates(
            observations=self._features(keypoints[b:], hidden[b:]),
            keypoints=keypoints[b:].cpu().numpy().astype(np.float32),
            rewards=None if reward is None else reward[b:].cpu().numpy().astype(np.float32),
        )

    @_in_filter_threads
    def imagine(self, actions: np.ndarray | None, sample: bool = True) -> None:
        """Advance every row with its action and IMAGINE the next frame from the prior.

        ``h_t = GRU([feed_t, z_t, a_{t+1}], h_{t-1})``, then the model's own
        :meth:`~keypoint_wm.model.KeypointDynamics.prior_step` at h_t: z_{t+1} from
        ``prior(h_t)`` (its mean when not ``sample``; the noise comes from :attr:`generator`)
        and the decoded keypoints, which become the current keypoints (scale clamped to
        [0, 1]; a CNN-VRNN run's decoded features, in [-1, 1] in every channel, as they are)
        and are fed back; the reward head, if any, predicts the imagined frame's reward. Over
        a sequence this is :meth:`keypoint_wm.api.WorldModel.imagine`'s future.
        """
        hidden = self.advance(actions)
        step = self.dynamics.prior_step(
            hidden, noise=self._noise(self.num_envs, sample), sample=sample
        )
        keypoints = step.decoded.view(self.num_envs, -1, 3).clone()
        if self.model.config.model.representation == "keypoints":
            keypoints[..., 2] = keypoints[..., 2].clamp(0.0, 1.0)
        reward, head_state = None, None
        if self.reward_head is not None:
            reward, head_state = self.reward_head.step(hidden, self.head_state, keypoints)
        self._store(slice(None), hidden, (keypoints, step.latent, step.feed, reward, head_state))

    # ------------------------------------------------------------------ outputs
    def _features(self, keypoints: Tensor, hidden: Tensor) -> np.ndarray:
        parts = []
        for name in self.features:
            parts.append(keypoints.flatten(1) if name == "keypoints" else hidden)
        vector = torch.cat(parts, dim=1).cpu().numpy().astype(np.float32)
        return np.clip(vector, self.low, self.high)

    def observations(self) -> np.ndarray:
        """float32 ``[B, D]``: the selected features of every row."""
        return self._features(self.keypoints, self.hidden)

    def keypoints_numpy(self) -> np.ndarray:
        """float32 ``[B, K, 3]`` detected keypoints of the current frames."""
        return self.keypoints.cpu().numpy().astype(np.float32)

    def drawn_keypoints(self) -> np.ndarray:
        """:meth:`keypoints_numpy` with the strength a picture should show them at
        (:func:`keypoint_wm.viz.as_drawn`: the model's ``heatmap_amplitude``)."""
        from keypoint_wm.viz import as_drawn

        return as_drawn(self.keypoints_numpy(), self.model.config.model.heatmap_amplitude)

    def rewards_numpy(self) -> np.ndarray | None:
        """float32 ``[B]`` predicted rewards of the current frames (None without a head)."""
        if self.predicted_reward is None:
            return None
        return self.predicted_reward.cpu().numpy().astype(np.float32)

    def _rows(self, rows: Sequence[int] | np.ndarray | None) -> Tensor:
        if rows is None:
            return torch.arange(self.num_envs, device=self.device)
        return torch.as_tensor(np.asarray(rows, np.int64).reshape(-1), device=self.device)
