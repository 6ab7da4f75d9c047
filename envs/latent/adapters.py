"""What the latent wrappers need from any environment: its frames and its actions.

:class:`FrameSource` finds the RGB frame of a pixel environment: the observation itself
(a uint8 ``Box`` of shape ``(H, W, 3)``), its ``"pixels"`` entry (a ``Dict`` observation,
as ``DMCPixelEnv(pixels_only=False)`` gives), or ``env.render()`` (any env made with
``render_mode="rgb_array"``). Frames whose size differs from the model's are resized only
when asked (``resize=True``; the wrappers ask by themselves for a model trained on
``collect --env`` data), cropped and area-resized by
:func:`keypoint_wm.data.frames.fit_frames`, as ``collect --env`` made the training frames.

:class:`ActionAdapter` maps the agent's actions onto the model's action units: a bounded
``Box`` linearly onto [-1, 1] (the random actions of the training data are uniform in
[-1, 1]), a ``Discrete`` space to a one-hot vector; then zero padding to the model's
``action_size``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np
from gymnasium import spaces

from keypoint_wm.data.frames import FrameCrop, fit_frames
from keypoint_wm.envs.gym_pixels import ActionUnits, UnsupportedActionSpace

__all__ = ["ActionAdapter", "FrameSource"]

FRAME_SOURCES = ("auto", "observation", "pixels", "render")


def _is_image_box(space: Any) -> bool:
    return (
        isinstance(space, spaces.Box)
        and space.dtype == np.uint8
        and len(space.shape) == 3
        and space.shape[-1] == 3
    )


class FrameSource:
    """Extracts uint8 ``[S, S, 3]`` frames from an environment's observations.

    Args:
        observation_space: the pixel environment's (single) observation space.
        render: a callable returning the current frame (``env.render``), used when
            ``source`` is ``"render"``; None for a vector of envs (frames must then be in
            the observations).
        image_size: S, the world model's image size.
        source: ``"auto"`` (observation if it is an image, else its ``"pixels"`` entry,
            else ``render``), ``"observation"``, ``"pixels"`` or ``"render"``.
        resize: resize frames of another size to S x S instead of raising.
        render_mode: the env's (``"rgb_array"`` needed for ``source="render"``).
        crop: cut off before resizing (the ``--crop`` of the training data).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        render: Callable[[], Any] | None,
        image_size: int,
        source: str = "auto",
        resize: bool = False,
        render_mode: str | None = None,
        crop: FrameCrop | None = None,
    ) -> None:
        if source not in FRAME_SOURCES:
            raise ValueError(f"frame_source must be one of {FRAME_SOURCES}, got {source!r}")
        if source == "auto":
            if _is_image_box(observation_space):
                source = "observation"
            elif isinstance(observation_space, spaces.Dict) and _is_image_box(
                observation_space.spaces.get("pixels")
            ):
                source = "pixels"
            else:
                source = "render"
        if source == "observation" and not _is_image_box(observation_space):
            raise ValueError(
                f"frame_source='observation' needs a uint8 (H, W, 3) Box observation space, "
                f"got {observation_space}"
            )
        if source == "pixels" and not (
            isinstance(observation_space, spaces.Dict)
            and _is_image_box(observation_space.spaces.get("pixels"))
        ):
            raise ValueError(
                "frame_source='pixels' needs a Dict observation space with a uint8 (H, W, 3) "
                f"'pixels' entry, got {observation_space}"
            )
        if source == "render" and render is None:
            raise ValueError(
                "the environment's observations must be RGB frames (uint8 [H, W, 3] or a Dict "
                f"with 'pixels') when there is no single render() to read, got {observation_space}"
            )
        if source == "render" and render_mode != "rgb_array":
            raise ValueError(
                "the environment's observations are not RGB frames, so the wrapper reads "
                "env.render(): make the environment with render_mode='rgb_array' "
                f"(it has render_mode={render_mode!r})"
            )
        self.source = source
        self._render = render
        self.image_size = image_size
        self.resize = bool(resize)
        self.crop = crop
        if source in ("observation", "pixels"):
            space = (
                observation_space
                if source == "observation"
                else cast(spaces.Dict, observation_space)["pixels"]
            )
            height, width = cast(spaces.Box, space).shape[:2]
            if (height, width) != (image_size, image_size) and not self.resize:
                raise ValueError(
                    f"the environment's frames are {height}x{width} but the world model was "
                    f"trained on {image_size}x{image_size}: make the environment with "
                    f"size={image_size}, or pass resize=True"
                )

    def __call__(self, observation: Any) -> np.ndarray:
        """One frame, uint8 ``[S, S, 3]``."""
        if self.source == "observation":
            frame = observation
        elif self.source == "pixels":
            frame = observation["pixels"]
        else:
            assert self._render is not None
            frame = self._render()
        return self.check(np.asarray(frame)[None])[0]

    def check(self, frames: np.ndarray) -> np.ndarray:
        """Validate (and resize if allowed) a batch ``[N, H, W, 3]`` of frames."""
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(
                f"the environment's frames must be uint8 [H, W, 3], got {frames.dtype} "
                f"{list(frames.shape[1:])}"
            )
        size = self.image_size
        if self.resize:
            return fit_frames(frames, size, self.crop)
        if frames.shape[1:3] != (size, size):
            raise ValueError(
                f"the environment's frames are {frames.shape[1]}x{frames.shape[2]} but "
                f"the world model was trained on {size}x{size}; pass resize=True"
            )
        return frames

    def batch(self, observations: Any) -> np.ndarray:
        """Frames ``[N, S, S, 3]`` from a batch of observations (vector envs)."""
        if self.source == "observation":
            return self.check(np.asarray(observations))
        if self.source == "pixels":
            return self.check(np.asarray(observations["pixels"]))
        raise ValueError("vector wrappers need frames in the observations, not render()")

    def stack(self, observations: Sequence[Any]) -> np.ndarray:
        """Frames ``[N, S, S, 3]`` from N single observations (the final ones of ended
        episodes, which vector envs hand over one by one)."""
        if self.source == "observation":
            return self.check(np.stack(observations))
        if self.source == "pixels":
            return self.check(np.stack([observation["pixels"] for observation in observations]))
        raise ValueError("vector wrappers need frames in the observations, not render()")


