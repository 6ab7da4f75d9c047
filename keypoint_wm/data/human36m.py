"""Human3.6M in its official layout -> 64 x 64 person-centred episode files.

Layout read (Ionescu et al. 2014, as distributed)::

    ROOT/S<n>/Videos/<Action>.<camera>.mp4                       50 fps
    ROOT/S<n>/MyPoseFeatures/D2_Positions/<Action>.<camera>.cdf  variable "Pose",
                                                                 (1, frames, 64): 32 joints
                                                                 x (u, v) video pixels

``<Action>`` carries an optional trial suffix (``"Walking 1"``); it maps to one of the 15
classes of :data:`ACTION_CLASSES`, the official aliases (``TakingPhoto``/``Photo``,
``WalkingDog``/``WalkDog``) to one class. ``_ALL`` files are skipped, as are subjects absent
from the tree (with a warning). Subjects split into train and test by the standard
protocol (train S1, S5, S6, S7, S8; test S9, S11; the paper lists S9 on both sides, a typo),
configurable.

Each video (one camera) becomes one episode ``<out>/S<n>_<Action>.<camera>.npz``: every
``frame_step``-th frame, cropped to a square around the person (from the 2D joints) and
resized to ``size`` x ``size``; ``true_object_pos`` holds the chosen joints
(:mod:`keypoint_wm.data.skeleton`) mapped into the keypoint frame of the crop; the metadata
holds ``subject``, ``split``, ``action`` (class), ``action_raw``, ``camera``.

Crop (``crop="track"``, default): a square of one side for the whole episode (the largest
joint bounding box of any frame, plus ``crop_margin`` of it on every side) whose centre
follows the bounding-box centre, smoothed over ``smooth`` kept frames; the person keeps one
size and stays centred. ``crop="fixed"``: one square holding every frame's joints. Parts of
the square outside the video are black. Pixel centres: source pixel ``i`` covers
``[i - 0.5, i + 0.5]``; a joint at video pixel ``u`` lands at output pixel
``(u + 0.5 - left) * size / side - 0.5``.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keypoint_wm.conventions import pixel_to_keypoint
from keypoint_wm.data.episodes import Episode
from keypoint_wm.data.skeleton import H36M_32_TO_17, JOINT_SETS, joint_selection
from keypoint_wm.data.writer import DatasetWriter
from keypoint_wm.errors import DataError, RunError, UsageError

DEFAULT_TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
DEFAULT_TEST_SUBJECTS = ("S9", "S11")
VIDEO_FPS = 50
ACTION_CLASSES = (
    "Directions",
    "Discussion",
    "Eating",
    "Greeting",
    "Phoning",
    "Photo",
    "Posing",
    "Purchases",
    "Sitting",
    "SittingDown",
    "Smoking",
    "Waiting",
    "WalkDog",
    "Walking",
    "WalkTogether",
)
"""The 15 Human3.6M action classes, in label order."""
ACTION_ALIASES = {"TakingPhoto": "Photo", "WalkingDog": "WalkDog"}
"""Official alternative spellings (subject S1) and the class each belongs to."""


@dataclass(frozen=True)
class Human36MConfig:
    """Settings of a conversion (all recorded in the manifest)."""

    train_subjects: tuple[str, ...] = DEFAULT_TRAIN_SUBJECTS
    test_subjects: tuple[str, ...] = DEFAULT_TEST_SUBJECTS
    frame_step: int = 4
    size: int = 64
    joints: str = "17"
    cameras: tuple[str, ...] = ()  # empty: every camera
    crop_margin: float = 0.2
    crop: str = "track"
    smooth: int = 5
    max_frames: int | None = None

    def __post_init__(self) -> None:
        overlap = set(self.train_subjects) & set(self.test_subjects)
        if overlap:
            raise UsageError(f"subjects {sorted(overlap)} are in both the train and test split")
        if not self.train_subjects and not self.test_subjects:
            raise UsageError("no subjects: give --train-subjects and/or --test-subjects")
        if self.joints not in JOINT_SETS:
            raise UsageError(f"--joints must be one of {JOINT_SETS}, got {self.joints!r}")
        if self.crop not in ("track", "fixed"):
            raise UsageError(f"--crop must be 'track' or 'fixed', got {self.crop!r}")
        if self.frame_step < 1 or self.size < 8 or self.smooth < 1 or self.crop_margin < 0:
            raise UsageError(
                "need --frame-step >= 1, --size >= 8, smooth >= 1 and --crop-margin >= 0, got "
                f"{self.frame_step}, {self.size}, {self.smooth}, {self.crop_margin}"
            )


@dataclass(frozen=True)
class VideoEntry:
    """One video of the tree with its pose file, action class and split."""

    subject: str
    action: str
    action_raw: str
    camera: str
    video: Path
    poses: Path
    split: str
    out_name: str = field(compare=False, default="")


def action_class(action_raw: str) -> str | None:
    """``"Walking 1"`` -> ``"Walking"``; ``"TakingPhoto"`` -> ``"Photo"``; ``"_ALL 1"`` and
    unknown names -> ``None``."""
    base = re.sub(r"[\s_]*\d+$", "", action_raw.strip())
    if base.startswith("_ALL") or not base:
        return None
    base = ACTION_ALIASES.get(base, base)
    return base if base in ACTION_CLASSES else None


def list_videos(root: str | Path, config: Human36MConfig) -> list[VideoEntry]:
    """Every video to convert under ``root``, in sorted order.

    Raises:
        UsageError: ``root`` is missing.
        DataError: ``root`` holds none of the subjects, or a video has no pose file (the
            message names both paths).
    """
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"--root {root}: no such directory (expected S1/, S5/, ...)")
    entries: list[VideoEntry] = []
    found = 0
    subjects = [(s, "train") for s in config.train_subjects] + [
        (s, "test") for s in config.test_subjects
    ]
    missing = [s for s, _ in subjects if not (root / s / "Videos").is_dir()]
    if missing:
        warnings.warn(
            f"{root}: subjects {', '.join(missing)} not found (no <subject>/Videos); skipped",
            stacklevel=2,
        )
    for subject, split in subjects:
        videos_dir = root / subject / "Videos"
        if subject in missing:
            continue
        found += 1
        for video in sorted(videos_dir.glob("*.mp4")):
            action_raw, _, camera = video.stem.rpartition(".")
            if not action_raw or not camera:
                warnings.warn(f"{video}: not named <Action>.<camera>.mp4; skipped", stacklevel=2)
                continue
            if config.cameras and camera not in config.cameras:
                continue
            if action_raw.startswith("_ALL"):
                continue
            label = action_class(action_raw)
            if label is None:
                warnings.warn(f"{video}: unknown action {action_raw!r}; skipped", stacklevel=2)
                continue
            poses = root / subject / "MyPoseFeatures" / "D2_Positions" / f"{video.stem}.cdf"
            if not poses.is_file():
                raise DataError(f"{video}: its 2D pose file {poses} is missing")
            out_name = f"{subject}_{action_raw.replace(' ', '_')}.{camera}.npz"
            entries.append(
                VideoEntry(subject, label, action_raw, camera, video, poses, split, out_name)
            )
    if not found:
        wanted = ", ".join(config.train_subjects + config.test_subjects)
        raise DataError(f"--root {root}: none of the subjects {wanted} is there")
    return entries


def read_poses(path: str | Path) -> np.ndarray:
    """The 2D poses of a ``D2_Positions`` CDF file: float64 ``[frames, 32, 2]`` (u, v) pixels.

    Raises:
        RunError: cdflib is not installed (``pip install 'keypoint-wm[human36m]'``).
        DataError: unreadable file, no ``Pose`` variable, or a shape other than
            ``(1, frames, 64)``; the message names the file.
    """
    try:
        import cdflib
    except ImportError as error:
        raise RunError(
            "reading Human3.6M poses needs cdflib: pip install 'keypoint-wm[human36m]'"
        ) from error
    path = Path(path)
    try:
        cdf = cdflib.CDF(str(path))
        names = list(cdf.cdf_info().zVariables) + list(cdf.cdf_info().rVariables)
        if "Pose" not in names:
            raise DataError(f"{path}: no variable 'Pose' (found {names})")
        pose = np.asarray(cdf.varget("Pose"), dtype=np.float64)
    except (ValueError, OSError, KeyError, IndexError) as error:
        raise DataError(f"{path}: cannot read CDF pose file ({error})") from error
    if pose.ndim == 2:
        pose = pose[None]
    if pose.ndim != 3 or pose.shape[0] != 1 or pose.shape[2] != 64 or pose.shape[1] < 1:
        raise DataError(f"{path}: 'Pose' must have shape (1, frames, 64), found {list(pose.shape)}")
    if not np.isfinite(pose).all():
        raise DataError(f"{path}: 'Pose' has non-finite values")
    return pose[0].reshape(-1, 32, 2)


def crop_boxes(joints: np.ndarray, margin: float, mode: str, smooth: int) -> np.ndarray:
    """Square crops around the person: ``joints`` ``[T, J, 2]`` (u, v) -> ``[T, 3]``
    (centre u, centre v, side) in video pixels (see the module docstring)."""
    low, high = joints.min(axis=1), joints.max(axis=1)  # [T, 2]
    if mode == "fixed":
        low_all, high_all = low.min(axis=0), high.max(axis=0)
        side = float((high_all - low_all).max()) * (1 + 2 * margin)
        centre = np.broadcast_to((low_all + high_all) / 2, low.shape)
    else:
        side = float((high - low).max()) * (1 + 2 * margin)
        centre = (low + high) / 2
        if smooth > 1 and len(centre) > 1:
            pad = smooth // 2
            padded = np.pad(centre, ((pad, smooth - 1 - pad), (0, 0)), mode="edge")
            kernel = np.ones(smooth) / smooth
            centre = np.stack([np.convolve(padded[:, i], kernel, "valid") for i in (0, 1)], 1)
    side = max(side, 8.0)
    return np.concatenate([centre, np.full((len(centre), 1), side)], axis=1)


def crop_frame(frame: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """Cut the square ``box`` (centre u, v, side; video pixels) out of ``frame`` uint8
    ``[H, W, 3]`` (black outside it) and area-resample it to uint8 ``[size, size, 3]``."""
    from PIL import Image

    cu, cv, side = (float(v) for v in box)
    left, top = cu + 0.5 - side / 2, cv + 0.5 - side / 2  # continuous (PIL) coordinates
    x0, y0 = int(np.floor(left)), int(np.floor(top))
    x1, y1 = int(np.ceil(left + side)), int(np.ceil(top + side))
    region = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
    height, width = frame.shape[:2]
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if sx1 > sx0 and sy1 > sy0:
        region[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = frame[sy0:sy1, sx0:sx1]
    image = Image.fromarray(region).resize(
        (size, size),
        Image.Resampling.BOX,
        box=(left - x0, top - y0, left - x0 + side, top - y0 + side),
    )
    return np.asarray(image, dtype=np.uint8)


def joints_to_keypoints(joints: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Video pixels ``[T, J, 2]`` -> the keypoint frame of each frame's crop ``[T, J, 2]``."""
    centre, side = boxes[:, None, :2], boxes[:, None, 2:]
    pixels = (joints + 0.5 - (centre + 0.5 - side / 2)) * size / side - 0.5
    return pixel_to_keypoint(pixels, size)


