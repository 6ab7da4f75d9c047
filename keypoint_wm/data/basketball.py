"""Basketball data: the court-to-image mapping, a dot renderer and the dataset writer.

The paper's Basketball videos draw "five offensive players and the ball" as coloured dots on
a top-down court, from trajectories in the Zhan et al. (2019) layout: float ``[N, T, 22]`` in
feet on a 94 x 50 ft court, ``(0, 0)`` at a corner, columns ball (x, y), 5 offence, 5 defence,
6.25 Hz. This module renders that layout, whether it comes from the licensed real data
(:func:`load_source_trajectories`) or from the built-in simulator
(:func:`~keypoint_wm.data.basketball_sim.simulate_basketball`), and writes episode files.

Court to image (``view="half"``, the default): play happens in one half, so only the half
court (47 x 50 ft) is drawn, with a 2 ft margin on every side: a square of 54 ft, centred on
the half court, fills the image (1.17 px per ft at 64 x 64). Sequences whose offence attacks
the right basket are first turned by 180 degrees about the court centre,
``(x, y) -> (94 - x, 50 - y)`` (:func:`canonical_half_court`), so the basket is always on the
left of the image (baseline at the left edge, the half-court line near the right edge).
Court x runs to the right and court y up, with the same scale on both axes. ``view="full"``
letterboxes the whole court (98 x 98 ft square, 0.64 px per ft at 64 x 64).

Drawing (64 x 64, sizes scale with the image): light wood background with faint court
lines; offence players are anti-aliased discs of 4.5 px diameter in five distinct colours
(blue, red, green, purple, near-black); defenders, when drawn, are grey discs of the same
size underneath; the ball is an orange disc of 3 px diameter drawn last (on top). Each
pixel's disc coverage is computed from the exact sub-pixel centre, so the intensity centroid
of a lone dot lies at its :func:`court_to_keypoint` position.
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from keypoint_wm import __version__
from keypoint_wm.conventions import keypoint_to_pixel, pixel_to_keypoint
from keypoint_wm.data.basketball_sim import (
    COURT_LENGTH_FT,
    COURT_WIDTH_FT,
    FPS,
    HALF_COURT_FT,
    NUM_COLUMNS,
    NUM_FRAMES,
    NUM_PLAYERS,
    SIM_CHUNK,
    simulate_basketball,
    simulate_chunk,
)
from keypoint_wm.data.episodes import Episode, read_manifest, save_episode, write_manifest
from keypoint_wm.errors import DataError, UsageError

__all__ = [
    "OBJECT_NAMES",
    "REWARDS",
    "attacks_right",
    "basketball_reward",
    "canonical_half_court",
    "court_to_keypoint",
    "keypoint_to_court",
    "load_source_trajectories",
    "render_basketball",
    "simulate_basketball",
    "write_basketball_dataset",
]

VIEWS = ("half", "full")
DEFAULT_MARGIN_FT = 2.0
OBJECT_NAMES = ("ball", *(f"offence_{i + 1}" for i in range(NUM_PLAYERS)))
"""The objects in ``true_object_pos``: the drawn ball and 5 offence players, in column order."""
REWARDS = ("zero", "ball-x")
"""What a Basketball episode's ``reward`` holds (:func:`basketball_reward`)."""
BACKGROUND_COLOUR = (236, 226, 206)
LINE_COLOUR = (206, 193, 168)
OFFENCE_COLOURS = ((30, 90, 215), (215, 35, 45), (25, 150, 60), (145, 55, 185), (35, 35, 35))
DEFENCE_COLOUR = (150, 150, 150)
BALL_COLOUR = (245, 115, 0)
PLAYER_RADIUS_64 = 2.25
BALL_RADIUS_64 = 1.5
FILE_PATTERN = "basketball_{:06d}.npz"
_RENDER_BATCH_FRAMES = 1024


# -- court <-> keypoint frame ---------------------------------------------------------------


def _view_square(view: str, margin_ft: float) -> tuple[float, float, float]:
    """Centre (x, y) and side, in feet, of the court square that fills the image."""
    if view == "half":
        return HALF_COURT_FT / 2, COURT_WIDTH_FT / 2, COURT_WIDTH_FT + 2 * margin_ft
    if view == "full":
        return COURT_LENGTH_FT / 2, COURT_WIDTH_FT / 2, COURT_LENGTH_FT + 2 * margin_ft
    raise ValueError(f"view must be one of {VIEWS}, got {view!r}")


