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
``metadata``              str (JSON)       domain, task, seed, action repeat, versions ...
========================  ===============  =============================================

An episode of S agent steps holds S + 1 frames. Files from the reference implementation
hold only ``image`` (and optionally ``true_object_pos``); :func:`load_episode` fills in zero
actions and rewards for them.

Every file loads with ``allow_pickle=False``. An unfinished file never has a name ending in
``.npz``: :func:`save_episode` writes to ``.<name>.tmp``, fsyncs and renames.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

EPISODE_SUFFIX = ".npz"
TEMP_SUFFIX = ".tmp"
MANIFEST_NAME = "manifest.json"
REQUIRED_KEYS = ("image",)
KNOWN_KEYS = ("image", "action", "reward", "true_object_pos", "metadata")


@dataclass
class Episode:
    """One episode in memory.

    Attributes:
        image: uint8 ``[T, H, W, 3]``.
        action: float32 ``[T, A]`` (``A = 0`` for action-free data).
        reward: float32 ``[T]``.
        true_object_pos: float32 ``[T, N, 2]`` in the keypoint frame, or ``None``.
        metadata: JSON-serialisable dictionary.
    """

    image: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    true_object_pos: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.image.shape[0])


class EpisodeFormatError(ValueError):
    """An episode file that does not follow the format; the message names the file."""


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader never sees a partial file.

    The bytes go to a hidden temporary name beside ``path`` (never ending in ``.npz``), are
    fsynced, and the file is renamed into place; the directory is fsynced afterwards.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
    return arrays


def load_episode(path: str | os.PathLike, keys: tuple[str, ...] | None = None) -> Episode:
    """Load one episode file (ours or the reference implementation's).

    Args:
        path: the ``.npz`` file.
        keys: load only these arrays (``image`` is always loaded unless left out explicitly);
            missing ``action``/``reward`` become zeros of the right length.

    Raises:
        EpisodeFormatError: the file is unreadable or lacks ``image``; the message names it.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            names = set(data.files)
            if "image" not in names:
                raise EpisodeFormatError(f"{path}: no 'image' array (found {sorted(names)})")
            wanted = set(keys) if keys is not None else set(KNOWN_KEYS)
            loaded = {k: data[k] for k in KNOWN_KEYS if k in names and k in wanted}
            num_frames = int(data["image"].shape[0]) if "image" not in loaded else None
    except EpisodeFormatError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise EpisodeFormatError(f"{path}: cannot read episode file ({error})") from error
    image = loaded.get("image", np.zeros((0, 0, 0, 3), np.uint8))
    if num_frames is None:
        num_frames = int(image.shape[0])
    metadata: dict[str, Any] = {}
    if "metadata" in loaded:
        try:
            metadata = json.loads(str(loaded["metadata"]))
        except json.JSONDecodeError as error:
            raise EpisodeFormatError(f"{path}: metadata is not valid JSON ({error})") from error
    return Episode(
        image=image,
        action=loaded.get("action", np.zeros((num_frames, 0), np.float32)),
        reward=loaded.get("reward", np.zeros((num_frames,), np.float32)),
        true_object_pos=loaded.get("true_object_pos"),
        metadata=metadata,
    )


def validate_arrays(arrays: dict[str, Any]) -> list[str]:
    """Check keys, dtypes, shapes, finiteness and alignment; return the problems found."""
    problems: list[str] = []
    image = arrays.get("image")
    if image is None:
        return ["missing 'image'"]
    if image.dtype != np.uint8 or image.ndim != 4 or image.shape[-1] != 3:
        problems.append(f"'image' must be uint8 [T,H,W,3], got {image.dtype} {list(image.shape)}")
        return problems
    num_frames = image.shape[0]
    if num_frames < 1:
        problems.append("'image' holds no frames")
    action = arrays.get("action")
    if action is not None:
        if action.dtype != np.float32 or action.ndim != 2 or action.shape[0] != num_frames:
            problems.append(
                f"'action' must be float32 [{num_frames},A], got {action.dtype} {list(action.shape)}"
            )
        elif not np.isfinite(action).all():
            problems.append("'action' has non-finite values")
        elif action.shape[1] and num_frames and np.any(action[0] != 0):
            problems.append("'action[0]' must be zero (no action leads to the first frame)")
    reward = arrays.get("reward")
    if reward is not None:
        if reward.dtype != np.float32 or reward.shape != (num_frames,):
            problems.append(
                f"'reward' must be float32 [{num_frames}], got {reward.dtype} {list(reward.shape)}"
            )
        elif not np.isfinite(reward).all():
            problems.append("'reward' has non-finite values")
        elif num_frames and reward[0] != 0:
            problems.append("'reward[0]' must be zero (no reward comes with the first frame)")
    pos = arrays.get("true_object_pos")
    if pos is not None:
        if (
            pos.dtype != np.float32
            or pos.ndim != 3
            or pos.shape[0] != num_frames
            or pos.shape[2] != 2
        ):
            problems.append(
                f"'true_object_pos' must be float32 [{num_frames},N,2], "
                f"got {pos.dtype} {list(pos.shape)}"
            )
        elif not np.isfinite(pos).all():
            problems.append("'true_object_pos' has non-finite values")
    return problems


def check_episode_file(path: str | os.PathLike) -> list[str]:
    """Validate one file without modifying it; return a list of problems (empty if valid)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as error:  # any failure to read is a problem to report, not to raise
        return [f"unreadable ({type(error).__name__}: {error})"]
    problems = validate_arrays(arrays)
    unknown = sorted(set(arrays) - set(KNOWN_KEYS))
    if unknown:
        problems.append(f"unknown keys {unknown}")
    if "metadata" in arrays:
        try:
            json.loads(str(arrays["metadata"]))
        except json.JSONDecodeError:
            problems.append("'metadata' is not a JSON string")
    return problems


def iter_episode_files(root: str | os.PathLike) -> Iterator[Path]:
    """All finished episode files under ``root`` (recursively), in sorted order.

    Hidden files (temporary names of unfinished writes) are skipped.
    """
    root = Path(root)
    if root.is_file():
        raise NotADirectoryError(f"{root} is a file, expected a dataset directory")
    if not root.is_dir():
        raise FileNotFoundError(f"dataset directory {root} does not exist")
    for path in sorted(root.rglob(f"*{EPISODE_SUFFIX}")):
        if path.is_file() and not any(
            part.startswith(".") for part in path.relative_to(root).parts
        ):
            yield path


def read_manifest(root: str | os.PathLike) -> dict[str, Any] | None:
    """The dataset manifest (``manifest.json``) of ``root``, or ``None`` if there is none."""
    path = Path(root) / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise EpisodeFormatError(f"{path}: manifest is not valid JSON ({error})") from error


def write_manifest(root: str | os.PathLike, manifest: dict[str, Any]) -> Path:
    """Atomically write ``manifest.json`` into ``root``."""
    path = Path(root) / MANIFEST_NAME
    atomic_write_bytes(path, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    return path


def episode_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata of an episode file, reading only that member (no image decompression)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            if "metadata.npy" not in archive.namelist():
                return {}
            with archive.open("metadata.npy") as member:
                value = np.lib.format.read_array(member, allow_pickle=False)
        return json.loads(str(value))
    except (OSError, zipfile.BadZipFile, ValueError) as error:
        raise EpisodeFormatError(f"{path}: cannot read metadata ({error})") from error
