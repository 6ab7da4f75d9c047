"""The episode format's keys and THE check of a file against it
(:mod:`keypoint_wm.data.episodes` describes the layout).

:func:`validate_arrays` checks arrays in memory (dtypes, shapes, alignment, finite values,
the metadata a JSON object); :func:`inspect_episode_file` checks a file on disk with it,
which ``keypoint-wm data check``, the training data path and every resumable writer
(:func:`present_and_valid`) share.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keypoint_wm.errors import DataError

__all__ = [
    "KNOWN_KEYS",
    "REQUIRED_KEYS",
    "ArrayHeader",
    "EpisodeFileReport",
    "EpisodeFormatError",
    "check_episode_file",
    "decode_metadata",
    "inspect_episode_file",
    "metadata_problem",
    "present_and_valid",
    "read_header",
    "validate_arrays",
]

REQUIRED_KEYS = ("image",)
KNOWN_KEYS = ("image", "action", "reward", "true_object_pos", "state", "metadata")


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


@dataclass(frozen=True)
class ArrayHeader:
    """The shape and dtype of an array in an ``.npz``, read without its data."""

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)


def metadata_problem(value: Any) -> str | None:
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


def decode_metadata(value: np.ndarray) -> dict[str, Any]:
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
        if problem := _per_frame_vectors_problem("action", action, num_frames, "A"):
            problems.append(problem)
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
    if state is not None and (
        problem := _per_frame_vectors_problem("state", state, num_frames, "D")
    ):
        problems.append(problem)
    if "metadata" in arrays and (problem := metadata_problem(arrays["metadata"])):
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


def read_header(member: Any) -> ArrayHeader:
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
                                arrays[key] = read_header(member)
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
        metadata=decode_metadata(arrays["metadata"]) if "metadata" in arrays else {},
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


def _per_frame_vectors_problem(
    key: str, array: np.ndarray, num_frames: int, width: str
) -> str | None:
    """Why ``array`` is not a finite float32 ``[num_frames, width]`` (``action``, ``state``)."""
    if array.dtype != np.float32 or array.ndim != 2 or array.shape[0] != num_frames:
        return (
            f"'{key}' must be float32 [{num_frames},{width}], got {array.dtype} {list(array.shape)}"
        )
    if not np.isfinite(array).all():
        return f"'{key}' has non-finite values"
    return None
