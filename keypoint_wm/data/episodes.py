"""The episode file format: one ``.npz`` per episode, written atomically.

Layout (docs/design.md, "Episode files"), the one the reference implementation and
DreamerV3/PlaNet use:

========================  ===============  =============================================
key                       dtype / shape    meaning
========================  ===============  =============================================
``image``                 uint8 [T,H,W,3]  RGB frames
``action``                float32 [T,A]    ``action[t]`` led to ``image[t]``; ``action[0] = 0``
``reward``                float32 [T]      reward received with ``image[t]``; ``reward[0] = 0``
``true_object_pos``       float32 [T,N,2]  optional; ground-truth (x, y) in the keypoint frame
``state``                 float32 [T,D]    optional; the task's physics state at ``image[t]``
``metadata``              str (JSON)       domain, task, seed, action repeat, versions ...
========================  ===============  =============================================

An episode of S agent steps holds S + 1 frames. Files from the reference implementation
hold only ``image`` (and optionally ``true_object_pos``); :func:`load_episode` fills in zero
actions and rewards for them.

``state[t]`` is the low-dimensional observation of the time step that ``image[t]`` shows (for
DMCS, dm_control's observation dict flattened key after key); the metadata's
``"state_keys"`` names each key's slice (:mod:`keypoint_wm.data.state_layout`).

Every file loads with ``allow_pickle=False``. An unfinished file never has a name ending in
``.npz``: :func:`save_episode` writes to ``.<name>.tmp``, fsyncs and renames.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keypoint_wm.data.atomic import TEMP_SUFFIX, atomic_write_bytes, atomic_write_json
from keypoint_wm.data.episode_format import (
    KNOWN_KEYS,
    REQUIRED_KEYS,
    ArrayHeader,
    EpisodeFileReport,
    EpisodeFormatError,
    check_episode_file,
    decode_metadata,
    inspect_episode_file,
    metadata_problem,
    present_and_valid,
    read_header,
    validate_arrays,
)
from keypoint_wm.data.manifest import (
    MANIFEST_NAME,
    manifest_action_repeat,
    manifest_episode_count,
    positive_int_or_none,
    read_manifest,
    write_manifest,
)
from keypoint_wm.errors import DataError, not_found

__all__ = [
    "EPISODE_SUFFIX",
    "KNOWN_KEYS",
    "MANIFEST_NAME",
    "REQUIRED_KEYS",
    "TEMP_SUFFIX",
    "ArrayHeader",
    "DatasetNotFoundError",
    "Episode",
    "EpisodeFileReport",
    "EpisodeFormatError",
    "NotADatasetError",
    "atomic_write_bytes",
    "atomic_write_json",
    "check_episode_file",
    "episode_metadata",
    "episode_to_bytes",
    "inspect_episode_file",
    "iter_episode_files",
    "load_episode",
    "manifest_action_repeat",
    "manifest_episode_count",
    "positive_int_or_none",
    "present_and_valid",
    "read_manifest",
    "save_episode",
    "validate_arrays",
    "write_manifest",
]

EPISODE_SUFFIX = ".npz"


@dataclass
class Episode:
    """One episode in memory.

    Attributes:
        image: uint8 ``[T, H, W, 3]``.
        action: float32 ``[T, A]`` (``A = 0`` for action-free data).
        reward: float32 ``[T]``.
        true_object_pos: float32 ``[T, N, 2]`` in the keypoint frame, or ``None``.
        metadata: JSON-serialisable dictionary.
        state: float32 ``[T, D]``, the physics state at each frame, or ``None``.
    """

    image: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    true_object_pos: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    state: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return int(self.image.shape[0])


class DatasetNotFoundError(DataError, FileNotFoundError):
    """A dataset directory that does not exist or holds no usable episode file."""


class NotADatasetError(DataError, NotADirectoryError):
    """A dataset path that is a file, where a directory was expected."""


def episode_to_bytes(episode: Episode, compress: bool = True) -> bytes:
    """Serialise an episode to the bytes of an ``.npz`` file (deterministic for equal input)."""
    arrays: dict[str, np.ndarray] = {
        "image": np.ascontiguousarray(episode.image, dtype=np.uint8),
        "action": np.ascontiguousarray(episode.action, dtype=np.float32),
        "reward": np.ascontiguousarray(episode.reward, dtype=np.float32),
        "metadata": np.array(json.dumps(episode.metadata, sort_keys=True)),
    }
    if episode.true_object_pos is not None:
        arrays["true_object_pos"] = np.ascontiguousarray(episode.true_object_pos, np.float32)
    if episode.state is not None:
        arrays["state"] = np.ascontiguousarray(episode.state, np.float32)
    # np.savez stamps zip entries with the current time; write the archive ourselves with a
    # fixed timestamp so that the same episode always gives the same bytes.
    buffer = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = method
            member = io.BytesIO()
            np.lib.format.write_array(member, value, allow_pickle=False)
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()


def save_episode(path: str | os.PathLike, episode: Episode, compress: bool = True) -> Path:
    """Validate ``episode`` and write it atomically to ``path`` (which must end in ``.npz``)."""
    path = Path(path)
    if path.suffix != EPISODE_SUFFIX:
        raise ValueError(f"episode path {path} must end in {EPISODE_SUFFIX}")
    problems = validate_arrays(_episode_arrays(episode))
    if problems:
        raise EpisodeFormatError(f"refusing to write {path}: " + "; ".join(problems))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, episode_to_bytes(episode, compress=compress))
    return path


def _episode_arrays(episode: Episode) -> dict[str, Any]:
    arrays: dict[str, Any] = {
        "image": episode.image,
        "action": episode.action,
        "reward": episode.reward,
    }
    if episode.true_object_pos is not None:
        arrays["true_object_pos"] = episode.true_object_pos
    if episode.state is not None:
        arrays["state"] = episode.state
    return arrays


def load_episode(path: str | os.PathLike, keys: tuple[str, ...] | None = None) -> Episode:
    """Load one episode file (ours or the reference implementation's).

    Args:
        path: the ``.npz`` file.
        keys: load only these arrays (``image`` is always loaded unless left out explicitly);
            missing ``action``/``reward`` become zeros of the right length.

    Raises:
        EpisodeFormatError: the file is unreadable, lacks ``image``, or breaks the format
            (:func:`validate_arrays`: dtypes, shapes, alignment, finite values, metadata
            a JSON object); the message names the file and the reason.
    """
    path = Path(path)
    wanted = set(keys) if keys is not None else set(KNOWN_KEYS)
    loaded: dict[str, Any] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "image.npy" not in names:
                found = sorted(n.removesuffix(".npy") for n in names)
                raise EpisodeFormatError(f"{path}: no 'image' array (found {found})")
            for key in KNOWN_KEYS:
                if f"{key}.npy" not in names or (key not in wanted and key != "image"):
                    continue
                with archive.open(f"{key}.npy") as member:
                    if key in wanted:
                        loaded[key] = np.lib.format.read_array(member, allow_pickle=False)
                    else:  # the frame count, without decompressing the frames
                        loaded[key] = read_header(member)
    except EpisodeFormatError:
        raise
    except zipfile.BadZipFile as error:
        raise EpisodeFormatError(f"{path}: unreadable, not an .npz archive ({error})") from error
    except (OSError, ValueError, EOFError, zlib.error) as error:
        raise EpisodeFormatError(f"{path}: cannot read episode file ({error})") from error
    problems = validate_arrays(loaded)
    if problems:
        raise EpisodeFormatError(f"{path}: {'; '.join(problems)}")
    num_frames = int(loaded["image"].shape[0])
    if "image" not in wanted:
        del loaded["image"]
    image = loaded.get("image", np.zeros((0, 0, 0, 3), np.uint8))
    metadata = decode_metadata(loaded["metadata"]) if "metadata" in loaded else {}
    return Episode(
        image=image,
        action=loaded.get("action", np.zeros((num_frames, 0), np.float32)),
        reward=loaded.get("reward", np.zeros((num_frames,), np.float32)),
        true_object_pos=loaded.get("true_object_pos"),
        metadata=metadata,
        state=loaded.get("state"),
    )


def iter_episode_files(root: str | os.PathLike) -> Iterator[Path]:
    """All finished episode files under ``root`` (recursively), in sorted order.

    Hidden files (temporary names of unfinished writes) are skipped.
    """
    root = Path(root)
    if root.is_file():
        raise NotADatasetError(f"{root} is a file, expected a dataset directory")
    if not root.is_dir():
        raise DatasetNotFoundError(f"dataset directory {root} {not_found(root)}")
    for path in sorted(root.rglob(f"*{EPISODE_SUFFIX}")):
        if path.is_file() and not any(
            part.startswith(".") for part in path.relative_to(root).parts
        ):
            yield path


def episode_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata of an episode file, reading only that member (no image decompression)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            if "metadata.npy" not in archive.namelist():
                return {}
            with archive.open("metadata.npy") as member:
                value = np.lib.format.read_array(member, allow_pickle=False)
    except (OSError, zipfile.BadZipFile, ValueError, EOFError, zlib.error) as error:
        raise EpisodeFormatError(f"{path}: cannot read metadata ({error})") from error
    problem = metadata_problem(value)
    if problem:
        raise EpisodeFormatError(f"{path}: {problem}")
    return decode_metadata(value)
