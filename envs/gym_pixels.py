"""Any Gymnasium environment that renders RGB frames, as a source of training episodes.

``keypoint-wm collect --env ID`` makes ``gymnasium.make(ID, render_mode="rgb_array",
**kwargs)`` (``module:ID`` imports ``module`` first, for an id registered on import), reads
each step's frame from ``env.render()`` (cropped and area-resized by
:func:`keypoint_wm.data.frames.fit_frames`, as the latent wrappers do) and acts with
:class:`RandomActions`, uniform over the action space:

- a 1-D ``Box``: uniform in [-1, 1] per dimension, stored so, and mapped linearly onto the
  space's bounds for the env (dimensions without finite bounds get the value as it is);
  the latent wrappers' :class:`~keypoint_wm.envs.latent.adapters.ActionAdapter` maps an
  agent's actions back onto [-1, 1] the same way;
- ``Discrete(n)``: a uniform choice, stored one-hot (``[n]``), as the wrappers feed it;
- anything else is refused (:class:`UnsupportedActionSpace`).

The ``state`` stored beside the frames is :mod:`keypoint_wm.envs.gym_state`'s.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from keypoint_wm.data.frames import FrameCrop, fit_frames
from keypoint_wm.envs.gl import route_mujoco_warnings

__all__ = [
    "ALE_PREFIX",
    "ActionUnits",
    "RandomActions",
    "RenderedFrames",
    "RenderedPixels",
    "UnsupportedActionSpace",
    "is_registered",
    "make_gym_env",
    "make_render_env",
    "render_frame",
    "restart_renderer",
]

ALE_PREFIX = "ALE/"
"""The namespace of ale-py's Atari games (``ALE/Pong-v5``): registered on first use."""


class UnsupportedActionSpace(ValueError):
    """An action space that is neither a 1-D ``Box`` nor ``Discrete``."""


def make_render_env(name: str, kwargs: dict[str, Any] | None = None) -> gymnasium.Env:
    """``gymnasium.make(name, render_mode="rgb_array", **kwargs)``.

    Raises:
        ValueError: the id is unknown or its module cannot be imported, or making it fails;
            the message is Gymnasium's (or Python's) in one line.
    """
    return make_gym_env(name, kwargs, render_mode="rgb_array")


def make_gym_env(
    name: str, kwargs: dict[str, Any] | None = None, *, render_mode: str | None = None
) -> gymnasium.Env:
    """``gymnasium.make(name, render_mode=render_mode, **kwargs)``, registering ale-py's
    games first for an ``ALE/...`` id (``render_mode=None``: an env that renders nothing,
    e.g. the state agent's of ``evaluate agents``).

    Raises:
        ValueError: as :func:`make_render_env`.
    """
    _headless_sdl()
    route_mujoco_warnings()
    try:
        if name.rpartition(":")[2].startswith(ALE_PREFIX):
            _register_ale()
        return gymnasium.make(name, render_mode=render_mode, **(kwargs or {}))
    except (gymnasium.error.Error, ImportError, TypeError, ValueError) as error:
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"cannot make {name!r}: {text}") from None


def is_registered(name: str) -> bool:
    """Whether ``name`` is a Gymnasium id that :func:`make_render_env` can make: registered
    (``module:ID``: once ``module`` is imported; ``ALE/...``: once ale-py registered its
    games). Imports that module (or ale-py) as a side effect."""
    module, _, env_id = name.rpartition(":")
    try:
        if module:
            importlib.import_module(module)
        if env_id.startswith(ALE_PREFIX):
            _register_ale()
        gymnasium.spec(env_id)
    except (ImportError, gymnasium.error.Error):
        return False
    return True


def _register_ale() -> None:
    """Register ale-py's ``ALE/...`` games with Gymnasium (once) and quiet its banner.

    Raises:
        ImportError: ale-py is not installed.
    """
    import ale_py  # registers the games on import

    gymnasium.register_envs(ale_py)  # (says so: a no-op that uses the import)
    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)


