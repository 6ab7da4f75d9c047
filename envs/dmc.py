"""DeepMind Control Suite tasks as Gymnasium environments with pixel observations.

Importing this module is cheap: dm_control (and with it the OpenGL backend, see
:mod:`keypoint_wm.envs.gl`) is imported when the first environment is built.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, SupportsFloat, cast

import gymnasium
import numpy as np
from gymnasium import spaces

from keypoint_wm.data.state_layout import StatePart, layout_from_sizes
from keypoint_wm.envs.camera import body_positions, camera_index, project_to_keypoints
from keypoint_wm.envs.gl import dm_control_suite
from keypoint_wm.envs.rendering import PixelRenderer

__all__ = ["ActionBounds", "DMCPixelEnv", "StateFlattener", "reseed_task", "step_repeated"]

# dm_control reports an actuator without ctrlrange as bounded by +-mjMAXVAL (1e10); such
# dimensions are passed through unscaled.
_UNBOUNDED = 1e9


@dataclass(frozen=True)
class ActionBounds:
    """A suite task's action spec, for mapping agent actions in [-1, 1] onto it.

    >>> bounds = ActionBounds(np.array([0.0, -1e10]), np.array([2.0, 1e10]), np.dtype("float64"))
    >>> bounds.scale(np.array([0.5, 7.0])).tolist()
    [1.5, 7.0]
    """

    low: np.ndarray
    high: np.ndarray
    dtype: np.dtype

    @classmethod
    def from_spec(cls, spec: Any) -> ActionBounds:
        """From a dm_control ``BoundedArray`` action spec."""
        low = np.asarray(spec.minimum, dtype=np.float64) * np.ones(spec.shape)
        high = np.asarray(spec.maximum, dtype=np.float64) * np.ones(spec.shape)
        return cls(low, high, np.dtype(spec.dtype))

    @property
    def bounded(self) -> np.ndarray:
        """Per dimension: has a real range (else the action passes through)."""
        return (np.abs(self.low) < _UNBOUNDED) & (np.abs(self.high) < _UNBOUNDED)

    def scale(self, action: np.ndarray) -> np.ndarray:
        """``low + (a + 1) / 2 * (high - low)`` on ``a`` clipped to [-1, 1] per bounded
        dimension; unbounded dimensions (lqr) pass through; in the spec's dtype."""
        clipped = np.clip(action, -1.0, 1.0)
        scaled = self.low + (clipped + 1.0) * 0.5 * (self.high - self.low)
        return np.where(self.bounded, scaled, action).astype(self.dtype)


@dataclass(frozen=True)
class StateFlattener:
    """dm_control's observation dict as one float32 vector: THE state of a suite task.

    The entries in the task's ``observation_spec()`` order, each flattened, one after another
    (cartpole: ``position`` (3) then ``velocity`` (2)). Both the ``state`` agents' observation
    (:class:`~keypoint_wm.envs.agents.state.StateEnv`) and the ``state`` key the collector
    stores beside every frame come from here, so the two are the same vector.

    >>> from collections import OrderedDict
    >>> flat = StateFlattener((("position", 3), ("velocity", 2)))
    >>> flat({"velocity": np.array([4.0, 5.0]), "position": np.arange(3.0)}).tolist()
    [0.0, 1.0, 2.0, 4.0, 5.0]
    >>> [(p.name, p.start, p.stop, p.kind) for p in flat.parts]
    [('position', 0, 3, 'position'), ('velocity', 3, 5, 'velocity')]
    """

    entries: tuple[tuple[str, int], ...]
    domain: str | None = None

    @classmethod
    def from_spec(cls, observation_spec: Any, domain: str | None = None) -> StateFlattener:
        """From a dm_control ``observation_spec()`` (an ordered mapping of array specs) of a
        task of ``domain`` (which names its raw-angle entries, see
        :data:`~keypoint_wm.data.state_layout.RAW_ANGLE_KEYS`)."""
        entries = tuple((name, math.prod(s.shape)) for name, s in observation_spec.items())
        return cls(entries, domain)

    @property
    def size(self) -> int:
        """D, the length of the vector."""
        return sum(size for _, size in self.entries)

    @property
    def parts(self) -> tuple[StatePart, ...]:
        """Each entry's slice and kind (the episode metadata's ``"state_keys"``)."""
        return layout_from_sizes(self.entries, self.domain)

    def __call__(self, observation: Any) -> np.ndarray:
        """float32 ``[D]`` from a dm_control observation dict."""
        return np.concatenate(
            [np.asarray(observation[name], np.float32).reshape(-1) for name, _ in self.entries]
        )


