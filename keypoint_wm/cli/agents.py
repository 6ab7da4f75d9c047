"""``keypoint-wm evaluate agents``: the same SB3 agent on the state, the pixels, the world
model's latent state and in its imagination, scored on the real task.

Registered under ``evaluate`` by :func:`register`; the handler imports the Gymnasium side
(:mod:`keypoint_wm.envs.agents`: dm_control, Stable-Baselines3) only when it runs. The flags
are checked (run, output paths, variants, budgets, device) before the model is loaded.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from keypoint_wm.choices import AGENT_VARIANTS as VARIANT_NAMES
from keypoint_wm.choices import DREAM_STARTS
from keypoint_wm.cli.common import (
    add_device,
    add_env_kwargs,
    add_quiet,
    check_json_path,
    comma_list,
    device_of,
    env_kwargs_of,
    existing_dir,
    existing_run,
    positive_int,
)
from keypoint_wm.errors import UsageError
from keypoint_wm.latent_features import FEATURE_CHOICES

DEFAULT_SEEDS = 3
"""``--seeds`` when neither it nor ``--seed`` is given."""

DESCRIPTION = """\
Trains the same Stable-Baselines3 agent, with the same real env-step budget and agent seeds,
on each variant, and scores it on the real task:
  random  uniform random actions (no training)
  state   dm_control's low-dimensional observation (MlpPolicy)
  pixels  the raw frames at the run's image size (CnnPolicy)
  latent  the world model's latent state through LatentVecEnv (MlpPolicy)
  dream   trained only inside DreamEnv, the run's prior and reward heads (zero real env
          steps; a missing head is trained first), scored through the latent wrapper
A Gymnasium id of the run's `collect --env` data steps once per action in its own action
space; its state is its own flat observation (an Atari game's RAM), its frames those of
env.render() as collected; dream takes DMCS tasks only."""

EXAMPLE = """example:
  keypoint-wm evaluate agents --run runs/dmcs --tasks cartpole-balance,reacher-easy \\
      --algo ppo --steps 50000 --seeds 3 --out agents/dmcs

Each (task, variant, seed) is written to OUT/units/ as soon as it finishes; running the same
command again skips the finished ones. Returns are episode returns of the real task at the
action repeat of the run's data."""


def duration(flag: str, unit: str, *, zero_ok: bool = False) -> Callable[[str], float]:
    """An argparse ``type`` for a finite number of ``unit`` > 0 (>= 0 with ``zero_ok``)."""
    bound = ">= 0" if zero_ok else "> 0"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} expects {unit}, got {text!r}") from None
        if not (value >= 0 if zero_ok else value > 0) or value == float("inf"):
            raise argparse.ArgumentTypeError(f"{flag} expects {unit} {bound}, got {value}")
        return value

    return parse


def _check_paths(args: argparse.Namespace) -> None:
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UsageError(f"--out {args.out} is a file; expected a folder for the results")
    check_json_path(args.json)
    check_json_path(args.plot, flag="--plot")
    if args.data is not None:
        existing_dir(args.data)


def _check_seeds(args: argparse.Namespace) -> None:
    if args.seed is not None and args.seeds is not None:
        raise UsageError(
            f"--seed {args.seed} runs that agent seed alone and --seeds {args.seeds} runs "
            "seeds 0 .. S-1: give one of them"
        )
    if args.seed is not None and args.seed < 0:
        raise UsageError(f"--seed expects an agent seed >= 0, got {args.seed}")


def run_agents_command(args: argparse.Namespace) -> int:
    """Train and score every (task, variant, seed) not yet in ``--out``; table, JSON, PNG."""
    from keypoint_wm.envs.agents.config import AgentEvalConfig

    _check_seeds(args)
    env_kwargs = env_kwargs_of(args.env_kwargs)
    run = existing_run(args.run)
    _check_paths(args)
    config = AgentEvalConfig(
        tasks=tuple(comma_list(args.tasks) or ()),
        variants=tuple(comma_list(args.variants) or ()),
        algo=args.algo,
        steps=args.steps,
        seeds=DEFAULT_SEEDS if args.seeds is None else args.seeds,
        seed=args.seed,
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        envs=args.envs,
        time_limit=args.time_limit,
        dream_steps=args.dream_steps,
        dream_horizon=args.dream_horizon,
        dream_starts=args.dream_starts,
        features=args.features,
        head_steps=args.head_steps,
    )
    device = device_of(args)
    import keypoint_wm
    from keypoint_wm.envs.agents.runner import run_agents

    model = keypoint_wm.load(run, device=device)
    minutes = args.checkpoint_minutes
    checkpoints = {} if minutes is None else {"checkpoint_seconds": 60.0 * minutes}
    run_agents(
        model,
        config,
        args.out,
        data=args.data,
        json_path=args.json,
        plot_path=args.plot,
        device=device,
        heads=args.heads,
        progress=not args.quiet,
        report_only=args.report_only,
        env_kwargs=env_kwargs,
        **checkpoints,
    )
    return 0


