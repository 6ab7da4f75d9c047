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

from keypoint_wm.errors import DataError, not_found

EPISODE_SUFFIX = ".npz"
TEMP_SUFFIX = ".tmp"
MANIFEST_NAME = "manifest.json"
REQUIRED_KEYS = ("image",)
KNOWN_KEYS = ("image", "action", "reward", "true_object_pos", "state", "metadata")


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


class EpisodeFormatError(DataError):
    """An episode file that does not follow the format; the message names the file.

    Raised in a ``DataLoader`` worker, it comes back to the main process as
    ``EpisodeFormatError("Caught EpisodeFormatError in DataLoader worker ... Original
    Traceback ...")``; the constructor keeps only the original one-line message, so the
    command line still prints one line.
    """

    def __init__(self, message: str = "") -> None:
        if message.startswith("Caught ") and "Original Traceback" in message:
            last = message.rstrip().rsplit("\n", 1)[-1]
            message = last.split(": ", 1)[-1]
        super().__init__(message)


class DatasetNotFoundError(DataError, FileNotFoundError):
    """A dataset directory that does not exist or holds no usable episode file."""


class NotADatasetError(DataError, NotADirectoryError):
    """A dataset path that is a file, where a directory was expected."""


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader never sees a partial file.

    The bytes go to a hidden temporary name beside ``path`` (never ending in ``.npz``), are
    fsynced, and the file is renamed into place; the directory is fsynced afterwards. A
    failure to write (a full disk, a read-only folder) is an :class:`OSError` naming
    ``path``, with the old file, if any, untouched.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as error:  # named for the file asked for, not its temporary name
        raise OSError(error.errno, error.strerror, str(path)) from error
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


def atomic_write_json(path: str | os.PathLike, payload: Any, sort_keys: bool = False) -> None:
    """Write ``payload`` as indented JSON (and a final newline) with :func:`atomic_write_bytes`:
    every JSON file the package writes (configs, manifests, records, reports) goes through
    here."""
    text = json.dumps(payload, indent=2, sort_keys=sort_keys) + "\n"
    atomic_write_bytes(path, text.encode())


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
                        loaded[key] = _read_header(member)
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
    metadata = _decode_metadata(loaded["metadata"]) if "metadata" in loaded else {}
    return Episode(
        image=image,
        action=loaded.get("action", np.zeros((num_frames, 0), np.float32)),
        reward=loaded.get("reward", np.zeros((num_frames,), np.float32)),
        true_object_pos=loaded.get("true_object_pos"),
        metadata=metadata,
        state=loaded.get("state"),
    )


@dataclass(frozen=True)
class ArrayHeader:
    """The shape and dtype of an array in an ``.npz``, read without its data."""

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)


def _metadata_problem(value: Any) -> str | None:
    """Why a ``metadata`` array is not a JSON object string, or None when it is one."""
    if not isinstance(value, np.ndarray) or value.dtype.kind != "U" or value.ndim != 0:
        return "'metadata' must be a JSON string (a 0-d str array)"
    try:
        decoded = json.loads(str(value))
    except json.JSONDecodeError:
        return "'metadata' is not valid JSON"
    if not isinstance(decoded, dict):
        return f"'metadata' must be a JSON object, got a JSON {type(decoded).__name__}"
    return None


def _decode_metadata(value: np.ndarray) -> dict[str, Any]:
    """The metadata dictionary of a ``metadata`` array already checked by validate_arrays."""
    return json.loads(str(value))


def validate_arrays(arrays: dict[str, Any]) -> list[str]:
    """Check keys, dtypes, shapes, finiteness, alignment and metadata; return the problems.

    ``arrays`` maps keys of the format to arrays; ``image`` may be an :class:`ArrayHeader`
    (its data is never looked at). ``metadata``, when present, must be a 0-d str array
    holding a JSON object. An empty list means valid.
    """
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
    state = arrays.get("state")
    if state is not None:
        if state.dtype != np.float32 or state.ndim != 2 or state.shape[0] != num_frames:
            problems.append(
                f"'state' must be float32 [{num_frames},D], got {state.dtype} {list(state.shape)}"
            )
        elif not np.isfinite(state).all():
            problems.append("'state' has non-finite values")
    if "metadata" in arrays and (problem := _metadata_problem(arrays["metadata"])):
        problems.append(problem)
    return problems


@dataclass(frozen=True)
class EpisodeFileReport:
    """What :func:`inspect_episode_file` found: the problems, and what a valid file holds.

    Attributes:
        path: the file.
        problems: why the file breaks the format (empty: valid).
        frames: T; ``image_shape``: (H, W, 3); ``action_size``: A (0 without actions);
        num_objects: N of ``true_object_pos`` (0 without); ``state_size``: D of ``state``
        (0 without); ``metadata``: the decoded object;
        reward: float32 ``[T]`` or None when the file has none. These are meaningful only
            when ``problems`` is empty.
    """

    path: Path
    problems: list[str]
    frames: int = 0
    image_shape: tuple[int, int, int] = (0, 0, 3)
    action_size: int = 0
    num_objects: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    reward: np.ndarray | None = None
    state_size: int = 0

    def raise_if_invalid(self) -> None:
        """Raise :class:`EpisodeFormatError` naming the file and every problem, if any."""
        if self.problems:
            raise EpisodeFormatError(f"{self.path}: {'; '.join(self.problems)}")


def _read_header(member: Any) -> ArrayHeader:
    major, _ = np.lib.format.read_magic(member)
    if major == 1:
        shape, _, dtype = np.lib.format.read_array_header_1_0(member)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(member)
    return ArrayHeader(tuple(shape), np.dtype(dtype))


