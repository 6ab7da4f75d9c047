"""``keypoint-wm rewards train | evaluate``: reward heads per task on a run's hidden states.

Per task, a small GRU head predicts rewards from the world model's hidden states along
observed windows of the data's test split (paper Fig. 8). The flags are checked (run and data
directories, ``--json`` path, device) before a model is loaded; the model runs on the one
device rule (``--device``) like every other command.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from keypoint_wm.cli.common import (
    add_device,
    add_json,
    add_precision,
    add_quiet,
    add_seed,
    check_json_path,
    comma_list,
    device_of,
    existing_dir,
    existing_run,
    fraction,
    positive_int,
    write_json,
)
from keypoint_wm.reward_inputs import INPUTS, inputs_help


def _train_config(args: argparse.Namespace) -> Any:
    from keypoint_wm.rewards.fit import RewardTrainConfig

    return RewardTrainConfig(
        window=args.window,
        stride=args.stride,
        max_windows=args.max_windows,
        split=args.split,
        steps=args.steps,
        batch_size=args.batch_size,
        validation_fraction=args.validation_fraction,
        seed=args.seed,
        inputs=args.inputs,
    )


def _held_out(args: argparse.Namespace) -> tuple[Path, ...]:
    return tuple(existing_dir(p, flag="--held-out-data") for p in args.held_out_data or ())


def run_train(args: argparse.Namespace) -> int:
    """Train one reward head per task; print each head's held-out score."""
    import keypoint_wm
    from keypoint_wm.rewards.train import train_reward_heads

    run = existing_run(args.run)
    existing_dir(args.data)
    device = device_of(args)
    config = _train_config(args)
    model = keypoint_wm.load(run, device=device, precision=args.precision)
    summary = train_reward_heads(
        model,
        args.data,
        args.out,
        config,
        comma_list(args.tasks),
        progress=not args.quiet,
        held_out=_held_out(args),
    )
    print(f"reward heads in {summary.out} (TensorBoard: {summary.out}/tensorboard)")
    if summary.kept:
        print(
            f"kept the heads of {', '.join(summary.kept)}: an earlier call trained them with "
            "the same settings on the same world model and data"
        )
    for task, step in summary.resumed.items():
        print(f"continued the head of {task} from its checkpoint at step {step}")
    for task, facts in summary.tasks.items():
        score = facts.test_normalized_mse
        text = "n/a (constant rewards)" if score is None else f"{score:.3f}"
        print(
            f"  {task:<20} {facts.train_windows:>6} train / {facts.test_windows:>5} test "
            f"windows   held-out normalized MSE {text} (weights of step {facts.best_step}, "
            f"inputs {facts.inputs})"
        )
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """Normalised reward MSE per task and time step, runs side by side; table, plot, JSON."""
    from keypoint_wm.rewards.evaluate import evaluate_reward_prediction
    from keypoint_wm.rewards.report import format_reward_table, plot_reward_prediction
    from keypoint_wm.run_groups import seed_runs

    for run in args.run:
        seed_runs(run)  # a run, or a folder of seed_<s>/ runs
    inputs = args.inputs  # None, one for every run, or one per run (checked by the API)
    args.inputs = "hidden" if inputs is None else inputs[0]  # the one-for-all setting
    existing_dir(args.data)
    check_json_path(args.json)
    check_json_path(args.plot, flag="--plot")
    device = device_of(args)
    result = evaluate_reward_prediction(
        args.run,
        args.data,
        labels=args.label,
        heads=args.heads,
        tasks=comma_list(args.tasks),
        train_missing=args.train_missing,
        train_config=_train_config(args),
        inputs=None if inputs is None or len(inputs) == 1 else inputs,
        device=device,
        precision=args.precision,
        progress=not args.quiet,
        held_out=_held_out(args),
    )
    print(format_reward_table(result))
    plot = Path(args.plot) if args.plot else Path(args.run[0]) / "rewards" / "rewards.png"
    print(f"wrote {plot_reward_prediction(result, plot)}")
    write_json(args.json, result.to_json())
    return 0


def _add_common(p: argparse.ArgumentParser, evaluate: bool = False) -> None:
    p.add_argument("--data", required=True, help="the dataset the run was trained on")
    p.add_argument(
        "--held-out-data",
        action="append",
        metavar="DIR",
        help="a dataset the world model never saw (collected apart: another --seed, another "
        "folder), every episode of which joins the test split's as head data (repeatable; "
        "refused when it is the run's own data)",
    )
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
        default="episodes",
        help="the head's 80/20 train/test split: of whole episodes (default), or of the "
        "windows (one reading of the paper; windows of one episode share frames, so test "
        "windows leak into training)",
    )
    p.add_argument(
        "--steps",
        type=positive_int("--steps"),
        default=2000,
        help="optimiser steps per head (2000)",
    )
    p.add_argument(
        "--batch-size", type=positive_int("--batch-size"), default=32, help="windows per step (32)"
    )
    p.add_argument(
        "--validation-fraction",
        type=fraction("--validation-fraction", zero_ok=True),
        default=0.2,
        help="share of a head's training windows (whole episodes) that picks the step whose "
        "weights it keeps; 0 keeps the last step (default 0.2)",
    )
    p.add_argument(
        "--inputs",
        choices=INPUTS,
        default=None if evaluate else INPUTS[0],
        action="append" if evaluate else "store",
        help=f"what a head reads for frame t's reward (default {INPUTS[0]}): {inputs_help()}"
        + (
            ""
            if not evaluate
            else "; for heads trained by --train-missing: once for every run, or once per "
            "--run (e.g. hidden+keypoints for Struct-VRNN beside hidden+features for CNN-VRNN)"
        ),
    )
    add_seed(p, what="window split, init and noise")
    add_device(p)
    add_precision(p)
    add_quiet(p, "no progress bars")


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``keypoint-wm rewards`` with its ``train`` and ``evaluate`` sub-commands."""
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
    t.set_defaults(handler=run_train)
    e = sub.add_parser(
        "evaluate",
        help="normalized reward MSE per task and time step, runs side by side",
    )
    e.add_argument(
        "--run",
        required=True,
        action="append",
        help="run directory (repeat to compare runs, e.g. Struct-VRNN and CNN-VRNN); a folder "
        "of seed_<s>/ runs (`keypoint-wm train --seeds N`) is one variant with all of its "
        "seeds, each with its heads in seed_<s>/rewards",
    )
    e.add_argument(
        "--label",
        action="append",
        help="a name per --run for the table and plot; runs sharing a label are the seeds of "
        "one variant (mean and 95%% CI over them). Default: each --run its own variant",
    )
    e.add_argument("--heads", action="append", help="head directory per --run (RUN/rewards)")
    e.add_argument(
        "--train-missing", action="store_true", help="train heads a run lacks instead of failing"
    )
    add_json(e)
    e.add_argument("--plot", help="PNG like paper Fig. 8 (default RUN/rewards/rewards.png)")
    _add_common(e, evaluate=True)
    e.set_defaults(handler=run_evaluate)
