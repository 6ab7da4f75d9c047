"""``keypoint-wm evaluate dream-fidelity``: does the world model's imagination rank policies
as the real task does?

Registered under ``evaluate`` by :func:`register`; the handler imports the Gymnasium side
(:mod:`keypoint_wm.envs.agents.dream_fidelity`: dm_control, Gymnasium) only when it runs.
The flags are checked (runs, output paths, policies, ``--env-kwargs``, device) before a
model is loaded.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from keypoint_wm.choices import DREAM_POLICIES as POLICY_NAMES
from keypoint_wm.choices import is_dream_policy
from keypoint_wm.cli.common import (
    RUN_HELP,
    add_device,
    add_env_kwargs,
    add_json,
    add_precision,
    add_quiet,
    add_seed,
    check_json_path,
    comma_list,
    device_of,
    env_kwargs_of,
    int_at_least,
    positive_int,
    seed_run_args,
    write_json,
)
from keypoint_wm.cli.evaluate_common import each_seed, write_plot
from keypoint_wm.errors import UsageError

DESCRIPTION = """\
Rolls scripted policies on the real task from its initial states (zero, plus: +1, minus: -1,
random, sine; on cartpole also pd, a PD controller on the true pole angle, and pd-flipped),
then lets the model read the same first observed frames and, with the same actions,
  filtered          filter the real frames that follow (the posterior, as the latent
                    wrapper does),
  imagined_mean     imagine them from its prior, following the prior's mean,
  imagined_sampled  imagine them sampling the prior (as a sampling DreamEnv does),
with the task's reward head predicting each frame's reward. Reports, per task and horizon,
each policy's return (real and the three columns), the Pearson correlation of each column
with the real returns over all rollouts, and the keypoint error of the imagined futures (mean
distance to the filtered keypoints, in keypoint units: the image spans [-1, 1]). A dream agent
can only learn what the imagined returns rank right.

A task may also be a Gymnasium id the run's data was collected from (collect --env), as for
`evaluate agents`: made with the data's --env-kwargs (updated by --env-kwargs), its frames
rendered, cropped and resized as collected, stepped once per action, its reward the env's
own; its head is RUN/rewards/<folder> (ALE/Pong-v5: ALE-Pong-v5). Its policies act in the
model's units: on a 1-D Box zero, plus, minus, random and sine (mapped onto the Box's
bounds); on a Discrete(n) random and action-0 .. action-<n-1> (that action at every step),
one-hot as the data stored them. A rollout whose episode ends (terminated) before the
observed frames and a horizon is dropped from that horizon's figures and counted
("dropped" in the JSON); an env whose time limit is shorter is refused."""

EXAMPLE = """example:
  keypoint-wm evaluate dream-fidelity --run runs/dmcs --tasks cartpole-balance \\
      --json fidelity.json --plot fidelity.png
  keypoint-wm evaluate dream-fidelity --run runs/pong --tasks ALE/Pong-v5 --long-horizon 20