def _read_video(path: Path, step: int, limit: int | None) -> list[np.ndarray]:
    import imageio.v2 as imageio

    frames = []
    try:
        reader = imageio.get_reader(str(path), format="FFMPEG")
        with reader:
            for i, frame in enumerate(reader.iter_data()):
                if i % step == 0:
                    frames.append(np.asarray(frame)[..., :3])
                    if limit is not None and len(frames) >= limit:
                        break
    except Exception as error:  # imageio/ffmpeg raise many kinds; name the file either way
        raise DataError(f"{path}: cannot read video ({type(error).__name__}: {error})") from error
    if not frames:
        raise DataError(f"{path}: the video holds no frames")
    return frames


def convert_video(entry: VideoEntry, config: Human36MConfig) -> Episode:
    """One video + pose file -> one episode (see the module docstring)."""
    poses = read_poses(entry.poses)
    indices, joint_names = joint_selection(config.joints, 32)
    kept_poses = poses[:: config.frame_step]
    limit = config.max_frames
    frames = _read_video(entry.video, config.frame_step, limit)
    count = min(len(frames), len(kept_poses))
    if limit is not None:
        count = min(count, limit)
    if abs(len(frames) - len(kept_poses)) > 2 and limit is None:
        warnings.warn(
            f"{entry.video}: {len(frames)} kept video frames but {len(kept_poses)} poses in "
            f"{entry.poses}; using the first {count}",
            stacklevel=2,
        )
    kept_poses = kept_poses[:count]
    boxes = crop_boxes(
        kept_poses[:, list(H36M_32_TO_17)], config.crop_margin, config.crop, config.smooth
    )
    images = np.stack([crop_frame(frames[i], boxes[i], config.size) for i in range(count)])
    positions = joints_to_keypoints(kept_poses[:, indices], boxes, config.size)
    return Episode(
        image=images,
        action=np.zeros((count, 0), np.float32),
        reward=np.zeros(count, np.float32),
        true_object_pos=positions.astype(np.float32),
        metadata={
            "dataset": "human36m",
            "subject": entry.subject,
            "split": entry.split,
            "action": entry.action,
            "action_index": ACTION_CLASSES.index(entry.action),
            "action_raw": entry.action_raw,
            "camera": entry.camera,
            "source_video": f"{entry.subject}/Videos/{entry.video.name}",
            "source_poses": f"{entry.subject}/MyPoseFeatures/D2_Positions/{entry.poses.name}",
            "fps": VIDEO_FPS / config.frame_step,
            "joint_names": joint_names,
            "crop_side_px": float(boxes[0, 2]),
        },
    )


