"""Bouncing shapes: a second family of object videos, written in the reference format.

A check that the model learns on videos other than our Basketball renderer: a flat folder
of ``shapes_<index>.npz`` files holding only ``image`` (uint8 ``[T, S, S, 3]``) and
``true_object_pos`` (float32 ``[T, N, 2]`` in the keypoint frame), with no actions, rewards
or manifest, exactly like the reference implementation's datasets.

Object ``k`` keeps its identity across sequences (its shape, disc/square/diamond by index,
and its hue, ``k / num_objects`` of the colour wheel, with a little jitter), as the players
of Basketball keep their colours: that is what lets a keypoint stand for one object and a
linear probe map keypoints to object ``k``. Each sequence draws its own background grey
level and each object's size, brightness, start and velocity; objects move at constant speed
with a small random acceleration and bounce elastically off the image borders. Objects
overlap freely (drawn in index order). Every file is a function of ``(seed, index)`` only,
so an interrupted write resumes by rewriting the missing files.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from keypoint_wm.data.episodes import atomic_write_bytes, present_and_valid
from keypoint_wm.errors import UsageError

SHAPES = ("disc", "square", "diamond")
FILE_PATTERN = "shapes_{index:05d}.npz"


@dataclass(frozen=True)
class ShapesConfig:
    """What the generated videos look like.

    Attributes:
        image_size: frame side in pixels.
        num_frames: frames per sequence.
        num_objects: objects per sequence (all drawn, all in ``true_object_pos``).
        min_radius, max_radius: object half-size range in pixels (at ``image_size``).
        max_speed: initial speed range, pixels per frame.
        jitter: std of the per-frame random acceleration, pixels per frame^2.
    """

    image_size: int = 64
    num_frames: int = 50
    num_objects: int = 4
    min_radius: float = 2.5
    max_radius: float = 5.0
    max_speed: float = 2.5
    jitter: float = 0.15

    def __post_init__(self) -> None:
        if self.image_size < 8 or self.num_frames < 2 or self.num_objects < 1:
            raise UsageError("need --size >= 8, --frames >= 2 and --objects >= 1")
        if not 0 < self.min_radius <= self.max_radius < self.image_size / 4:
            raise UsageError(
                f"need 0 < min_radius <= max_radius < image_size / 4: shapes of radius up to "
                f"{self.max_radius:g} px need --size > {4 * self.max_radius:g}, got "
                f"{self.image_size}"
            )


def _trajectories(config: ShapesConfig, radii: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``[T, N, 2]`` (col, row) pixel centres bouncing inside the frame."""
    size, n = config.image_size, config.num_objects
    low, high = radii[:, None] + 0.5, size - 1.5 - radii[:, None]
    pos = rng.uniform(low, high, size=(n, 2))
    angle = rng.uniform(0, 2 * np.pi, size=n)
    speed = rng.uniform(0.4, 1.0, size=n) * config.max_speed
    vel = np.stack([np.cos(angle), np.sin(angle)], axis=-1) * speed[:, None]
    out = np.empty((config.num_frames, n, 2))
    for t in range(config.num_frames):
        out[t] = pos
        vel = vel + rng.normal(0.0, config.jitter, size=vel.shape)
        pos = pos + vel
        for lo_hi, sign in ((low, 1.0), (high, -1.0)):
            crossed = sign * (pos - lo_hi) < 0  # past the wall: reflect position and speed
            pos = np.where(crossed, 2 * lo_hi - pos, pos)
            vel = np.where(crossed, -vel, vel)
    return out


def _coverage(shape: str, dc: np.ndarray, dr: np.ndarray, radius: float) -> np.ndarray:
    """Approximate anti-aliased coverage in [0, 1] of a pixel at offset (dc, dr)."""
    if shape == "disc":
        distance = np.sqrt(dc**2 + dr**2)
    elif shape == "square":
        distance = np.maximum(np.abs(dc), np.abs(dr))
    else:  # diamond: same area scale as the square's inscribed disc
        distance = (np.abs(dc) + np.abs(dr)) / np.sqrt(2.0)
    return np.clip(radius + 0.5 - distance, 0.0, 1.0)


def render_shapes_sequence(config: ShapesConfig, seed: int, index: int) -> dict[str, np.ndarray]:
    """One sequence: ``image`` uint8 ``[T, S, S, 3]`` and ``true_object_pos`` float32
    ``[T, N, 2]`` (x, y in [-1, 1], y up: docs/design.md, "Keypoint frame")."""
    rng = np.random.default_rng([seed, index])
    size, n = config.image_size, config.num_objects
    radii = rng.uniform(config.min_radius, config.max_radius, size=n)
    shapes = np.arange(n) % len(SHAPES)
    hues = (np.arange(n) / n + rng.uniform(-0.03, 0.03, size=n)) % 1.0
    colours = np.stack([_hue_to_rgb(h) for h in hues]) * rng.uniform(0.6, 1.0, size=(n, 1))
    background = rng.uniform(0.15, 0.85)
    centres = _trajectories(config, radii, rng)
    grid = np.arange(size, dtype=np.float64)
    frames = np.full((config.num_frames, size, size, 3), background, dtype=np.float64)
    for k in range(n):
        dc = grid[None, None, :] - centres[:, k, 0, None, None]
        dr = grid[None, :, None] - centres[:, k, 1, None, None]
        alpha = _coverage(SHAPES[shapes[k]], dc, dr, radii[k])[..., None]
        frames = frames + alpha * (colours[k] - frames)
    image = np.clip(np.rint(frames * 255.0), 0, 255).astype(np.uint8)
    x = -1.0 + 2.0 * centres[..., 0] / (size - 1)
    y = 1.0 - 2.0 * centres[..., 1] / (size - 1)
    return {"image": image, "true_object_pos": np.stack([x, y], -1).astype(np.float32)}


def _hue_to_rgb(hue: float) -> np.ndarray:
    """Fully saturated RGB in [0, 1] of ``hue`` in [0, 1)."""
    return np.clip(np.abs((hue * 6.0 + np.array([0.0, 4.0, 2.0])) % 6.0 - 3.0) - 1.0, 0, 1)


def write_shapes_dataset(
    out_dir: str | os.PathLike,
    num_sequences: int = 1000,
    seed: int = 0,
    config: ShapesConfig | None = None,
    progress: bool = True,
) -> dict[str, int]:
    """Write ``num_sequences`` reference-format files into ``out_dir``; keeps whole ones.

    Returns ``{"written": ..., "kept": ...}``. Files are written atomically.
    """
    config = config or ShapesConfig()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, expected a dataset directory")
    out.mkdir(parents=True, exist_ok=True)
    written = kept = 0
    for index in tqdm(range(num_sequences), desc="shapes", unit="seq", disable=not progress):
        path = out / FILE_PATTERN.format(index=index)
        if present_and_valid(path):  # whole; a damaged file is written again
            kept += 1
            continue
        buffer = io.BytesIO()
        arrays = render_shapes_sequence(config, seed, index)
        np.savez_compressed(buffer, allow_pickle=False, **arrays)
        atomic_write_bytes(path, buffer.getvalue())
        written += 1
    return {"written": written, "kept": kept}