Each (run, task) result is cached in RUN/dream_fidelity/ (or --cache DIR) as soon as it is
done; the same command again reuses it. A folder of seed_<s>/ runs gives the mean and 95%
interval over its seeds."""


def run_dream_fidelity(args: argparse.Namespace) -> int:
    """Roll, filter and imagine every task for every run; table, plot, JSON."""
    runs = seed_run_args(args.run)
    check_json_path(args.json)
    check_json_path(args.plot, flag="--plot")
    if args.cache is not None and Path(args.cache).is_file():
        raise UsageError(f"--cache {args.cache} is a file; expected a folder for the results")
    if args.cache is not None and len(runs) > 1:
        raise UsageError(
            f"--cache {args.cache}: several runs keep their results in their own "
            "RUN/dream_fidelity; leave --cache out"
        )
    policies = None if args.policies is None else tuple(comma_list(args.policies) or ())
    if policies is not None and (not policies or not all(map(is_dream_policy, policies))):
        raise UsageError(
            f"--policies must be a comma-separated subset of {','.join(POLICY_NAMES)} and "
            f"action-<k>, got {args.policies!r}"
        )
    env_kwargs = env_kwargs_of(args.env_kwargs)
    tasks = tuple(comma_list(args.tasks) or ())
    device = device_of(args)
    from keypoint_wm.envs.agents.dream_fidelity import (
        FidelityConfig,
        evaluate_dream_fidelity,
        format_fidelity,
        plot_fidelity,
    )
    from keypoint_wm.evaluation.seeds import OverSeeds

    config = FidelityConfig(
        tasks=tasks,
        policies=policies,
        episodes=args.episodes,
        horizon=args.horizon,
        long_horizon=args.long_horizon,
        context=args.context,
        seed=args.seed,
    )
    memo: dict[Any, Any] = {}
    results = each_seed(
        runs,
        args,
        device,
        lambda model: evaluate_dream_fidelity(
            model,
            config,
            heads=args.heads,
            cache=args.cache,
            progress=not args.quiet,
            several=len(runs) > 1,
            memo=memo,
            env_kwargs=env_kwargs,
        ),
    )
    summary = OverSeeds(tuple(runs), tuple(results))
    print(format_fidelity(summary))
    write_json(args.json, summary.to_json())
    write_plot(args, "dream_fidelity", lambda path: plot_fidelity(summary, path))
    return 0


def register(evaluate_commands: argparse._SubParsersAction) -> None:
    """Add ``dream-fidelity`` to ``keypoint-wm evaluate``'s sub-commands."""
    p = evaluate_commands.add_parser(
        "dream-fidelity",
        help="imagined against real returns of scripted policies from the task's initial "
        "states: does the imagination rank policies right?",
        description=DESCRIPTION,
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--run", required=True, action="append", metavar="RUN", help=RUN_HELP)
    p.add_argument(
        "--tasks",
        required=True,
        help="comma-separated tasks, among those the run was trained on: DMCS tasks (e.g. "
        "cartpole-balance) or the Gymnasium ids of its `collect --env` data (e.g. "
        "Pendulum-v1, ALE/Pong-v5)",
    )
    add_env_kwargs(p)
    p.add_argument(
        "--horizon",
        type=positive_int("--horizon"),
        help="agent steps imagined after the observed frames (default: the model's "
        "num_predicted_steps, what a dream episode imagines)",
    )
    p.add_argument(
        "--long-horizon",
        type=int_at_least("--long-horizon", 0),
        default=30,
        help="a longer horizon reported too (default 30 agent steps; 0: none)",
    )
    p.add_argument(
        "--context",
        type=positive_int("--context"),
        help="observed frames before the horizon (default: the model's num_observed_steps)",
    )
    p.add_argument(
        "--policies",
        help=f"comma-separated subset of {','.join(POLICY_NAMES)} and action-<k> (default: "
        "all those defined for each task: pd and pd-flipped on cartpole tasks only; a "
        "Gymnasium id's Discrete actions have random and action-0 .. action-<n-1> only)",
    )
    p.add_argument(
        "--episodes",
        type=positive_int("--episodes"),
        default=6,
        help="initial states (task seeds) per policy (default 6)",
    )
    add_seed(p, what="seed of the initial states, the random policy and the sampled futures")
    p.add_argument(
        "--heads",
        metavar="DIR",
        help="the reward heads, one DIR/<task>/ each: a folder in the run (e.g. "
        "rewards_hidden+keypoints) or a path (default RUN/rewards, where `keypoint-wm "
        "rewards train` writes them)",
    )
    p.add_argument(
        "--cache",
        metavar="DIR",
        help="folder of the per-task results, reused by a re-run with the same settings "
        "(default RUN/dream_fidelity)",
    )
    add_json(p)
    p.add_argument(
        "--plot",
        metavar="PATH",
        help="PNG of imagined (prior mean) against real returns (default: beside --json, "
        "or RUN/dream_fidelity.png)",
    )
    add_device(p)
    add_precision(p)
    add_quiet(p)
    p.set_defaults(handler=run_dream_fidelity)
