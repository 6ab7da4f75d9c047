"""``keypoint-wm collect``: random-action DeepMind Control Suite rollouts as episode files.

The parser reads :class:`~keypoint_wm.collect.config.CollectConfig`'s defaults, which import
neither gymnasium nor dm_control; the collector and the environments load when the command
runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
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


def _env_kwargs(text: str | None) -> dict[str, Any]:
    """``--env-kwargs`` parsed: a JSON object (``{}`` when not given)."""
    from keypoint_wm.collect.config import CollectError

    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise CollectError(f"--env-kwargs must be a JSON object, got {text!r} ({error})") from None
    if not isinstance(value, dict):
        raise CollectError(f"--env-kwargs must be a JSON object, got {text!r}")
    return value


def run_collect(args: argparse.Namespace) -> int:
    """Collect the episodes of ``--shard`` that are not on disk yet; print a summary."""
    from keypoint_wm.collect.config import CollectConfig, CollectError, Shard, resolve_tasks
    from keypoint_wm.collect.runner import collect_dataset
    from keypoint_wm.envs import PAPER_TASKS, TASK_NAMES, RenderBackendError

    envs = tuple(args.env or ())
    domains = args.domains if args.domains is not None else ("" if envs else "all")
    if args.env_kwargs is not None and not envs:
        raise CollectError("--env-kwargs applies to --env environments; give --env ID")
    if args.crop is not None and not envs:
        raise CollectError("--crop applies to the frames of --env environments; give --env ID")
    config = CollectConfig(
        tasks=resolve_tasks(domains, TASK_NAMES, PAPER_TASKS) if domains else (),
        envs=envs,
        env_kwargs=_env_kwargs(args.env_kwargs),
        crop=args.crop,
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
        f"collecting {', '.join(config.tasks + config.envs)}: {config.episodes} episodes x "
        f"{config.steps + 1} frames per task"
        + (" (--env episodes: up to)" if config.envs else "")
        + f", {config.size}x{config.size}, "
        + (f"action repeat {config.action_repeat}, " if config.tasks else "")
        + f"seed {config.seed}, shard {shard}, {args.workers} worker(s) -> {config.out}"
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
        help="gather random-action rollouts of DMCS tasks or any Gymnasium pixel environment",
        description="Collect uniform-random-action rollouts of DeepMind Control Suite tasks "
        "and/or Gymnasium environments (--env) as one .npz per episode (resumable: re-run "
        "the same command to finish a killed run).",
    )
    p.add_argument(
        "--domains",
        default=None,
        help="'all' (the paper's six tasks) or comma-separated tasks/domains, "
        "e.g. cheetah-run,walker-walk (default: all, or none when --env is given)",
    )
    p.add_argument(
        "--env",
        action="append",
        metavar="ID",
        help="a Gymnasium id (repeatable), made with render_mode='rgb_array'; 'module:ID' "
        "imports module first. Frames come from render(), area-resized to --size; Box "
        "actions uniform in [-1, 1] (mapped onto the bounds), Discrete stored one-hot; "
        "stepped once per action (--action-repeat is for DMCS tasks); episodes may end early",
    )
    p.add_argument(
        "--env-kwargs",
        default=None,
        metavar="JSON",
        help="keyword arguments for every --env, a JSON object, e.g. "
        '\'{"width": 64, "height": 64}\'',
    )
    p.add_argument(
        "--crop",
        default=None,
        help="crop --env frames before resizing: 'center' (the central square) or "
        "TOP,BOTTOM,LEFT,RIGHT pixels (letterbox bars)",
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