def reseed_task(env: Any, seed: int | None) -> None:
    """Reseed a dm_control ``env``'s task randomness with ``seed`` (None: leave it); a seed
    outside [0, 2**32) is first hashed into that range."""
    if seed is None:
        return
    seed = int(seed)
    if not 0 <= seed < 2**32:
        seed = int(np.random.SeedSequence(seed).generate_state(1)[0])
    env.task.random.seed(seed)


def step_repeated(env: Any, command: np.ndarray, repeat: int) -> tuple[Any, float, bool, bool]:
    """Step a dm_control ``env`` ``repeat`` times with ``command`` (stopping at the episode's
    end); returns the last time step, the summed reward, and Gymnasium's ``terminated``
    (the task ended with discount 0) and ``truncated`` (the time limit)."""
    reward = 0.0
    for _ in range(repeat):
        time_step = env.step(command)
        reward += float(time_step.reward or 0.0)
        if time_step.last():
            break
    terminated = truncated = False
    if time_step.last():
        terminated = float(time_step.discount) == 0.0
        truncated = not terminated
    return time_step, reward, terminated, truncated


def _image_size(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        height = width = int(size)
    elif (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in size)
    ):
        height, width = int(size[0]), int(size[1])
    else:
        raise ValueError(f"size must be an int or a (height, width) pair of ints, got {size!r}")
    if height <= 0 or width <= 0:
        raise ValueError(f"size must be positive, got {size!r}")
    return height, width