def convert_human36m(
    root: str | Path,
    out_dir: str | Path,
    config: Human36MConfig | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Convert a Human3.6M tree into episode files (resumable, through
    :class:`~keypoint_wm.data.writer.DatasetWriter`; see the module docstring).

    Returns:
        A summary: ``out_dir``, ``videos``, ``written``, ``kept``, ``seconds``, ``splits``
        (episodes per split), ``actions`` (episodes per class), ``manifest``.
    """
    config = config or Human36MConfig()
    entries = list_videos(root, config)
    if not entries:
        raise DataError(f"--root {root}: no videos to convert")
    settings = {"dataset": "human36m", **asdict(config), "action_classes": list(ACTION_CLASSES)}
    settings = {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}
    writer = DatasetWriter(out_dir, settings, label="Human3.6M")
    writer.start(
        lambda: {
            "num_episodes": sum((writer.out / e.out_name).is_file() for e in entries),
            "videos": len(entries),
            "splits": {e.out_name: e.split for e in entries},
        }
    )
    from tqdm.auto import tqdm

    for entry in tqdm(entries, desc="human36m", unit="video", disable=not progress):
        if not writer.finished(entry.out_name):
            writer.save(entry.out_name, convert_video(entry, config))
    writer.finish()
    splits: dict[str, int] = {}
    actions: dict[str, int] = {}
    for e in entries:
        splits[e.split] = splits.get(e.split, 0) + 1
        actions[e.action] = actions.get(e.action, 0) + 1
    return {
        "out_dir": str(writer.out),
        "videos": len(entries),
        **writer.tally(),
        "splits": splits,
        "actions": actions,
        "manifest": str(writer.manifest_path),
    }
