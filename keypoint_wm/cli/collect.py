"""``keypoint-wm collect``: random-action DeepMind Control Suite rollouts as episode files.

The parser reads :class:`~keypoint_wm.collect.config.CollectConfig`'s defaults, which import
neither gymnasium nor dm_control; the collector and the environments load when the command
runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import Any

from keypoint_wm.cli.common import add_quiet, positive_int
from keypoint_wm.errors import RunError


def _defaults() -> dict[str, Any]:
    """``CollectConfig``'s plain defaults (``tasks`` and ``out`` come from factories)."""
    from keypoint_wm.collect.config import CollectConfig, default_data_dir

    values = {
        f.name: f.default
        for f in dataclasses.fields(CollectConfig)
        if f.default is not dataclasses.MISSING
    }
    values["out"] = default_data_dir()
    return values


def run_collect(args: argparse.Namespace) -> int:
    """Collect the episodes of ``--shard`` that are not on disk yet; print a summary."""
    from keypoint_wm.collect.config import CollectConfig, Shard, resolve_tasks
    from keypoint_wm.collect.runner import collect_dataset
    from keypoint_wm.envs import PAPER_TASKS, TASK_NAMES, RenderBackendError

    config = CollectConfig(
        tasks=resolve_tasks(args.domains, TASK_NAMES, PAPER_TASKS),
        episodes=args.episodes,
        steps=args.steps,
        action_repeat=args.action_repeat,
        size=args.size,
        camera_id=args.camera,
        seed=args.seed,
        out=Path(args.out),
    )
    shard = Shard.parse(args.shard)
    print(
        f"collecting {', '.join(config.tasks)}: {config.episodes} episodes x "
        f"{config.steps + 1} frames per task, {config.size}x{config.size}, action repeat "
        f"{config.action_repeat}, seed {config.seed}, shard {shard}, {args.workers} worker(s) "
        f"-> {config.out}"
    )
    try:
        summary = collect_dataset(config, shard, workers=args.workers, progress=not args.quiet)
    except RenderBackendError as error:  # no OpenGL context: the message says how to fix it
        raise RunError(str(error)) from None
    print(summary.describe())
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``keypoint-wm collect``."""
    defaults = _defaults()
    p = commands.add_parser(
        "collect",
        help="gather random-action DeepMind Control Suite rollouts",
        description="Collect uniform-random-action rollouts of DeepMind Control Suite tasks "
        "as one .npz per episode (resumable: re-run the same command to finish a killed run).",
    )
    p.add_argument(
        "--domains",
        default="all",
        help="'all' (the paper's six tasks) or comma-separated tasks/domains, "
        "e.g. cheetah-run,walker-walk (default: all)",
    )
    p.add_argument(
        "--episodes",
        type=positive_int("--episodes"),
        default=defaults["episodes"],
        help=f"episodes per task (default {defaults['episodes']})",
    )
    p.add_argument(
        "--steps",
        type=positive_int("--steps"),
        default=defaults["steps"],
        help=f"agent steps per episode; a file holds steps + 1 frames "
        f"(default {defaults['steps']})",
    )
    p.add_argument(
        "--action-repeat",
        type=positive_int("--action-repeat"),
        default=defaults["action_repeat"],
        help=f"physics steps per agent step, rewards summed (default {defaults['action_repeat']})",
    )
    p.add_argument(
        "--size",
        type=positive_int("--size"),
        default=defaults["size"],
        help=f"image side in pixels (default {defaults['size']})",
    )
    p.add_argument(
        "--camera",
        type=int,
        default=defaults["camera_id"],
        help=f"camera id (default {defaults['camera_id']})",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=defaults["seed"],
        help=f"dataset seed (default {defaults['seed']})",
    )
    p.add_argument(
        "--workers",
        type=positive_int("--workers"),
        default=os.cpu_count() or 1,
        help="worker processes (default: number of cores)",
    )
    p.add_argument(
        "--out",
        default=str(defaults["out"]),
        help=f"output directory (default {defaults['out']}; $KEYPOINT_WM_DATA overrides)",
    )
    p.add_argument(
        "--shard",
        default="0/1",
        help="collect part i of n disjoint parts, e.g. 0/4 (default 0/1 = everything)",
    )
    add_quiet(p)
    p.set_defaults(handler=run_collect)
