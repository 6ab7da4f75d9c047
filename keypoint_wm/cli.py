"""The ``keypoint-wm`` command line. The one module that sits on top of every layer.

Each command imports what it needs when it runs, so ``keypoint-wm --help`` stays fast and
never touches dm_control or a GL context.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from keypoint_wm.cli_args import positive_int, write_json


class UsageError(Exception):
    """A bad flag value; printed without a traceback, exit code 2."""


# ----------------------------------------------------------------------------- collect
def _cmd_collect(args: argparse.Namespace) -> int:
    from keypoint_wm.collect.config import CollectConfig, Shard, resolve_tasks
    from keypoint_wm.collect.runner import collect_dataset
    from keypoint_wm.envs import PAPER_TASKS, TASK_NAMES

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
    summary = collect_dataset(config, shard, workers=args.workers, progress=not args.quiet)
    print(summary.describe())
    return 0


def _add_collect(commands: argparse._SubParsersAction) -> None:
    from keypoint_wm.collect.config import CollectConfig

    defaults = CollectConfig()
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
        default=defaults.episodes,
        help=f"episodes per task (default {defaults.episodes})",
    )
    p.add_argument(
        "--steps",
        type=positive_int("--steps"),
        default=defaults.steps,
        help=f"agent steps per episode; a file holds steps + 1 frames (default {defaults.steps})",
    )
    p.add_argument(
        "--action-repeat",
        type=positive_int("--action-repeat"),
        default=defaults.action_repeat,
        help=f"physics steps per agent step, rewards summed (default {defaults.action_repeat})",
    )
    p.add_argument(
        "--size",
        type=positive_int("--size"),
        default=defaults.size,
        help=f"image side in pixels (default {defaults.size})",
    )
    p.add_argument("--camera", type=int, default=defaults.camera_id, help="camera id (default 0)")
    p.add_argument("--seed", type=int, default=defaults.seed, help="dataset seed (default 0)")
    p.add_argument(
        "--workers",
        type=positive_int("--workers"),
        default=os.cpu_count() or 1,
        help="worker processes (default: number of cores)",
    )
    p.add_argument(
        "--out",
        default=str(defaults.out),
        help=f"output directory (default {defaults.out}; $KEYPOINT_WM_DATA overrides)",
    )
    p.add_argument(
        "--shard",
        default="0/1",
        help="collect part i of n disjoint parts, e.g. 0/4 (default 0/1 = everything)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_cmd_collect)


# ----------------------------------------------------------------------------- data
def _cmd_data_info(args: argparse.Namespace) -> int:
    from keypoint_wm.data.inspect import dataset_info, format_info

    info = dataset_info(args.dir)
    print(format_info(info))
    write_json(args.json, info)
    return 0


def _cmd_data_check(args: argparse.Namespace) -> int:
    from keypoint_wm.data.inspect import check_dataset

    count, bad = check_dataset(args.dir)
    for path, problems in bad.items():
        print(f"BAD {path}: {'; '.join(problems)}")
    if count == 0:
        print(f"{args.dir}: no episode files found")
        return 1
    print(f"{args.dir}: {count - len(bad)} of {count} episode files valid")
    return 1 if bad else 0


def _cmd_data_basketball(args: argparse.Namespace) -> int:
    from keypoint_wm.data.basketball import write_basketball_dataset

    sequences = args.sequences
    if sequences is None and not args.source:
        sequences = 1000
    summary = write_basketball_dataset(
        Path(args.out),
        num_sequences=sequences,
        seed=args.seed,
        source=args.source,
        source_key=args.source_key,
        size=args.size,
        draw_defence=args.draw_defence,
        progress=not args.quiet,
    )
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _add_data(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("data", help="inspect, validate or generate datasets")
    sub = p.add_subparsers(
        dest="data_command",
        required=True,
        metavar="{info,check,basketball,figures,shapes,human36m}",
    )
    info = sub.add_parser("info", help="print what a dataset holds")
    info.add_argument("dir", help="dataset directory")
    info.add_argument("--json", help="also write the figures to this JSON file")
    info.set_defaults(handler=_cmd_data_info)
    check = sub.add_parser(
        "check", help="validate every episode file (read-only); exit 1 if any is bad"
    )
    check.add_argument("dir", help="dataset directory")
    check.set_defaults(handler=_cmd_data_check)
    bb = sub.add_parser("basketball", help="write the built-in Basketball dataset")
    bb.add_argument("--out", required=True, help="output directory")
    bb.add_argument(
        "--sequences",
        type=positive_int("--sequences"),
        default=None,
        help="number of sequences (default 1000; with --source: all of the file)",
    )
    bb.add_argument("--seed", type=int, default=0)
    bb.add_argument("--source", help="real trajectories: .npy [N, 50, 22] or .npz holding one")
    bb.add_argument("--source-key", help="array name inside a --source .npz")
    bb.add_argument("--size", type=positive_int("--size"), default=64)
    bb.add_argument("--draw-defence", action="store_true", help="also draw the five defenders")
    bb.add_argument("--quiet", action="store_true")
    bb.set_defaults(handler=_cmd_data_basketball)
    from keypoint_wm.data.commands import add_data_commands

    add_data_commands(sub)


# ----------------------------------------------------------------------------- bench
def _cmd_bench_collect(args: argparse.Namespace) -> int:
    from keypoint_wm.collect.benchmark import format_results, run_collect_benchmark

    results = run_collect_benchmark(tasks=args.tasks.split(","), frames=args.frames)
    print(format_results(results))
    write_json(args.json, results)
    return 0


def _cmd_bench_train(args: argparse.Namespace) -> int:
    from keypoint_wm.benchmark import format_train_benchmark, run_train_benchmark

    result = run_train_benchmark(
        preset=args.preset, batch=args.batch, steps=args.steps, warmup=args.warmup
    )
    print(format_train_benchmark(result))
    write_json(args.json, result)
    return 0


def _add_bench(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("bench", help="benchmarks that print figures and side-by-side ratios")
    sub = p.add_subparsers(dest="bench_command", required=True, metavar="{collect,train,wrapper}")
    c = sub.add_parser(
        "collect",
        help="frames/s of a plain dm_control loop vs our collector with 1 and 2 workers",
    )
    c.add_argument(
        "--tasks",
        default="cheetah-run,walker-walk",
        help="comma-separated tasks to measure (default cheetah-run,walker-walk)",
    )
    c.add_argument(
        "--frames",
        type=positive_int("--frames"),
        default=2400,
        help="frames per measurement (default 2400)",
    )
    c.add_argument("--json", help="write the figures and ratios to this JSON file")
    c.set_defaults(handler=_cmd_bench_collect)
    t = sub.add_parser(
        "train",
        help="training-step time at the paper's DMCS size: our fast path vs fp32 eager",
    )
    t.add_argument("--preset", default="dmcs", help="model size to time (default dmcs)")
    t.add_argument("--batch", type=positive_int("--batch"), help="batch size (default: preset's)")
    t.add_argument(
        "--steps",
        type=positive_int("--steps"),
        default=3,
        help="timed steps per configuration (median reported; default 3)",
    )
    t.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    t.add_argument("--json", help="write the figures and ratios to this JSON file")
    t.set_defaults(handler=_cmd_bench_train)
    from keypoint_wm.envs.benchmark import add_wrapper_bench

    add_wrapper_bench(sub)


# ----------------------------------------------------------------------------- train
def _cmd_train(args: argparse.Namespace) -> int:
    from keypoint_wm.collect.config import default_data_dir
    from keypoint_wm.config import load_config_file, parse_set_arguments
    from keypoint_wm.presets import get_preset
    from keypoint_wm.train import NonFiniteLossError, train

    preset = get_preset(args.preset)
    overrides: dict[str, Any] = {}
    if args.config:
        overrides.update(load_config_file(args.config))
    overrides.update(parse_set_arguments(args.set or []))
    if args.steps is not None:
        overrides["train.steps"] = args.steps
    overrides["seed"] = args.seed
    config = preset.build().with_overrides(overrides)
    data = Path(args.data) if args.data else default_data_dir()
    if not data.exists():
        raise UsageError(
            f"--data {data} does not exist; collect it first with `keypoint-wm collect` "
            "or pass --data DIR"
        )
    try:
        result = train(
            config,
            data,
            Path(args.out),
            resume=args.resume,
            device_name=args.device,
            action_conditioned=preset.action_conditioned,
            progress=not args.quiet,
        )
    except NonFiniteLossError as error:
        print(f"keypoint-wm train: {error}", file=sys.stderr)
        return 1
    print(
        f"trained {args.out} to step {result['step']} ({result['precision']}); "
        f"losses: " + ", ".join(f"{k} {v:.4g}" for k, v in result["losses"].items())
    )
    return 0


def _add_train(commands: argparse._SubParsersAction) -> None:
    from keypoint_wm.presets import PRESETS

    p = commands.add_parser(
        "train",
        help="train a Struct-VRNN world model",
        description="Train a Struct-VRNN (or a baseline, by config) on a dataset of episode "
        "files. --steps is the TOTAL number of steps; --resume continues a killed or finished "
        "run from its last checkpoint.",
    )
    p.add_argument("--data", help="dataset directory (default: where `keypoint-wm collect` writes)")
    p.add_argument(
        "--preset",
        default="dmcs-cpu",
        choices=sorted(PRESETS),
        help="named configuration (default dmcs-cpu)",
    )
    p.add_argument("--out", required=True, help="run directory (checkpoints, TensorBoard, media)")
    p.add_argument("--steps", type=positive_int("--steps"), help="total training steps")
    p.add_argument("--config", help="YAML file with model:/train: sections applied on the preset")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override one setting, e.g. --set model.num_keypoints=16 (repeatable)",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA if available)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_cmd_train)


# ----------------------------------------------------------------------------- evaluate
def _cmd_evaluate_tracking(args: argparse.Namespace) -> int:
    import keypoint_wm
    from keypoint_wm.evaluation.tracking import evaluate_tracking, format_tracking, plot_tracking

    model = keypoint_wm.load(args.run, device=args.device, precision=args.precision)
    result = evaluate_tracking(
        model,
        args.data,
        test_fraction=args.test_fraction,
        samples=args.samples,
        max_windows=args.max_windows,
        best_per_object={"auto": None, "object": True, "all": False}[args.best_of],
    )
    result["run"] = str(args.run)
    result["data"] = str(args.data)
    print(format_tracking(result))
    plot = Path(args.plot) if args.plot else Path(args.run) / "tracking.png"
    print(f"wrote {plot_tracking(result, plot)}")
    write_json(args.json, result)
    return 0


def _add_evaluate(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "evaluate", help="evaluate trained runs (tracking, video, actions, diversity, compare)"
    )
    sub = p.add_subparsers(
        dest="evaluate_command",
        required=True,
        metavar="{tracking,video,actions,diversity,compare}",
    )
    t = sub.add_parser(
        "tracking",
        help="linear regression from keypoints to ground-truth object positions (paper Fig. 4)",
    )
    t.add_argument("--run", required=True, help="run directory written by `keypoint-wm train`")
    t.add_argument("--data", required=True, help="dataset with true_object_pos")
    t.add_argument(
        "--test-fraction",
        type=float,
        default=0.2,
        help="fraction of files held out, by path hash (default 0.2, as in training)",
    )
    t.add_argument(
        "--samples",
        type=positive_int("--samples"),
        default=50,
        help="sampled futures per sequence; the best one is scored (default 50)",
    )
    t.add_argument(
        "--best-of",
        choices=("auto", "object", "all"),
        default="auto",
        help="choose the best sample per object (Basketball, auto) or over all objects",
    )
    t.add_argument(
        "--max-windows",
        type=positive_int("--max-windows"),
        default=1000,
        help="at most this many windows per task and split (default 1000)",
    )
    t.add_argument("--json", help="write the figures to this JSON file")
    t.add_argument("--plot", help="PNG of error per time step (default RUN/tracking.png)")
    t.add_argument("--device", help="cpu, cuda, ... (default: CUDA if available)")
    t.add_argument(
        "--precision",
        choices=("auto", "fp32", "channels_last", "bf16"),
        default="auto",
        help="image-net precision for inference (default auto, as in training)",
    )
    t.set_defaults(handler=_cmd_evaluate_tracking)
    from keypoint_wm.evaluation.commands import add_evaluate_commands

    add_evaluate_commands(sub)


# ----------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    from keypoint_wm import __version__

    parser = argparse.ArgumentParser(
        prog="keypoint-wm",
        description="Object-structured keypoint world models (Struct-VRNN) for RL.",
    )
    parser.add_argument("--version", action="version", version=f"keypoint-wm {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_collect(commands)
    _add_data(commands)
    _add_train(commands)
    _add_evaluate(commands)
    from keypoint_wm.rewards.cli import add_rewards_command

    add_rewards_command(commands)
    _add_bench(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``keypoint-wm`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from keypoint_wm.collect.config import CollectError
    from keypoint_wm.data.episodes import EpisodeFormatError
    from keypoint_wm.errors import KeypointWMError

    try:
        return int(args.handler(args) or 0)
    except KeypointWMError as error:
        print(f"keypoint-wm {args.command}: error: {error}", file=sys.stderr)
        return error.exit_code
    except (UsageError, CollectError, ValueError) as error:
        if os.environ.get("KEYPOINT_WM_DEBUG"):
            raise
        print(f"keypoint-wm {args.command}: error: {error}", file=sys.stderr)
        return 2
    except (EpisodeFormatError, FileNotFoundError, NotADirectoryError) as error:
        print(f"keypoint-wm {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
