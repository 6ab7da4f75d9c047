"""``keypoint-wm evaluate state-reference``: how much of the state the frames can tell.

Registered under ``evaluate`` by :func:`register`; reads only the dataset (no model): the
state probe's velocity targets read off the true positions of the last frames
(:mod:`keypoint_wm.evaluation.state_reference`), the reference beside the probe's figures.
"""

from __future__ import annotations

import argparse

from keypoint_wm.cli.common import (
    add_json,
    add_quiet,
    add_seed,
    check_json_path,
    comma_list,
    fraction,
    positive_int,
    write_json,
)

DESCRIPTION = """\
For the episodes, splits and frames the state probe reads, predicts the velocity part of the
physics state at frame t from the TRUE position-like parts at frames t, t-1, ..., t-LAGS and
the actions between, with the probe's ridge regression (linear) and with a small MLP, fitted
on training episodes, chosen on validation episodes, scored on test episodes. What no model
of the frames is expected to beat by much: a probe far below it is the model's gap, one near
it the data's limit."""


def run_state_reference(args: argparse.Namespace) -> int:
    """Velocity R^2 from the true position history; table and JSON."""
    check_json_path(args.json)
    from keypoint_wm.evaluation.state_probe import StateProbeConfig
    from keypoint_wm.evaluation.state_reference import (
        evaluate_state_reference,
        format_state_reference,
    )

    config = StateProbeConfig(
        test_fraction=args.test_fraction,
        max_episodes=args.max_episodes,
        burn_in=args.burn_in,
        tasks=tuple(args.tasks) if args.tasks else None,
        untrained=False,
    )
    result = evaluate_state_reference(
        args.data,
        config,
        args.lags,
        args.validation_fraction,
        args.seed,
        progress=not args.quiet,
        mlp_steps=args.mlp_steps,
    ).to_json()
    print(format_state_reference(result))
    write_json(args.json, result)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``evaluate state-reference``."""
    s = sub.add_parser(
        "state-reference",
        help="velocities read off the true positions of the last frames: what the frames "
        "can tell, beside the state probe",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--data", required=True, help="dataset directory (episodes with 'state')")
    s.add_argument(
        "--tasks", type=comma_list, help="comma-separated tasks (default: every task with a state)"
    )
    s.add_argument(
        "--lags",
        type=positive_int("--lags"),
        default=2,
        help="earlier frames read beside frame t (default 2: frames t, t-1, t-2)",
    )
    s.add_argument(
        "--max-episodes",
        type=positive_int("--max-episodes"),
        default=40,
        help="at most this many episodes per task and split (default 40, as the probe)",
    )
    s.add_argument(
        "--burn-in",
        type=int,
        default=1,
        help="frames left out at each episode's start (default 1, as the probe)",
    )
    s.add_argument(
        "--validation-fraction",
        type=fraction("--validation-fraction"),
        default=0.1,
        help="the probed runs' train.validation_fraction (default 0.1, every preset's), so "
        "that the splits are the probe's",
    )
    s.add_argument(
        "--test-fraction",
        type=fraction("--test-fraction"),
        default=0.2,
        help="held-out fraction for data without a split of its own (default 0.2)",
    )
    s.add_argument(
        "--mlp-steps",
        type=positive_int("--mlp-steps"),
        default=4000,
        help="training steps of the MLP reader (batches of 256; default 4000), the best on "
        "validation kept",
    )
    add_seed(s)
    add_json(s)
    add_quiet(s)
    s.set_defaults(handler=run_state_reference)