def court_to_keypoint(
    positions: np.ndarray, view: str = "half", margin_ft: float = DEFAULT_MARGIN_FT
) -> np.ndarray:
    """Court feet ``[..., 2]`` to the keypoint frame ``[..., 2]`` (x right, y up, [-1, 1] on
    the image), as :func:`render_basketball` draws them.

    For ``view="half"`` pass positions of the left half (see :func:`canonical_half_court`);
    points outside the drawn square map outside [-1, 1].
    """
    cx, cy, side = _view_square(view, margin_ft)
    positions = np.asarray(positions, dtype=np.float64)
    return np.stack([positions[..., 0] - cx, positions[..., 1] - cy], axis=-1) * (2.0 / side)


def keypoint_to_court(
    xy: np.ndarray, view: str = "half", margin_ft: float = DEFAULT_MARGIN_FT
) -> np.ndarray:
    """Inverse of :func:`court_to_keypoint`: keypoint frame ``[..., 2]`` to feet ``[..., 2]``."""
    cx, cy, side = _view_square(view, margin_ft)
    xy = np.asarray(xy, dtype=np.float64) * (side / 2.0)
    return np.stack([xy[..., 0] + cx, xy[..., 1] + cy], axis=-1)


def attacks_right(positions: np.ndarray) -> np.ndarray:
    """Whether each sequence ``[..., T, 22]`` is played in the right half: the offence's mean
    x over the sequence is beyond the half-court line. Returns bool ``[...]``."""
    positions = np.asarray(positions)
    return positions[..., 2:12:2].mean(axis=(-2, -1)) > HALF_COURT_FT


