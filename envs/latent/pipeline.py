"""Detection while the envs step: :class:`DetectionPipeline` for in-process vector envs.

A vector env that steps its envs one after another on the caller's thread (Stable-Baselines3's
``DummyVecEnv``, Gymnasium's ``SyncVectorEnv``) leaves the second core idle while the
physics and the renderer run. The pipeline wraps each of its envs in a :class:`FrameTap`:
as soon as env i returns a frame (from ``step``, or from the ``reset`` of an auto-reset),
the frame goes to the :class:`~keypoint_wm.envs.latent.online.LatentFilter`'s worker thread
and the keypoint detector runs on it while envs i+1, i+2, ... step. After the last env only
its detection and the batched posterior are left. The keypoints are those of detecting all
frames in one batch afterwards (the same detector on the same frames; batch size changes
float rounding only, below 1e-5). See docs/design.md, "Wrapper speed".

Vector envs that step in other processes (``SubprocVecEnv``, ``AsyncVectorEnv``) have no
envs in this process to tap; their frames are detected in one batch, as without a pipeline.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from typing import Any

import gymnasium
import numpy as np
import torch
from torch import Tensor

from keypoint_wm.envs.latent.adapters import FrameSource
from keypoint_wm.envs.latent.online import LatentFilter

__all__ = ["DetectionPipeline", "FrameTap"]


class FrameTap(gymnasium.Wrapper):
    """One env of a vector env: each observation it returns (from ``step`` or ``reset``) is
    passed to ``on_observation`` on its way out; everything else is the env's."""

    def __init__(self, env: gymnasium.Env, on_observation: Any) -> None:
        super().__init__(env)
        self._on_observation = on_observation

    def step(self, action: Any) -> Any:
        result = self.env.step(action)
        self._on_observation(result[0])
        return result

    def reset(self, **kwargs: Any) -> Any:
        observation, info = self.env.reset(**kwargs)
        self._on_observation(observation)
        return observation, info


class DetectionPipeline:
    """Starts each env's detection as soon as that env has stepped.

    Args:
        latent_filter: the filter whose worker thread runs the detector.
        frames: how frames are read from one env's observation.
        envs: the vector env's envs, stepped in this order on the caller's thread.

    :attr:`envs` are the same envs, each in a :class:`FrameTap`: put them in the vector
    env's place. Observations are tapped only inside :meth:`stepping`.
    """

    def __init__(
        self, latent_filter: LatentFilter, frames: FrameSource, envs: Sequence[gymnasium.Env]
    ) -> None:
        self._filter = latent_filter
        self._frames = frames
        self._pending: list[list[Future[Tensor]]] = [[] for _ in envs]
        self._active = False
        self.envs: list[gymnasium.Env] = [
            FrameTap(env, functools.partial(self._on_observation, row))
            for row, env in enumerate(envs)
        ]

    def _on_observation(self, row: int, observation: Any) -> None:
        if self._active:
            frame = self._frames.stack([observation])
            self._pending[row].append(self._filter.detect_in_background(frame))

    @contextlib.contextmanager
    def stepping(self) -> Iterator[None]:
        """Tap the observations the envs return in this block (one vector step)."""
        self._drain()
        self._active = True
        try:
            yield
        finally:
            self._active = False

    def keypoints(
        self, two_frames: np.ndarray, final_rows: Sequence[int] | np.ndarray
    ) -> Tensor | None:
        """The keypoints of the step's frames: every env's new frame ``[B, K, 3]``, then the
        final frames of ``final_rows`` (in that order), concatenated.

        Args:
            two_frames: bool ``[B]``: these envs returned two frames in the step (an
                episode's final frame, then the first frame of the next, auto-reset in the
                same step); the others one.
            final_rows: rows among ``two_frames`` whose final frame's keypoints are wanted.

        Returns:
            ``[B + len(final_rows), K, 3]``, or None when some env did not return the
            frames expected (the caller then detects in one batch).
        """
        pending = self._drain()
        expected = np.where(np.asarray(two_frames, bool), 2, 1)
        if [len(futures) for futures in pending] != expected.tolist():
            for futures in pending:
                for future in futures:
                    future.result()
            return None
        current = [futures[-1].result() for futures in pending]
        finals = [pending[row][0].result() for row in final_rows]
        return torch.cat(current + finals)

    def _drain(self) -> list[list[Future[Tensor]]]:
        pending, self._pending = self._pending, [[] for _ in self._pending]
        return pending