def inspect_episode_file(path: str | os.PathLike, read_images: bool = True) -> EpisodeFileReport:
    """Validate one episode file without modifying it: THE check of the format.

    ``keypoint-wm data check`` and the training data path (the episode index) both use it,
    so a file ``data check`` passes is a file training accepts, and the reverse. Every zip
    member must be a ``.npy`` array of a known key; the arrays must pass
    :func:`validate_arrays`. With ``read_images=False`` only the image's header is read
    (cheap: the small arrays are read, the frames are not decompressed), so a corrupt
    compressed image stream is found only when the frames are loaded.
    """
    path = Path(path)
    arrays: dict[str, Any] = {}
    problems: list[str] = []
    unknown: list[str] = []
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                key = name.removesuffix(".npy")
                if not name.endswith(".npy"):
                    problems.append(f"zip member {name!r} is not a .npy array")
                elif key not in KNOWN_KEYS:
                    unknown.append(key)
                else:
                    with archive.open(name) as member:
                        try:
                            if key == "image" and not read_images:
                                arrays[key] = _read_header(member)
                            else:
                                arrays[key] = np.lib.format.read_array(member, allow_pickle=False)
                        except (ValueError, EOFError, zlib.error) as error:
                            problems.append(f"'{key}' unreadable ({type(error).__name__}: {error})")
    except (OSError, zipfile.BadZipFile, EOFError, zlib.error) as error:
        return EpisodeFileReport(
            path, [f"unreadable, not an .npz archive ({type(error).__name__}: {error})"]
        )
    if unknown:
        problems.append(f"unknown keys {sorted(unknown)} (expected some of {list(KNOWN_KEYS)})")
    if any("unreadable" in p for p in problems):
        return EpisodeFileReport(path, problems)
    problems += validate_arrays(arrays)
    if problems:
        return EpisodeFileReport(path, problems)
    frames, height, width, channels = (int(s) for s in arrays["image"].shape)
    return EpisodeFileReport(
        path,
        [],
        frames=frames,
        image_shape=(height, width, channels),
        action_size=int(arrays["action"].shape[1]) if "action" in arrays else 0,
        num_objects=int(arrays["true_object_pos"].shape[1]) if "true_object_pos" in arrays else 0,
        metadata=_decode_metadata(arrays["metadata"]) if "metadata" in arrays else {},
        reward=arrays.get("reward"),
        state_size=int(arrays["state"].shape[1]) if "state" in arrays else 0,
    )


def check_episode_file(path: str | os.PathLike) -> list[str]:
    """Validate one file without modifying it, frames included; the problems (empty: valid)."""
    return inspect_episode_file(path, read_images=True).problems


def present_and_valid(path: str | os.PathLike) -> bool | None:
    """None: no file; True: a whole episode file (its zip directory, keys and small arrays
    read, not the frames: :func:`inspect_episode_file` with ``read_images=False``); False: a
    damaged one (truncated, overwritten), to be written again. What every resumable writer
    asks of a file before keeping it."""
    path = Path(path)
    if not path.exists():
        return None
    return not inspect_episode_file(path, read_images=False).problems


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


def read_manifest(root: str | os.PathLike) -> dict[str, Any] | None:
    """The dataset manifest (``manifest.json``) of ``root``, or ``None`` if there is none."""
    path = Path(root) / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise EpisodeFormatError(f"{path}: manifest is not valid JSON ({error})") from error


def manifest_episode_count(manifest: dict[str, Any] | None) -> int | None:
    """How many episode files a finished dataset of ``manifest`` holds: a DMCS collection's
    ``spec.episodes`` per task times its tasks, a written dataset's ``requested_sequences``;
    None when the manifest does not say (or there is none).

    >>> manifest_episode_count({"spec": {"episodes": 5, "tasks": ["a-b", "c-d"]}})
    10
    """
    if not isinstance(manifest, dict):
        return None
    spec = manifest.get("spec")
    if isinstance(spec, dict) and isinstance(spec.get("tasks"), list):
        per_task = positive_int_or_none(spec.get("episodes"))
        return per_task * len(spec["tasks"]) if per_task else None
    return positive_int_or_none(manifest.get("requested_sequences"))


def manifest_action_repeat(root: Any) -> int | None:
    """The ``spec.action_repeat`` of the manifest in the dataset folder ``root``: a positive
    int, or None when there is no folder, manifest or such entry (or it is unreadable)."""
    if not isinstance(root, (str, os.PathLike)) or not str(root):
        return None
    try:
        manifest = read_manifest(root)
    except (OSError, DataError):
        return None
    spec = manifest.get("spec") if isinstance(manifest, dict) else None
    return positive_int_or_none(spec.get("action_repeat") if isinstance(spec, dict) else None)


def positive_int_or_none(value: Any) -> int | None:
    """``value`` when it is an int >= 1 (not a bool), else None: a recorded action repeat."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def write_manifest(root: str | os.PathLike, manifest: dict[str, Any]) -> Path:
    """Atomically write ``manifest.json`` into ``root``."""
    path = Path(root) / MANIFEST_NAME
    atomic_write_json(path, manifest, sort_keys=True)
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
    except (OSError, zipfile.BadZipFile, ValueError, EOFError, zlib.error) as error:
        raise EpisodeFormatError(f"{path}: cannot read metadata ({error})") from error
    problem = _metadata_problem(value)
    if problem:
        raise EpisodeFormatError(f"{path}: {problem}")
    return _decode_metadata(value)
