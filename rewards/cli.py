"""``keypoint-wm rewards train|evaluate``: reward heads per task on a run's hidden states.

Registered by :func:`add_rewards_command` from ``keypoint_wm.cli``; every import of the
heavy parts happens when a command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from keypoint_wm.cli_args import positive_int

__all__ = ["add_rewards_command"]


def _tasks(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _train_config(args: argparse.Namespace) -> Any:
    from keypoint_wm.rewards.train import RewardTrainConfig

    return RewardTrainConfig(
        window=args.window,
        stride=args.stride,
        max_windows=args.max_windows,
        split=args.split,
        steps=args.steps,
        batch_size=args.batch_size,
        validation_fraction=args.validation_fraction,
        seed=args.seed,
    )


def _check_paths(run: str, data: str) -> None:
    if not (Path(run) / "config.json").exists():
        raise ValueError(f"--run {run} is not a run directory written by `keypoint-wm train`")
    if not Path(data).is_dir():
        raise ValueError(f"--data {data} is not a directory")


def _cmd_train(args: argparse.Namespace) -> int:
    import keypoint_wm
    from keypoint_wm.rewards.train import train_reward_heads

    _check_paths(args.run, args.data)
    config = _train_config(args)
    model = keypoint_wm.load(args.run, device=args.device or "cpu", precision="auto")
    summary = train_reward_heads(
        model, args.data, args.out, config, _tasks(args.tasks), progress=not args.quiet
    )
    print(f"reward heads in {summary['out']} (TensorBoard: {summary['out']}/tensorboard)")
    for task, facts in summary["tasks"].items():
        score = facts["test_normalized_mse"]
        text = "n/a (constant rewards)" if score is None else f"{score:.3f}"
        print(
            f"  {task:<20} {facts['train_windows']:>6} train / {facts['test_windows']:>5} test "
            f"windows   held-out normalized MSE {text} (weights of step {facts['best_step']})"
        )
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from keypoint_wm.cli_args import write_json
    from keypoint_wm.rewards.evaluate import (
        evaluate_reward_prediction,
        format_reward_table,
        plot_reward_prediction,
    )

    for run in args.run:
        _check_paths(run, args.data)
    result = evaluate_reward_prediction(
        args.run,
        args.data,
        labels=args.label,
        heads=args.heads,
        tasks=_tasks(args.tasks),
        train_missing=args.train_missing,
        train_config=_train_config(args),
        device=args.device,
        progress=not args.quiet,
    )
    print(format_reward_table(result))
    plot = Path(args.plot) if args.plot else Path(args.run[0]) / "rewards" / "rewards.png"
    print(f"wrote {plot_reward_prediction(result, plot)}")
    write_json(args.json, result)
    return 0


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="the dataset the run was trained on")
    p.add_argument("--tasks", help="comma-separated tasks (default: every task of the data)")
    p.add_argument(
        "--window", type=positive_int("--window"), default=20, help="frames per sequence (20)"
    )
    p.add_argument(
        "--stride", type=positive_int("--stride"), default=10, help="frames between windows (10)"
    )
    p.add_argument(
        "--max-windows",
        type=positive_int("--max-windows"),
        default=10_000,
        help="windows per task at most (default 10000, as in the paper)",
    )
    p.add_argument(
        "--split",
        choices=("windows", "episodes"),
        default="windows",
        help="the head's 80/20 train/test split: of the windows, as in the paper (default), "
        "or of whole episodes (stricter: windows of one episode share frames)",
    )
    p.add_argument(
        "--steps",
        type=positive_int("--steps"),
        default=2000,
        help="optimiser steps per head (2000)",
    )
    p.add_argument("--batch-size", type=positive_int("--batch-size"), default=32)
    p.add_argument(
        "--validation-fraction",
        type=float,
        default=0.2,
        help="share of a head's training windows (whole episodes) that picks the step whose "
        "weights it keeps; 0 keeps the last step (default 0.2)",
    )
    p.add_argument("--seed", type=int, default=0, help="window split, init and noise (0)")
    p.add_argument("--device", help="cpu, cuda, ... (default cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_rewards_command(commands: argparse._SubParsersAction) -> None:
    """Add ``rewards`` with its ``train`` and ``evaluate`` sub-commands."""
    p = commands.add_parser(
        "rewards",
        help="reward-prediction heads on a run's hidden states (paper Fig. 8)",
        description="Per task, a small GRU head predicts rewards from the world model's "
        "hidden states along observed length-20 sequences of the data's test split "
        "(80% of the windows train it, 20% test it).",
    )
    sub = p.add_subparsers(dest="rewards_command", required=True, metavar="{train,evaluate}")
    t = sub.add_parser("train", help="train one reward head per task (RUN/rewards/<task>)")
    t.add_argument("--run", required=True, help="run directory written by `keypoint-wm train`")
    t.add_argument("--out", help="where the heads go (default RUN/rewards)")
    _add_common(t)
    t.set_defaults(handler=_cmd_train)
    e = sub.add_parser(
        "evaluate",
        help="normalized reward MSE per task and time step, runs side by side",
    )
    e.add_argument(
        "--run",
        required=True,
        action="append",
        help="run directory (repeat to compare runs, e.g. Struct-VRNN and CNN-VRNN)",
    )
    e.add_argument("--label", action="append", help="a name per --run for the table and plot")
    e.add_argument("--heads", action="append", help="head directory per --run (RUN/rewards)")
    e.add_argument(
        "--train-missing", action="store_true", help="train heads a run lacks instead of failing"
    )
    e.add_argument("--json", help="write the figures to this JSON file")
    e.add_argument("--plot", help="PNG like paper Fig. 8 (default RUN/rewards/rewards.png)")
    _add_common(e)
    e.set_defaults(handler=_cmd_evaluate)
