"""Read-only dataset inspection: ``keypoint-wm data info`` and ``keypoint-wm data check``.

Neither function ever modifies a file.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keypoint_wm.data.episodes import (
    TEMP_SUFFIX,
    EpisodeFileReport,
    EpisodeFormatError,
    inspect_episode_file,
    iter_episode_files,
    read_manifest,
)


def _episode_group(root: Path, path: Path, metadata: dict[str, Any]) -> str:
    if "task_name" in metadata:
        return str(metadata["task_name"])
    if "dataset" in metadata:
        return str(metadata["dataset"])
    parent = path.parent.relative_to(root)
    return str(parent) if str(parent) != "." else "(flat)"


@dataclass
class GroupInfo:
    """Statistics of one task (or one flat group) of a dataset."""

    episodes: int = 0
    frames: int = 0
    image_shapes: set = field(default_factory=set)
    action_sizes: set = field(default_factory=set)
    object_counts: set = field(default_factory=set)
    state_sizes: set = field(default_factory=set)
    reward_min: float = float("inf")
    reward_max: float = float("-inf")
    reward_sum: float = 0.0


def dataset_info(root: str | Path) -> dict[str, Any]:
    """Summarise a dataset: per task episodes, frames, shapes, state sizes and reward ranges.

    ``"state_size"`` lists the sizes D of the tasks' ``state`` arrays (empty: no state), and
    ``"state_keys"`` the slices of the first episode that has them.
    """
    root = Path(root)
    files = list(iter_episode_files(root))
    groups: dict[str, GroupInfo] = defaultdict(GroupInfo)
    state_keys: dict[str, Any] = {}
    total_bytes = 0
    for path in files:
        report = inspect_episode_file(path, read_images=False)
        if report.problems:
            raise EpisodeFormatError(
                f"{path}: {'; '.join(report.problems)} "
                f"(`keypoint-wm data check {root}` lists every bad file)"
            )
        name = _episode_group(root, path, report.metadata)
        group = groups[name]
        if report.state_size and name not in state_keys:
            state_keys[name] = report.metadata.get("state_keys")
        group.episodes += 1
        group.frames += report.frames
        group.image_shapes.add(report.image_shape)
        group.action_sizes.add(report.action_size)
        if report.num_objects:
            group.object_counts.add(report.num_objects)
        if report.state_size:
            group.state_sizes.add(report.state_size)
        reward = report.reward
        if reward is not None and reward.size > 1:
            group.reward_min = min(group.reward_min, float(reward[1:].min()))
            group.reward_max = max(group.reward_max, float(reward[1:].max()))
            group.reward_sum += float(reward[1:].sum())
        total_bytes += path.stat().st_size
    tasks = {}
    for name, g in sorted(groups.items()):
        has_reward = g.reward_min != float("inf")
        steps = g.frames - g.episodes
        tasks[name] = {
            "episodes": g.episodes,
            "frames": g.frames,
            "image_shape": [list(s) for s in sorted(g.image_shapes)],
            "action_size": sorted(g.action_sizes),
            "objects": sorted(g.object_counts),
            "state_size": sorted(g.state_sizes),
            "state_keys": state_keys.get(name),
            "reward_min": g.reward_min if has_reward else None,
            "reward_max": g.reward_max if has_reward else None,
            "reward_mean": g.reward_sum / steps if has_reward and steps else None,
        }
    return {
        "root": str(root),
        "manifest": read_manifest(root) is not None,
        "episodes": len(files),
        "frames": sum(t["frames"] for t in tasks.values()),
        "bytes": total_bytes,
        "unfinished_temp_files": sum(1 for _ in root.rglob(f".*{TEMP_SUFFIX}")),
        "tasks": tasks,
    }


def format_info(info: dict[str, Any]) -> str:
    """A human-readable table of :func:`dataset_info`."""
    lines = [
        f"{info['root']}: {info['episodes']} episodes, {info['frames']} frames, "
        f"{info['bytes'] / 1e6:.1f} MB" + ("" if info["manifest"] else " (no manifest)"),
        f"{'task':<22} {'episodes':>8} {'frames':>8}  {'image':<12} {'action':>6} "
        f"{'objects':>7} {'state':>5}  reward [min, max] mean",
    ]
    for name, t in info["tasks"].items():
        shapes = ",".join("x".join(map(str, s)) for s in t["image_shape"])
        actions = ",".join(map(str, t["action_size"]))
        objects = ",".join(map(str, t["objects"])) or "-"
        state = ",".join(map(str, t["state_size"])) or "-"
        reward = (
            f"[{t['reward_min']:.3f}, {t['reward_max']:.3f}] {t['reward_mean']:.3f}"
            if t["reward_min"] is not None
            else "-"
        )
        lines.append(
            f"{name:<22} {t['episodes']:>8} {t['frames']:>8}  {shapes:<12} {actions:>6} "
            f"{objects:>7} {state:>5}  {reward}"
        )
    if info["unfinished_temp_files"]:
        lines.append(
            f"{info['unfinished_temp_files']} unfinished temporary file(s) from killed writes "
            "(hidden, never counted; safe to delete when no collection is running)"
        )
    return "\n".join(lines)


def check_dataset(root: str | Path, workers: int = 2) -> tuple[int, dict[Path, list[str]]]:
    """Validate every episode file under ``root``; return (files checked, {bad file: problems}).

    Each file must pass :func:`~keypoint_wm.data.episodes.inspect_episode_file` (readable,
    only known ``.npy`` members, the expected dtypes, shapes, finite values, alignment
    ``action[0] = 0``, ``reward[0] = 0``, metadata a JSON object; the frames decompressed),
    the check training applies to every file too. Dataset-level: training needs one image
    shape, so files whose shape differs from the most common one are reported. Read-only.
    """
    files = list(iter_episode_files(Path(root)))
    with ThreadPoolExecutor(max(1, workers)) as pool:
        reports = list(pool.map(inspect_episode_file, files))
    bad = {r.path: list(r.problems) for r in reports if r.problems}
    for report, problem in mixed_image_shapes([r for r in reports if not r.problems]):
        bad.setdefault(report.path, []).append(problem)
    return len(files), {path: bad[path] for path in files if path in bad}


def mixed_image_shapes(reports: list[EpisodeFileReport]) -> list[tuple[EpisodeFileReport, str]]:
    """The valid files whose image shape is not the most common one, each with the reason."""
    counts = Counter(r.image_shape for r in reports)
    if len(counts) < 2:
        return []
    common, held = counts.most_common(1)[0]
    name = "x".join(map(str, common))
    return [
        (
            r,
            f"image shape {'x'.join(map(str, r.image_shape))} differs from the dataset's {name} "
            f"({held} files); training needs one image shape",
        )
        for r in reports
        if r.image_shape != common
    ]