class DMCPixelEnv(gymnasium.Env):
    """A DeepMind Control Suite task with uint8 pixel observations, as a Gymnasium ``Env``.

    Args:
        domain: suite domain, e.g. ``"cheetah"``.
        task: task of that domain, e.g. ``"run"``.
        size: image size, ``S`` for ``S x S`` or ``(height, width)``; default 64.
        camera_id: index or name of a fixed camera of the model; default 0.
        action_repeat: physics control steps per agent step (the action is repeated and the
            rewards summed; stops early if the dm_control episode ends); default 1.
        pixels_only: observation is the image alone (default) or a ``Dict`` with ``"pixels"``
            and the task's proprioceptive observations, each flattened to 1-D (float64, as
            dm_control gives them) under its dm_control name.
        render_mode: ``None`` or ``"rgb_array"`` (``render()`` returns the current frame).
        shadow_size: shadow map size; ``None`` picks the fastest size whose images match the
            suite's own within a mean absolute difference of 0.1/255 (256 at 64x64, see
            :func:`keypoint_wm.envs.rendering.default_shadow_size`); 2048 is the suite's.
        task_kwargs: passed to the task constructor (``dm_control.suite.load``), e.g.
            ``{"time_limit": 5.0}`` (seconds of simulated time); a ``random`` entry seeds
            episodes until ``reset(seed=...)`` reseeds them.
        environment_kwargs: passed to ``dm_control.rl.control.Environment``, e.g.
            ``{"flat_observation": True}``.

    Spaces:
        observation: ``Box(0, 255, (H, W, 3), uint8)``, or a ``Dict`` (``pixels_only=False``).
        action: ``Box(-1, 1, (action_size,), float32)``, clipped and mapped linearly onto the
            task's action bounds (dimensions without bounds pass through unscaled).

    Episodes end only through dm_control: its time limit gives ``truncated=True`` (a last step
    with discount 1), a task's own termination (discount 0) gives ``terminated=True``. With the
    suite's 1000-step limit an episode has ``max_episode_steps = ceil(1000 / action_repeat)``
    agent steps.

    ``info`` of ``reset`` and ``step`` holds ``"true_object_pos"``: float32 ``[N, 2]``, the
    centres of mass of the model's N non-world bodies (names in :attr:`object_names`)
    projected through the camera into the keypoint frame (x, y in [-1, 1] on the image, y
    up; a body out of view falls outside that range); and ``"state"``: float32 ``[D]``, the
    task's observation dict flattened (:class:`StateFlattener`; slices in
    :attr:`state_parts`), of the same time step as the returned frame.

    Seeding: ``reset(seed=s)`` starts the episode that ``dm_control.suite.load(domain, task,
    task_kwargs={"random": s})`` starts, so the same seed and actions give the same
    observations; ``reset()`` without a seed continues the task's random stream.
    """

    # Gymnasium reads the class-level render modes; each instance sets its own render_fps.
    metadata = {"render_modes": ["rgb_array"], "render_fps": None}  # noqa: RUF012

    def __init__(
        self,
        domain: str,
        task: str,
        *,
        size: int | tuple[int, int] = 64,
        camera_id: int | str = 0,
        action_repeat: int = 1,
        pixels_only: bool = True,
        render_mode: str | None = None,
        shadow_size: int | None = None,
        task_kwargs: dict[str, Any] | None = None,
        environment_kwargs: dict[str, Any] | None = None,
    ) -> None:
        height, width = _image_size(size)
        if (
            isinstance(action_repeat, bool)
            or not isinstance(action_repeat, (int, np.integer))
            or action_repeat <= 0
        ):
            raise ValueError(f"action_repeat must be a positive int, got {action_repeat!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be None or one of {self.metadata['render_modes']}, "
                f"got {render_mode!r}"
            )
        if shadow_size is not None and (
            isinstance(shadow_size, bool)
            or not isinstance(shadow_size, (int, np.integer))
            or shadow_size <= 0
        ):
            raise ValueError(f"shadow_size must be None or a positive int, got {shadow_size!r}")

        suite = dm_control_suite()
        if domain not in suite.TASKS_BY_DOMAIN:
            raise ValueError(
                f"unknown domain {domain!r}; the suite's domains are "
                f"{sorted(suite.TASKS_BY_DOMAIN)}"
            )
        if task not in suite.TASKS_BY_DOMAIN[domain]:
            raise ValueError(
                f"unknown task {task!r} of domain {domain!r}; its tasks are "
                f"{list(suite.TASKS_BY_DOMAIN[domain])}"
            )

        self._domain = domain
        self._task = task
        self._action_repeat = int(action_repeat)
        self._pixels_only = bool(pixels_only)
        self.render_mode = render_mode
        self._env = suite.load(
            domain,
            task,
            task_kwargs=dict(task_kwargs or {}),
            environment_kwargs=environment_kwargs,
        )
        physics = self._env.physics
        self._camera_id = camera_index(physics, camera_id)
        self._renderer: PixelRenderer | None = PixelRenderer(
            physics, height, width, self._camera_id, shadow_size=shadow_size
        )
        self._object_names, _ = body_positions(physics)
        self._state = StateFlattener.from_spec(self._env.observation_spec(), domain)

        spec = self._env.action_spec()
        self._action_bounds = ActionBounds.from_spec(spec)
        self.action_space = spaces.Box(-1.0, 1.0, shape=spec.shape, dtype=np.float32)

        pixels = spaces.Box(0, 255, shape=(height, width, 3), dtype=np.uint8)
        if self._pixels_only:
            self.observation_space = pixels
        else:
            entries: dict[str, spaces.Space] = {"pixels": pixels}
            for name, array_spec in self._env.observation_spec().items():
                if name == "pixels":
                    raise ValueError("the task already has an observation named 'pixels'")
                entries[name] = spaces.Box(
                    -np.inf,
                    np.inf,
                    shape=(math.prod(array_spec.shape),),
                    dtype=np.dtype(array_spec.dtype),
                )
            # An OrderedDict keeps "pixels" first and then dm_control's order (a plain dict
            # would be sorted by Gymnasium).
            self.observation_space = spaces.Dict(OrderedDict(entries))

        control_timestep = float(self._env.control_timestep())
        self.metadata = {
            **type(self).metadata,
            "render_fps": 1.0 / (control_timestep * self._action_repeat),
        }
        step_limit = float(self._env._step_limit)  # dm_control control steps per episode
        self._max_episode_steps: int | None = (
            None
            if math.isinf(step_limit)
            else math.ceil(math.ceil(step_limit) / self._action_repeat)
        )
        self._frame: np.ndarray | None = None
        self._needs_reset = True

    # ----------------------------------------------------------------------------------
    # Properties

    @property
    def domain(self) -> str:
        """The suite domain, e.g. ``"cheetah"``."""
        return self._domain

    @property
    def task(self) -> str:
        """The domain's task, e.g. ``"run"``."""
        return self._task

    @property
    def action_size(self) -> int:
        """Number of action dimensions."""
        return int(cast(spaces.Box, self.action_space).shape[0])

    @property
    def action_repeat(self) -> int:
        """Physics control steps per agent step."""
        return self._action_repeat

    @property
    def image_size(self) -> tuple[int, int]:
        """``(height, width)`` of the pixel observations."""
        height, width = self.pixel_space.shape[:2]
        return height, width

    @property
    def pixel_space(self) -> spaces.Box:
        """The ``Box`` of the pixel observation (the whole space when ``pixels_only``)."""
        space = self.observation_space
        return cast(spaces.Box, space["pixels"] if isinstance(space, spaces.Dict) else space)

    @property
    def camera_id(self) -> int:
        """Index of the fixed camera that renders the observations."""
        return self._camera_id

    @property
    def object_names(self) -> tuple[str, ...]:
        """Names of the bodies whose positions ``info["true_object_pos"]`` holds, in order."""
        return self._object_names

    @property
    def state_parts(self) -> tuple[StatePart, ...]:
        """The slices of ``info["state"]``: one per observation key, in storage order."""
        return self._state.parts

    @property
    def max_episode_steps(self) -> int | None:
        """Agent steps per episode under dm_control's time limit; ``None`` without a limit."""
        return self._max_episode_steps

    @property
    def control_timestep(self) -> float:
        """Simulated seconds per agent step (dm_control's control timestep x action repeat)."""
        return float(self._env.control_timestep()) * self._action_repeat

    @property
    def physics(self) -> Any:
        """The ``dm_control.mujoco.Physics`` (advanced use; changing it changes the episode)."""
        return self._env.physics

    @property
    def dm_env(self) -> Any:
        """The wrapped ``dm_control.rl.control.Environment``."""
        return self._env

    # ----------------------------------------------------------------------------------
    # Gymnasium API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Start an episode; ``seed`` reseeds the task's random state (see the class doc)."""
        self._live_renderer()  # raises if closed
        super().reset(seed=seed)
        reseed_task(self._env, seed)
        time_step = self._env.reset()
        self._needs_reset = False
        return self._observation(time_step.observation), self._info(time_step.observation)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Repeat ``action`` for ``action_repeat`` control steps and sum the rewards."""
        self._live_renderer()  # raises if closed
        if self._needs_reset:
            raise RuntimeError("the episode has ended (or never started): call reset() first")
        command = self.scale_action(action)
        time_step, reward, terminated, truncated = step_repeated(
            self._env, command, self._action_repeat
        )
        self._needs_reset = time_step.last()
        observation = self._observation(time_step.observation)
        return observation, reward, terminated, truncated, self._info(time_step.observation)

    def render(self) -> np.ndarray | None:
        """The current frame, uint8 ``[H, W, 3]``, if ``render_mode == "rgb_array"``."""
        if self.render_mode is None:
            gymnasium.logger.warn(
                "render() was called without a render_mode; make the environment with "
                'render_mode="rgb_array"'
            )
            return None
        if self._frame is None:
            self._frame = self._render_frame()
        return self._frame.copy()

    def close(self) -> None:
        """Free the renderer, its GL context and the physics. Safe to call twice."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
            self._env.physics.free()
        super().close()

    # ----------------------------------------------------------------------------------
    # Helpers

    def scale_action(self, action: Any) -> np.ndarray:
        """Map an action in [-1, 1] (clipped) onto the task's bounds, in the spec's dtype.

        ``low + (a + 1) / 2 * (high - low)`` per bounded dimension; unbounded dimensions
        (lqr) pass through.
        """
        array = np.asarray(action, dtype=np.float64)
        if array.shape != self.action_space.shape:
            if array.size != self.action_size:
                raise ValueError(
                    f"action must have shape {self.action_space.shape}, got {array.shape}"
                )
            array = array.reshape(self.action_space.shape)
        return self._action_bounds.scale(array)

    def true_object_positions(self) -> np.ndarray:
        """Bodies' centres of mass in the keypoint frame, float32 ``[N, 2]`` (see class doc)."""
        _, points = body_positions(self._env.physics)
        height, width = self.image_size
        xy = project_to_keypoints(self._env.physics, points, self._camera_id, height, width)
        return xy.astype(np.float32)

    def segmentation(self) -> np.ndarray:
        """Per-pixel ``(object id, object type)`` of the current frame, int32 ``[H, W, 2]``."""
        return self._live_renderer().segmentation()

    def _live_renderer(self) -> PixelRenderer:
        if self._renderer is None:
            raise RuntimeError("the environment is closed")
        return self._renderer

    def _render_frame(self) -> np.ndarray:
        return self._live_renderer().render()

    def _observation(self, dm_observation: Any) -> Any:
        frame = self._render_frame()
        self._frame = frame
        if self._pixels_only:
            return frame.copy()
        observation: dict[str, np.ndarray] = {"pixels": frame.copy()}
        for name, space in cast(spaces.Dict, self.observation_space).spaces.items():
            if name != "pixels":
                observation[name] = np.asarray(dm_observation[name], dtype=space.dtype).reshape(
                    space.shape
                )
        return observation

    def _info(self, dm_observation: Any) -> dict[str, Any]:
        return {
            "true_object_pos": self.true_object_positions(),
            "state": self._state(dm_observation),
        }

    def __repr__(self) -> str:
        height, width = self.image_size
        return (
            f"DMCPixelEnv({self._domain!r}, {self._task!r}, size=({height}, {width}), "
            f"camera_id={self._camera_id}, action_repeat={self._action_repeat})"
        )