def canonical_half_court(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Turn sequences played in the right half by 180 degrees about the court centre.

    Args:
        positions: ``[..., T, 22]`` in feet.

    Returns:
        ``(positions, flipped)``: float32 ``[..., T, 22]`` with every offence attacking the
        left basket, and bool ``[...]`` telling which sequences were turned.
    """
    positions = np.asarray(positions, dtype=np.float32)
    flipped = attacks_right(positions)
    court = np.array([COURT_LENGTH_FT, COURT_WIDTH_FT], np.float32)
    turned = np.tile(court, NUM_COLUMNS // 2) - positions
    return np.where(flipped[..., None, None], turned, positions), flipped


# -- rendering ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _background(size: int, view: str, margin_ft: float, court_lines: bool) -> np.ndarray:
    """float32 ``[S, S, 3]`` court image (read-only, cached)."""
    image = np.empty((size, size, 3), np.float32)
    image[:] = BACKGROUND_COLOUR
    if court_lines:
        grid = np.stack(np.meshgrid(np.arange(size), np.arange(size)), axis=-1)  # (col, row)
        feet = keypoint_to_court(pixel_to_keypoint(grid, size), view, margin_ft)
        px_per_ft = (size - 1) / _view_square(view, margin_ft)[2]
        dist = _court_line_distance(feet) * px_per_ft
        alpha = np.clip(1.0 - dist, 0.0, 1.0)[..., None]  # lines about 1 px wide
        image += alpha * (np.array(LINE_COLOUR, np.float32) - image)
    image.setflags(write=False)
    return image


def _court_line_distance(p: np.ndarray) -> np.ndarray:
    """Distance in feet from points ``[..., 2]`` to the nearest court line (both halves)."""
    x, y = p[..., 0], p[..., 1]
    best = np.full(x.shape, np.inf)

    def segment(a: tuple[float, float], b: tuple[float, float]) -> None:
        nonlocal best
        ax, ay = a
        dx, dy = b[0] - ax, b[1] - ay
        t = np.clip(((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
        best = np.minimum(best, np.hypot(x - ax - t * dx, y - ay - t * dy))

    def circle(cx: float, cy: float, r: float, mask: np.ndarray | None = None) -> None:
        nonlocal best
        d = np.abs(np.hypot(x - cx, y - cy) - r)
        best = np.minimum(best, d if mask is None else np.where(mask, d, np.inf))

    length, width = COURT_LENGTH_FT, COURT_WIDTH_FT
    for a, b in [((0, 0), (length, 0)), ((0, width), (length, width))]:
        segment(a, b)
    segment((HALF_COURT_FT, 0), (HALF_COURT_FT, width))
    circle(HALF_COURT_FT, width / 2, 6.0)
    corner_x = 5.25 + np.sqrt(23.75**2 - 22.0**2)
    for sign, base in ((1.0, 0.0), (-1.0, length)):  # left half, then mirrored right half
        segment((base, 0), (base, width))
        for y0 in (17.0, 33.0):  # the lane, 16 ft wide, 19 ft deep
            segment((base, y0), (base + sign * 19.0, y0))
        segment((base + sign * 19.0, 17.0), (base + sign * 19.0, 33.0))
        circle(base + sign * 19.0, width / 2, 6.0)  # free-throw circle
        for y0 in (3.0, width - 3.0):  # corner threes
            segment((base, y0), (base + sign * corner_x, y0))
        circle(base + sign * 5.25, width / 2, 23.75, mask=sign * (x - base) >= corner_x)
    return best


def _draw_discs(
    canvas: np.ndarray, centres: np.ndarray, radius: float, colour: tuple[int, int, int]
) -> None:
    """Blend anti-aliased discs into ``canvas`` float32 ``[F, S, S, 3]`` in place.

    ``centres``: ``[F, 2]`` sub-pixel (col, row), one disc per frame. A pixel's opacity is
    its approximate coverage by the disc, ``clip(radius + 0.5 - distance, 0, 1)``; only a
    small patch around each centre is touched.
    """
    frames, size = canvas.shape[0], canvas.shape[1]
    half = int(np.ceil(radius + 0.5))
    offsets = np.arange(-half, half + 1)
    # Patches stay inside the image; an off-image part of a disc is simply not drawn.
    base = np.clip(np.rint(centres), half, size - 1 - half).astype(np.intp)
    cols = base[:, :1] + offsets  # [F, P]
    rows = base[:, 1:] + offsets
    dc = cols - centres[:, :1]
    dr = rows - centres[:, 1:]
    dist = np.sqrt(dr[:, :, None] ** 2 + dc[:, None, :] ** 2)  # [F, P, P]
    alpha = np.clip(radius + 0.5 - dist, 0.0, 1.0).astype(np.float32)[..., None]
    index = (np.arange(frames)[:, None, None], rows[:, :, None], cols[:, None, :])
    patch = canvas[index]
    canvas[index] = patch + alpha * (np.array(colour, np.float32) - patch)


def render_basketball(
    positions: np.ndarray,
    size: int = 64,
    draw_defence: bool = False,
    *,
    view: str = "half",
    canonicalize: bool = True,
    court_lines: bool = True,
    margin_ft: float = DEFAULT_MARGIN_FT,
    player_radius: float | None = None,
    ball_radius: float | None = None,
) -> np.ndarray:
    """Draw trajectories in the Zhan et al. layout as top-down coloured dots.

    Args:
        positions: ``[T, 22]`` or ``[N, T, 22]`` in feet (ball, 5 offence, 5 defence).
        size: image side S in pixels (at least 8).
        draw_defence: also draw the 5 defenders (one grey colour, under the offence).
        view: ``"half"`` (the half court in play fills the image) or ``"full"`` (letterboxed).
        canonicalize: with ``view="half"``, first turn right-half sequences to the left half
            (:func:`canonical_half_court`); turn it off only for data already in the left half.
        court_lines: draw faint court lines.
        margin_ft: margin around the drawn court, in feet.
        player_radius, ball_radius: disc radii in pixels; default 2.25 and 1.5 at 64 x 64,
            scaled with ``size``.

    Returns:
        uint8 ``[..., T, S, S, 3]``. Object ``k`` at court position ``p`` is centred on the
        pixel whose keypoint is ``court_to_keypoint(p, view, margin_ft)`` (for ``view="half"``
        after :func:`canonical_half_court`).
    """
    positions = np.asarray(positions, dtype=np.float32)
    if positions.ndim not in (2, 3) or positions.shape[-1] != NUM_COLUMNS:
        raise ValueError(f"positions must be [T, 22] or [N, T, 22], got {list(positions.shape)}")
    if size < 8:
        raise UsageError(f"--size must be >= 8 pixels, got {size}")
    if view == "half" and canonicalize:
        positions = canonical_half_court(positions)[0]
    player_radius = PLAYER_RADIUS_64 * size / 64 if player_radius is None else player_radius
    ball_radius = BALL_RADIUS_64 * size / 64 if ball_radius is None else ball_radius
    background = _background(size, view, float(margin_ft), court_lines)
    lead_shape = positions.shape[:-1]
    objects = positions.reshape(-1, NUM_COLUMNS // 2, 2)
    pixels = keypoint_to_pixel(court_to_keypoint(objects, view, margin_ft), size)  # [F, 11, 2]
    out = np.empty((objects.shape[0], size, size, 3), np.uint8)
    for start in range(0, objects.shape[0], _RENDER_BATCH_FRAMES):
        batch = pixels[start : start + _RENDER_BATCH_FRAMES]
        canvas = np.repeat(background[None], batch.shape[0], axis=0)
        if draw_defence:
            for k in range(1 + NUM_PLAYERS, 1 + 2 * NUM_PLAYERS):
                _draw_discs(canvas, batch[:, k], player_radius, DEFENCE_COLOUR)
        for k in range(NUM_PLAYERS):
            _draw_discs(canvas, batch[:, 1 + k], player_radius, OFFENCE_COLOURS[k])
        _draw_discs(canvas, batch[:, 0], ball_radius, BALL_COLOUR)
        # Blending keeps values within [0, 255]; rounding then casting is exact.
        out[start : start + batch.shape[0]] = np.rint(canvas, out=canvas)
    return out.reshape(*lead_shape, size, size, 3)


# -- real trajectories ----------------------------------------------------------------------


def load_source_trajectories(path: str | os.PathLike, key: str | None = None) -> np.ndarray:
    """Load trajectories in the Zhan et al. layout from a ``.npy`` or ``.npz`` file.

    Args:
        path: ``.npy`` holding ``[N, T, 22]``, or ``.npz`` whose first array (or ``key``)
            holds it; positions in feet on the 94 x 50 ft court.
        key: the array to use in an ``.npz``.

    Returns:
        float32 ``[N, T, 22]``.

    Raises:
        UsageError: no such file, or ``key`` for a ``.npy`` file.
        DataError: wrong suffix, missing key, shape, dtype, non-finite or normalised values;
            the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"trajectory file {path} does not exist")
    expected = "[N, T, 22] (ball, 5 offence, 5 defence; x, y in feet)"
    try:
        if path.suffix == ".npy":
            if key is not None:
                raise UsageError(f"{path}: key={key!r} only applies to .npz files")
            array = np.load(path, allow_pickle=False)
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                names = list(data.files)
                if not names:
                    raise DataError(f"{path}: the .npz file holds no arrays")
                if key is None:
                    key = names[0]
                elif key not in names:
                    raise DataError(f"{path}: no array {key!r}; the file holds {names}")
                array = data[key]
        else:
            raise DataError(f"{path}: expected a .npy or .npz file of shape {expected}")
    except (OSError, zipfile.BadZipFile, EOFError) as error:
        raise DataError(f"{path}: cannot read trajectories ({error})") from error
    except UsageError:
        raise
    except ValueError as error:  # numpy's, e.g. a pickled object array
        raise DataError(f"{path}: cannot read trajectories ({error})") from error
    where = f"{path}" + (f" [{key!r}]" if path.suffix == ".npz" else "")
    if array.ndim != 3 or array.shape[-1] != NUM_COLUMNS or 0 in array.shape:
        raise DataError(f"{where}: expected shape {expected}, found {list(array.shape)}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise DataError(f"{where}: expected numbers, found dtype {array.dtype}")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise DataError(f"{where}: holds NaN or infinite positions")
    if np.abs(array).max() <= 2.0:
        raise DataError(
            f"{where}: values lie within [-2, 2]; they look normalised, expected feet on a "
            f"94 x 50 ft court (multiply x by 94 and y by 50 if they were divided by those)"
        )
    outside = (array[..., 0::2] < -10) | (array[..., 0::2] > COURT_LENGTH_FT + 10)
    outside |= (array[..., 1::2] < -10) | (array[..., 1::2] > COURT_WIDTH_FT + 10)
    if outside.any():
        warnings.warn(
            f"{where}: {outside.mean():.2%} of positions lie more than 10 ft off the court",
            stacklevel=2,
        )
    return array


# -- dataset writing ------------------------------------------------------------------------


def _is_finished(path: Path) -> bool:
    # Writes are atomic, so a file with the final name is complete; the zip check only
    # guards against files damaged afterwards.
    return path.is_file() and zipfile.is_zipfile(path)


def basketball_reward(objects: np.ndarray, reward: str = "zero") -> np.ndarray:
    """The ``reward`` of a Basketball episode, float32 ``[T]``, from its ``true_object_pos``
    ``objects`` ``[T, 6, 2]`` (keypoint frame).

    The games have no reward: ``"zero"`` (the default) writes zeros. ``"ball-x"`` writes the
    ball's x position, a quantity the keypoints can see, so that reward heads can be checked
    where no DMCS data can be collected (``reproduce gpu-check``); ``reward[0]`` is 0 as in
    every episode (docs/design.md, "Episode files").

    >>> objects = np.zeros((3, 6, 2), np.float32); objects[:, 0, 0] = [0.1, 0.2, 0.3]
    >>> basketball_reward(objects, "ball-x").tolist() == [0.0, np.float32(0.2), np.float32(0.3)]
    True
    """
    if reward not in REWARDS:
        raise UsageError(f"--reward must be one of {', '.join(REWARDS)}, got {reward!r}")
    if reward == "zero":
        return np.zeros(len(objects), np.float32)
    values = np.asarray(objects[:, 0, 0], np.float32).copy()
    values[0] = 0.0
    return values


def write_basketball_dataset(
    out_dir: str | os.PathLike,
    num_sequences: int | None = 1000,
    seed: int = 0,
    source: np.ndarray | str | os.PathLike | None = None,
    size: int = 64,
    draw_defence: bool = False,
    progress: bool = True,
    *,
    source_key: str | None = None,
    source_name: str | None = None,
    num_frames: int = NUM_FRAMES,
    reward: str = "zero",
) -> dict[str, Any]:
    """Render Basketball episodes into ``out_dir``, one ``basketball_<index>.npz`` each.

    Episodes (docs/design.md, "Episode files"): ``image`` uint8 ``[T, S, S, 3]`` (half-court view),
    ``action`` float32 ``[T, 0]``, ``reward`` float32 ``[T]`` (:data:`REWARDS`), ``true_object_pos``
    float32 ``[T, 6, 2]``: the ball and the 5 offence players (:data:`OBJECT_NAMES`, also with
    ``draw_defence``) in the keypoint frame; ``metadata`` records the source, seed, index,
    fps, view and whether the sequence was turned to the left half. ``manifest.json`` sums up
    the dataset.

    Resumable and idempotent: finished files are kept as they are; missing ones are
    regenerated exactly (simulated data is seeded per chunk of
    :data:`~keypoint_wm.data.basketball_sim.SIM_CHUNK` sequences). A directory written with
    other settings (seed, source, size, ...) is refused.

    Args:
        out_dir: the dataset directory (created if needed; must not be a file).
        num_sequences: how many sequences; with ``source``, at most its length (``None``: all).
        seed: simulator seed (recorded only, for ``source`` data).
        source: real trajectories ``[N, T, 22]`` in feet, or a path for
            :func:`load_source_trajectories`; ``None`` simulates.
        size: image side in pixels.
        draw_defence: also draw the defenders.
        progress: show a tqdm progress bar.
        source_key: the array in a ``source`` ``.npz`` file.
        source_name: the name recorded for an in-memory ``source`` (a path records its name).
        num_frames: frames per simulated sequence.
        reward: what ``reward`` holds, one of :data:`REWARDS` (recorded in the manifest and
            the metadata unless ``"zero"``).

    Returns:
        A summary: ``out_dir``, ``num_sequences``, ``written``, ``kept``, ``seconds``,
        ``manifest`` (its path) and ``source``.
    """
    started = time.perf_counter()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, expected a dataset directory")
    if source is not None and not isinstance(source, np.ndarray):
        source_name = source_name or Path(source).name
        source = load_source_trajectories(source, key=source_key)
    if source is not None:
        source = np.asarray(source, dtype=np.float32)
        if source.ndim != 3 or source.shape[-1] != NUM_COLUMNS:
            raise DataError(f"source must be [N, T, 22], got {list(source.shape)}")
        available = source.shape[0]
        count = available if num_sequences is None else min(num_sequences, available)
        num_frames = source.shape[1]
    elif num_sequences is None:
        raise ValueError("num_sequences is required when simulating (source=None)")
    else:
        count = num_sequences
    if count < 0:
        raise UsageError(f"--sequences must be >= 0, got {count}")
    if reward not in REWARDS:
        raise UsageError(f"--reward must be one of {', '.join(REWARDS)}, got {reward!r}")

    settings: dict[str, Any] = {
        "dataset": "basketball",
        "source": "simulator" if source is None else (source_name or "array"),
        "seed": int(seed),
        "size": int(size),
        "num_frames": int(num_frames),
        "fps": FPS,
        "view": "half",
        "margin_ft": DEFAULT_MARGIN_FT,
        "draw_defence": bool(draw_defence),
        "object_names": list(OBJECT_NAMES),
    }
    if reward != "zero":  # datasets written before --reward existed stay byte-identical
        settings["reward"] = reward
    if source is not None:
        settings["source_sha256"] = hashlib.sha256(np.ascontiguousarray(source).data).hexdigest()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as error:
        raise UsageError(f"--out {out}: cannot create the dataset directory ({error})") from None
    previous = read_manifest(out)
    if previous is not None:
        recorded, wanted = {"reward": "zero", **previous}, {"reward": "zero", **settings}
        clash = sorted(k for k in wanted if k in recorded and recorded[k] != wanted[k])
        if clash:
            details = ", ".join(f"{k}: {recorded[k]!r} there, {wanted[k]!r} now" for k in clash)
            raise UsageError(
                f"--out {out} holds a Basketball dataset written with other settings ({details})"
            )

    def manifest(complete: bool) -> dict[str, Any]:
        files = sorted(p.name for p in out.glob("basketball_*.npz"))
        return {
            **settings,
            "num_episodes": len(files),
            "requested_sequences": count,
            "complete": complete,
            "image_shape": [num_frames, size, size, 3],
            "action_shape": [num_frames, 0],
            "true_object_pos_shape": [num_frames, len(OBJECT_NAMES), 2],
            "file_pattern": FILE_PATTERN,
        }

    manifest_path = write_manifest(out, manifest(complete=False))
    versions = {"keypoint_wm": __version__, "numpy": np.__version__}
    chunk = SIM_CHUNK if source is None else 64
    written = kept = 0
    from tqdm.auto import tqdm

    with tqdm(total=count, desc="basketball", unit="seq", disable=not progress) as bar:
        for chunk_index, start in enumerate(range(0, count, chunk)):
            indices = np.arange(start, min(start + chunk, count))
            missing = [int(i) for i in indices if not _is_finished(out / FILE_PATTERN.format(i))]
            kept += len(indices) - len(missing)
            bar.update(len(indices) - len(missing))
            if not missing:
                continue
            if source is None:
                positions = simulate_chunk(seed, chunk_index, num_frames)[np.array(missing) - start]
            else:
                positions = source[missing]
            positions, flipped = canonical_half_court(positions)
            for group in range(0, len(missing), 32):
                sub = slice(group, group + 32)
                images = render_basketball(positions[sub], size, draw_defence, canonicalize=False)
                for j, index in enumerate(missing[sub]):
                    seq = positions[group + j]
                    objects = court_to_keypoint(
                        seq[:, : 2 * len(OBJECT_NAMES)].reshape(num_frames, -1, 2)
                    ).astype(np.float32)
                    episode = Episode(
                        image=images[j],
                        action=np.zeros((num_frames, 0), np.float32),
                        reward=basketball_reward(objects, reward),
                        true_object_pos=objects,
                        metadata={
                            **settings,
                            "index": index,
                            "flipped": bool(flipped[group + j]),
                            "versions": versions,
                        },
                    )
                    save_episode(out / FILE_PATTERN.format(index), episode)
                    written += 1
                    bar.update(1)
    write_manifest(out, manifest(complete=True))
    return {
        "out_dir": str(out),
        "num_sequences": count,
        "written": written,
        "kept": kept,
        "seconds": round(time.perf_counter() - started, 3),
        "manifest": str(manifest_path),
        "source": settings["source"],
    }