def register(evaluate_commands: argparse._SubParsersAction) -> None:
    """Add ``agents`` to ``keypoint-wm evaluate``'s sub-commands."""
    p = evaluate_commands.add_parser(
        "agents",
        help="the same SB3 agent on the true state, the pixels, the latent state and in "
        "imagination, scored on the real task (mean ± 95%% CI over agent seeds)",
        description=DESCRIPTION,
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_agents(p)
    _add_outputs(p)
    _add_variants_and_evaluation(p)
    _add_dream(p)
    p.add_argument(
        "--checkpoint-minutes",
        type=duration("--checkpoint-minutes", "minutes", zero_ok=True),
        help="wall time between two checkpoints of an agent while it trains, in "
        "OUT/units/<task>/<variant>-seed<s>.partial/; a re-run resumes a killed unit from its "
        "newest, exactly as if never killed (default 10; 0: after every round of updates). "
        "SIGINT or SIGTERM saves one at the next round of updates and stops (exit 130, 143)",
    )
    p.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: write the table, JSON and plot of the units finished in --out "
        "so far (the same flags select them)",
    )
    add_device(p)
    add_quiet(p, "no progress bars")
    p.set_defaults(handler=run_agents_command)


def _add_agents(p: argparse.ArgumentParser) -> None:
    """The run, its tasks, the algorithm, its budget and the agent seeds."""
    p.add_argument("--run", required=True, help="run directory written by `keypoint-wm train`")
    p.add_argument(
        "--tasks",
        required=True,
        help="comma-separated tasks, among those the run was trained on: DMCS tasks (e.g. "
        "cartpole-balance) or the Gymnasium ids of its `collect --env` data (e.g. "
        "InvertedPendulum-v5; variants random, state, pixels, latent)",
    )
    add_env_kwargs(p)
    p.add_argument(
        "--algo", choices=("ppo", "sac"), default="ppo", help="SB3 algorithm (default ppo)"
    )
    p.add_argument(
        "--steps",
        type=positive_int("--steps"),
        default=50_000,
        help="real env steps per trained agent, at the run's action repeat (default 50000)",
    )
    p.add_argument(
        "--seeds",
        type=positive_int("--seeds"),
        help=f"agent seeds per task and variant: 0 .. S-1 (default {DEFAULT_SEEDS})",
    )
    p.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help="run agent seed N alone (one unit per task and variant, e.g. one seed per "
        "process or machine; its result is the one --seeds would make); not with --seeds",
    )


def _add_outputs(p: argparse.ArgumentParser) -> None:
    """The per-unit results folder, the report and the plot."""
    p.add_argument(
        "--out",
        required=True,
        help="folder of the per-unit results (resumable; several processes may share it, "
        "each unit is trained by one of them: start the command once per free core)",
    )
    p.add_argument("--json", metavar="PATH", help="the report (default OUT/agents.json)")
    p.add_argument("--plot", metavar="PATH", help="learning curves PNG (default OUT/agents.png)")


def _add_variants_and_evaluation(p: argparse.ArgumentParser) -> None:
    """Which variants train, and how each agent is evaluated on the real task."""
    p.add_argument(
        "--variants",
        default=",".join(VARIANT_NAMES),
        help=f"comma-separated subset of {','.join(VARIANT_NAMES)} (default: all five)",
    )
    p.add_argument(
        "--eval-every",
        type=positive_int("--eval-every"),
        help="env steps between evaluations (default: steps / 10, 10 points per curve)",
    )
    p.add_argument(
        "--eval-episodes",
        type=positive_int("--eval-episodes"),
        default=5,
        help="real episodes per evaluation, deterministic policy (default 5)",
    )
    p.add_argument(
        "--envs",
        type=positive_int("--envs"),
        help="parallel envs per agent (default 4 for ppo, 1 for sac)",
    )
    p.add_argument(
        "--time-limit",
        type=duration("--time-limit", "seconds"),
        help="simulated seconds per real episode (default: the task's own; for quick checks)",
    )


def _add_dream(p: argparse.ArgumentParser) -> None:
    """The latent observation and the dream: its budget, episodes, start frames, reward heads
    and data."""
    p.add_argument(
        "--dream-steps",
        type=positive_int("--dream-steps"),
        help="imagined steps the dream agent trains for (default: --steps)",
    )
    p.add_argument(
        "--dream-horizon",
        type=positive_int("--dream-horizon"),
        help="imagined steps per dream episode, each after the frames the run observes in "
        "training (default: the steps it was trained to predict, 4 for dmcs-cpu, 8 for dmcs)",
    )
    p.add_argument(
        "--dream-starts",
        choices=DREAM_STARTS,
        default="any",
        help="where a dream episode starts in the run's data episodes: any (anywhere; "
        "default) or initial (their first frames, the task's initial states)",
    )
    p.add_argument(
        "--features",
        choices=FEATURE_CHOICES,
        default="both",
        help="what the latent observation holds (default both: keypoints and GRU state)",
    )
    p.add_argument(
        "--head-steps",
        type=positive_int("--head-steps"),
        default=2000,
        help="optimiser steps of a reward head trained for the dream when the run has none "
        "for a task (default 2000; it goes to OUT/reward_heads)",
    )
    p.add_argument(
        "--heads",
        metavar="DIR",
        help="the dream's reward heads, one DIR/<task>/ each, e.g. RUN/rewards_hidden+keypoints "
        "from `rewards evaluate --heads` (default RUN/rewards)",
    )
    p.add_argument(
        "--data",
        help="the run's dataset, for the dream's start frames and missing reward heads "
        "(default: the folder the run was trained on)",
    )