class ActionAdapter:
    """Maps the agent's actions (one ``[A]`` or a batch ``[B, A]``) to model units.

    Args:
        action_space: the environment's (single) action space: a ``Box`` of shape (A,) or
            a ``Discrete``.
        model_action_size: the world model's ``action_size`` (0: action-free model).
    """

    def __init__(self, action_space: spaces.Space, model_action_size: int) -> None:
        self.action_space = action_space
        self.model_action_size = model_action_size
        try:
            self.units = ActionUnits.of(action_space)
        except UnsupportedActionSpace:
            raise ValueError(
                f"the latent wrappers support Box (1-D) and Discrete action spaces, got "
                f"{action_space}"
            ) from None
        self.size = self.units.size
        if model_action_size and self.size > model_action_size:
            raise ValueError(
                f"the environment has {self.size} action dimensions but the world model was "
                f"trained with action_size={model_action_size}"
            )

    def __call__(self, actions: Any) -> np.ndarray | None:
        """float32 ``[B, A]`` in [-1, 1] (a single action gives B = 1); None if action-free."""
        if not self.model_action_size:
            return None
        if isinstance(self.action_space, spaces.Discrete):
            index = np.asarray(actions, np.int64).reshape(-1) - int(self.action_space.start)
            return np.eye(self.size, dtype=np.float32)[index]
        low, high = self.units.low, self.units.high
        array = np.asarray(actions, np.float64).reshape(-1, self.size)
        scaled = (np.clip(array, low, high) - low) / (high - low)
        return np.where(self.units.bounded, scaled * 2.0 - 1.0, array).astype(np.float32)
