"""Basketball data: trajectories in the paper's layout and the dataset writer.

The paper's Basketball videos draw "five offensive players and the ball" as coloured dots on
a top-down court, from trajectories in the Zhan et al. (2019) layout: float ``[N, T, 22]`` in
feet on a 94 x 50 ft court, ``(0, 0)`` at a corner, columns ball (x, y), 5 offence, 5 defence,
6.25 Hz. This module renders that layout, whether it comes from the licensed real data
(:func:`load_source_trajectories`) or from the built-in simulator
(:func:`~keypoint_wm.data.basketball_sim.simulate_basketball`), and writes episode files
(:func:`write_basketball_dataset`). How the court is mapped to the image and drawn:
:mod:`keypoint_wm.data.basketball_render`, whose names this module also offers.
"""

from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from keypoint_wm.data.basketball_render import (
    BACKGROUND_COLOUR,
    BALL_COLOUR,
    DEFAULT_MARGIN_FT,
    DEFENCE_COLOUR,
    OFFENCE_COLOURS,
    VIEWS,
    attacks_right,
    canonical_half_court,
    court_to_keypoint,
    keypoint_to_court,
    render_basketball,
)
from keypoint_wm.data.basketball_sim import (
    COURT_LENGTH_FT,
    COURT_WIDTH_FT,
    FPS,
    NUM_COLUMNS,
    NUM_FRAMES,
    NUM_PLAYERS,
    SIM_CHUNK,
    simulate_basketball,
    simulate_chunk,
)
from keypoint_wm.data.episodes import Episode
from keypoint_wm.data.writer import DatasetWriter, sequence_fields
from keypoint_wm.errors import DataError, UsageError

__all__ = [
    "BACKGROUND_COLOUR",
    "BALL_COLOUR",
    "DEFENCE_COLOUR",
    "OBJECT_NAMES",
    "OFFENCE_COLOURS",
    "REWARDS",
    "VIEWS",
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

OBJECT_NAMES = ("ball", *(f"offence_{i + 1}" for i in range(NUM_PLAYERS)))
"""The objects in ``true_object_pos``: the drawn ball and 5 offence players, in column order."""
REWARDS = ("zero", "ball-x")
"""What a Basketball episode's ``reward`` holds (:func:`basketball_reward`)."""
FILE_PATTERN = "basketball_{:06d}.npz"


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


def _resolve_source(
    source: np.ndarray | str | os.PathLike | None,
    source_key: str | None,
    source_name: str | None,
    num_sequences: int | None,
    num_frames: int,
) -> tuple[np.ndarray | None, str, int, int]:
    """``(trajectories or None to simulate, the source's recorded name, sequences to write,
    frames per sequence)`` for :func:`write_basketball_dataset`."""
    if source is not None and not isinstance(source, np.ndarray):
        source_name = source_name or Path(source).name
        source = load_source_trajectories(source, key=source_key)
    if source is None:
        if num_sequences is None:
            raise ValueError("num_sequences is required when simulating (source=None)")
        return None, "simulator", num_sequences, num_frames
    source = np.asarray(source, dtype=np.float32)
    if source.ndim != 3 or source.shape[-1] != NUM_COLUMNS:
        raise DataError(f"source must be [N, T, 22], got {list(source.shape)}")
    available = source.shape[0]
    count = available if num_sequences is None else min(num_sequences, available)
    return source, source_name or "array", count, source.shape[1]


def _dataset_settings(
    source: np.ndarray | None,
    name: str,
    seed: int,
    size: int,
    num_frames: int,
    draw_defence: bool,
    reward: str,
) -> dict[str, Any]:
    """What the files depend on: recorded in the manifest and every episode's metadata."""
    settings: dict[str, Any] = {
        "dataset": "basketball",
        "source": name,
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
    return settings


def _write_sequences(
    writer: DatasetWriter, positions: np.ndarray, indices: list[int], bar: Any
) -> None:
    """Render sequences ``positions`` ``[n, T, 22]`` (feet) and save them as episodes
    ``indices``, with the writer's settings (size, defence, reward)."""
    settings = writer.settings
    num_frames = positions.shape[1]
    positions, flipped = canonical_half_court(positions)
    for group in range(0, len(indices), 32):
        sub = slice(group, group + 32)
        images = render_basketball(
            positions[sub], settings["size"], settings["draw_defence"], canonicalize=False
        )
        for j, index in enumerate(indices[sub]):
            seq = positions[group + j]
            objects = court_to_keypoint(
                seq[:, : 2 * len(OBJECT_NAMES)].reshape(num_frames, -1, 2)
            ).astype(np.float32)
            episode = Episode(
                image=images[j],
                action=np.zeros((num_frames, 0), np.float32),
                reward=basketball_reward(objects, settings.get("reward", "zero")),
                true_object_pos=objects,
                metadata={**settings, "index": index, "flipped": bool(flipped[group + j])},
            )
            writer.save(FILE_PATTERN.format(index), episode)
            bar.update(1)


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

    Resumable and idempotent (:class:`~keypoint_wm.data.writer.DatasetWriter`): whole files
    are kept as they are; missing and damaged ones are regenerated exactly (simulated data
    is seeded per chunk of :data:`~keypoint_wm.data.basketball_sim.SIM_CHUNK` sequences). A
    directory written with other settings (seed, source, size, ...) is refused.

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
    source, name, count, num_frames = _resolve_source(
        source, source_key, source_name, num_sequences, num_frames
    )
    if count < 0:
        raise UsageError(f"--sequences must be >= 0, got {count}")
    if reward not in REWARDS:
        raise UsageError(f"--reward must be one of {', '.join(REWARDS)}, got {reward!r}")
    settings = _dataset_settings(source, name, seed, size, num_frames, draw_defence, reward)
    writer = DatasetWriter(out_dir, settings, label="Basketball", legacy={"reward": "zero"})
    writer.start(
        sequence_fields(writer.out, FILE_PATTERN, count, num_frames, size, len(OBJECT_NAMES))
    )
    chunk = SIM_CHUNK if source is None else 64
    from tqdm.auto import tqdm

    with tqdm(total=count, desc="basketball", unit="seq", disable=not progress) as bar:
        for chunk_index, start in enumerate(range(0, count, chunk)):
            indices = range(start, min(start + chunk, count))
            missing = [i for i in indices if not writer.finished(FILE_PATTERN.format(i))]
            bar.update(len(indices) - len(missing))
            if not missing:
                continue
            if source is None:
                positions = simulate_chunk(seed, chunk_index, num_frames)[np.array(missing) - start]
            else:
                positions = source[missing]
            _write_sequences(writer, positions, missing, bar)
    writer.finish()
    summary = {"out_dir": str(writer.out), "num_sequences": count, **writer.tally()}
    return {**summary, "manifest": str(writer.manifest_path), "source": name}