def _headless_sdl() -> None:
    """Without a display, SDL's dummy video driver for pygame (classic control's renderer):
    an ``rgb_array`` frame needs no window, and SDL's probe of the window systems prints an
    error line per env made ("XDG_RUNTIME_DIR is invalid") otherwise. A driver the user
    chose (``SDL_VIDEODRIVER``) is left alone."""
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")


def render_frame(env: gymnasium.Env) -> Any:
    """``env.render()``, first making a Gymnasium MuJoCo env's GL context current again.

    Gymnasium's offscreen MuJoCo viewer makes its context current only when it is created;
    another renderer of the process (a DMCS task's, another MuJoCo env's) may have made its
    own current since, and the frame would come from that one."""
    renderer = getattr(env.unwrapped, "mujoco_renderer", None)
    viewer = getattr(renderer, "viewer", None)
    if viewer is not None and hasattr(viewer, "make_context_current"):
        viewer.make_context_current()
    return env.render()


def restart_renderer(env: gymnasium.Env) -> None:
    """Drop a Gymnasium MuJoCo env's offscreen viewers; the next ``render()`` makes new ones.

    Its viewer is not reset with the env: the camera is placed when the viewer is made (at
    the first render, from the state then) and a tracking camera then follows the body with
    a lag, so frames would depend on the episodes rendered before. ``collect --env`` makes
    a new env per episode; the latent wrappers call this on ``reset`` so that an episode's
    frames are those a new env renders, as in the training data. Other envs: nothing."""
    renderer = getattr(env.unwrapped, "mujoco_renderer", None)
    viewers = getattr(renderer, "_viewers", None)
    if renderer is None or not isinstance(viewers, dict) or not viewers:
        return
    renderer.close()
    viewers.clear()
    renderer.viewer = None


class RenderedFrames:
    """The current frame of an env made with ``render_mode="rgb_array"``, uint8 ``[S, S, 3]``."""

    def __init__(self, env: gymnasium.Env, size: int, crop: FrameCrop | None = None) -> None:
        if env.render_mode != "rgb_array":
            raise ValueError(
                f"frames come from env.render(): make the environment with "
                f"render_mode='rgb_array' (it has render_mode={env.render_mode!r})"
            )
        self.env, self.size, self.crop = env, size, crop

    def __call__(self, observation: Any = None) -> np.ndarray:
        frame = render_frame(self.env)
        if not isinstance(frame, np.ndarray):
            raise ValueError(f"env.render() returned {type(frame).__name__}, not an RGB array")
        return fit_frames(frame[None], self.size, self.crop)[0]


class RenderedPixels(gymnasium.ObservationWrapper):
    """An env made with ``render_mode="rgb_array"`` whose observations are its rendered
    frames, as ``collect --env`` stored them: uint8 ``[size, size, 3]``
    (:class:`RenderedFrames`: ``render()`` cropped by ``crop`` and area-resized).

    Every ``reset`` restarts a MuJoCo env's renderer (:func:`restart_renderer`), so that an
    episode's frames are those of a new env, as in the collected data. What
    ``evaluate agents`` trains its pixel and latent agents on for a Gymnasium id.
    """

    def __init__(self, env: gymnasium.Env, size: int, crop: FrameCrop | None = None) -> None:
        super().__init__(env)
        self._frames = RenderedFrames(env, size, crop)
        self.observation_space = spaces.Box(0, 255, (size, size, 3), np.uint8)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        observation, info = self.env.reset(seed=seed, options=options)
        restart_renderer(self.env)
        return self.observation(observation), info

    def observation(self, observation: Any) -> np.ndarray:
        return self._frames()


@dataclass(frozen=True)
class ActionUnits:
    """How a 1-D ``Box`` or ``Discrete`` action space maps to the stored/model units: a
    ``Box`` linearly between ``[low, high]`` and [-1, 1] per ``bounded`` dimension (the
    others pass as they are), a ``Discrete`` as a one-hot vector of ``size``. THE mapping of
    ``collect --env`` (:class:`RandomActions`), of the latent wrappers' ``ActionAdapter``
    (env to model units) and of ``evaluate dream-fidelity``'s policies (:meth:`to_env`).

    Raises (:meth:`of`):
        UnsupportedActionSpace: any other space (the message names it).

    >>> units = ActionUnits.of(spaces.Box(-2.0, 2.0, (1,), np.float32))
    >>> units.to_env(np.array([0.5], np.float32))
    array([1.], dtype=float32)
    >>> cart = ActionUnits.of(spaces.Discrete(3, start=1))
    >>> cart.one_hot(2), cart.to_env(cart.one_hot(2))
    (array([0., 0., 1.], dtype=float32), np.int64(3))
    """

    size: int
    discrete: bool
    low: np.ndarray  # float64 [A] (-1 where unbounded)
    high: np.ndarray  # float64 [A] (1 where unbounded)
    bounded: np.ndarray  # bool [A]
    start: int = 0  # a Discrete's first action
    dtype: Any = np.float32  # a Box's action dtype

    @classmethod
    def of(cls, space: spaces.Space) -> ActionUnits:
        if isinstance(space, spaces.Discrete):
            none = np.zeros(0)
            return cls(int(space.n), True, none, none, none.astype(bool), int(space.start))
        if isinstance(space, spaces.Box) and len(space.shape) == 1:
            low = np.asarray(space.low, np.float64)
            high = np.asarray(space.high, np.float64)
            bounded = np.isfinite(low) & np.isfinite(high) & (high > low)
            return cls(
                int(space.shape[0]),
                False,
                np.where(bounded, low, -1.0),
                np.where(bounded, high, 1.0),
                bounded,
                dtype=space.dtype,
            )
        raise UnsupportedActionSpace(
            f"action space {space} is not supported: expected a 1-D Box or Discrete(n)"
        )

    @property
    def identity(self) -> bool:
        """A ``Box`` whose stored values are the env's own (DMCS' [-1, 1] spaces)."""
        return not self.discrete and bool(np.all(self.low == -1) and np.all(self.high == 1))

    def one_hot(self, index: int) -> np.ndarray:
        """A ``Discrete``'s action ``start + index`` as stored: float32 ``[size]`` one-hot."""
        stored = np.zeros(self.size, np.float32)
        stored[index] = 1.0
        return stored

    def to_env(self, stored: np.ndarray) -> Any:
        """The env's action for a stored (model-unit) action, float32 ``[A]``: a
        ``Discrete``'s ``start`` plus the index of the one-hot's largest entry
        (``np.int64``); a ``Box``'s values mapped from [-1, 1] onto ``[low, high]`` per
        bounded dimension (the others as they are), in the space's dtype. A [-1, 1] ``Box``
        gets the stored values bit for bit."""
        if self.discrete:
            return np.int64(self.start + int(np.argmax(stored)))
        if self.identity:
            return stored
        low, high = self.low, self.high
        scaled = low + (np.asarray(stored, np.float64) + 1.0) * 0.5 * (high - low)
        return np.where(self.bounded, scaled, stored).astype(self.dtype)


class RandomActions:
    """Uniform random actions of an action space: what is stored and what the env gets.

    Args:
        space: a 1-D ``Box`` or a ``Discrete`` space.
        rng: the generator the actions are drawn from.

    Raises:
        UnsupportedActionSpace: any other space (the message names it).
    """

    def __init__(self, space: spaces.Space, rng: np.random.Generator) -> None:
        self.space, self.rng = space, rng
        self.units = ActionUnits.of(space)
        self.size = self.units.size

    def sample(self) -> tuple[np.ndarray, Any]:
        """``(stored, for_env)``: float32 ``[A]`` (in [-1, 1], or one-hot) and the env's action
        (:meth:`ActionUnits.to_env`)."""
        if self.units.discrete:
            stored = self.units.one_hot(int(self.rng.integers(self.size)))
        else:
            stored = self.rng.uniform(-1.0, 1.0, size=self.size).astype(np.float32)
        return stored, self.units.to_env(stored)
