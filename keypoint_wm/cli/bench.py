"""``keypoint-wm bench collect | train | wrapper | replay``: benchmarks that print figures and
side-by-side ratios (``--json`` writes them, the ratios under ``"ratios"``).

The benchmark functions live with what they measure (``keypoint_wm.collect.benchmark``,
``keypoint_wm.benchmark``, ``keypoint_wm.envs.benchmark``, ``keypoint_wm.envs.latent.replay``)
and are imported when a command runs.
"""

from __future__ import annotations

import argparse
from typing import Any

from keypoint_wm.cli.common import (
    PRECISION_CHOICES,
    add_device,
    add_json,
    add_quiet,
    add_seed,
    check_json_path,
    comma_list,
    device_of,
    existing_dir,
    existing_run,
    hidden_alias,
    positive_int,
    write_json,
)
from keypoint_wm.errors import UsageError

_TASKS_HELP = "comma-separated DMCS tasks, e.g. cheetah-run,walker-walk"


def _tasks(args: argparse.Namespace) -> list[str]:
    tasks = comma_list(args.tasks)
    if not tasks:
        raise UsageError(f"--tasks expects {_TASKS_HELP}, got {args.tasks!r}")
    return tasks


# ------------------------------------------------------------------------------ collect
def run_bench_collect(args: argparse.Namespace) -> int:
    """Frames/s of a plain dm_control loop vs our collector with 1 and 2 workers."""
    from keypoint_wm.collect.benchmark import format_results, run_collect_benchmark

    tasks = _tasks(args)
    check_json_path(args.json)
    results = run_collect_benchmark(tasks=tasks, frames=args.frames)
    print(format_results(results))
    write_json(args.json, results)
    return 0


def _add_collect(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser(
        "collect",
        help="frames/s of a plain dm_control loop vs our collector with 1 and 2 workers",
    )
    c.add_argument(
        "--tasks",
        default="cheetah-run,walker-walk",
        help=f"{_TASKS_HELP} (default cheetah-run,walker-walk)",
    )
    c.add_argument(
        "--frames",
        type=positive_int("--frames"),
        default=2400,
        help="frames per measurement (default 2400)",
    )
    add_json(c, "the figures and ratios")
    c.set_defaults(handler=run_bench_collect)


# ------------------------------------------------------------------------------ train
def run_bench_train(args: argparse.Namespace) -> int:
    """Training-step time: our fast path vs fp32 eager."""
    from keypoint_wm.benchmark import format_train_benchmark, run_train_benchmark

    check_json_path(args.json)
    device = device_of(args)
    result = run_train_benchmark(
        preset=args.preset,
        batch=args.batch,
        steps=args.steps,
        warmup=args.warmup,
        device=str(device),
        precision=args.precision,
    )
    print(format_train_benchmark(result))
    write_json(args.json, result)
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
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
    t.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="untimed steps first (default 1)",
    )
    add_device(t)
    t.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default="auto",
        help="image-net precision of the fast path (default auto: what training picks; "
        "channels_last on a CPU with native bf16 times what an AVX2-only CPU runs); "
        "fp32_eager is always plain fp32",
    )
    add_json(t, "the figures and ratios")
    t.set_defaults(handler=run_bench_train)


# ------------------------------------------------------------------------------ wrapper
def run_bench_wrapper(args: argparse.Namespace) -> int:
    """Per-step time of the latent wrappers vs the bare pixel env."""
    from keypoint_wm.envs.benchmark import format_wrapper_benchmark, run_wrapper_benchmark

    tasks = _tasks(args)
    if len(tasks) != 1:
        raise UsageError(f"bench wrapper times one task; --tasks lists {len(tasks)}")
    model = _wrapper_model(args)
    check_json_path(args.json)
    result = run_wrapper_benchmark(
        task=tasks[0],
        steps=args.steps,
        num_envs=args.envs,
        preset=args.preset,
        num_keypoints=args.keypoints,
        action_repeat=args.action_repeat,
        seed=args.seed,
        progress=not args.quiet,
        precision=args.precision,
        **model,
    )
    print(format_wrapper_benchmark(result))
    write_json(args.json, result)
    return 0


def _wrapper_model(args: argparse.Namespace) -> dict[str, Any]:
    """``--run`` checked, as ``run_wrapper_benchmark``'s ``run`` (``"default"`` kept as the
    name of the shipped model, a folder as its absolute path) and ``identity`` (its weights
    hash); ``{}`` without ``--run``. Refuses ``--preset``, ``--keypoints`` and
    ``--action-repeat`` beside it: the run fixes them."""
    if args.run is None:
        return {}
    given = [
        flag
        for flag, value in (
            ("--preset", args.preset),
            ("--keypoints", args.keypoints),
            ("--action-repeat", args.action_repeat),
        )
        if value is not None
    ]
    if given:
        raise UsageError(
            f"{', '.join(given)}: bench wrapper --run {args.run} times that model at its own "
            f"size, keypoints and action repeat; leave out {' and '.join(given)}, or --run to "
            "time an untrained --preset model"
        )
    from keypoint_wm.bundled import BUNDLED_ROOT
    from keypoint_wm.reproduce.identity import weights_hash

    folder = existing_run(args.run)
    shipped = folder.resolve().parent == BUNDLED_ROOT.resolve()
    return {
        "run": folder.name if shipped else str(folder.resolve()),
        "identity": weights_hash(folder),
    }


def _add_wrapper(sub: argparse._SubParsersAction) -> None:
    w = sub.add_parser(
        "wrapper",
        help="per-step time of the latent wrappers vs the bare pixel env (1 and 8 envs)",
    )
    w.add_argument("--tasks", default="cheetah-run", help="one DMCS task (default cheetah-run)")
    hidden_alias(w, "--task", "tasks")
    w.add_argument(
        "--steps",
        type=positive_int("--steps"),
        default=200,
        help="timed steps per configuration (default 200)",
    )
    w.add_argument(
        "--envs",
        type=positive_int("--envs"),
        default=8,
        help="envs in the batched run (default 8)",
    )
    w.add_argument(
        "--run",
        help="time the wrapper with this world model instead of an untrained --preset one: a "
        "run folder, or default (the model shipped in the package); at its own image size, "
        "keypoints and action repeat",
    )
    w.add_argument(
        "--preset", help="the untrained model's architecture preset (default dmcs; not with --run)"
    )
    w.add_argument(
        "--keypoints",
        type=positive_int("--keypoints"),
        help="the untrained model's K (default 64; not with --run)",
    )
    w.add_argument(
        "--action-repeat",
        type=positive_int("--action-repeat"),
        help="of the envs (default 2; with --run, the run's)",
    )
    w.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default="auto",
        help="the model's image precision (default auto: what training picks; channels_last "
        "on a CPU with native bf16 times what an AVX2-only CPU runs)",
    )
    add_seed(w)
    add_json(w, "the figures and ratios")
    add_quiet(w)
    w.set_defaults(handler=run_bench_wrapper)


# ------------------------------------------------------------------------------ replay
def run_bench_replay(args: argparse.Namespace) -> int:
    """A trained run's latent wrapper on replayed frames: env checker, then steps/s."""
    import json

    from keypoint_wm.envs.latent.replay import run_replay_check

    run = existing_run(args.run)
    data = existing_dir(args.data)
    check_json_path(args.json)
    device = device_of(args)
    result = run_replay_check(run, data, device=str(device), steps=args.steps, seed=args.seed)
    print(json.dumps(result))
    write_json(args.json, result)
    return 0


def _add_replay(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser(
        "replay",
        help="a trained run's latent wrapper on a replay of a dataset's frames (no "
        "simulator): Gymnasium's env checker, then the wrapped env's steps per second",
    )
    r.add_argument("--run", required=True, help="run directory written by `keypoint-wm train`")
    r.add_argument("--data", required=True, help="dataset whose episodes are replayed")
    r.add_argument(
        "--steps",
        type=positive_int("--steps"),
        default=300,
        help="timed steps of the wrapped env (default 300)",
    )
    add_device(r)
    add_seed(r)
    add_json(r, "the figures")
    r.set_defaults(handler=run_bench_replay)


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``keypoint-wm bench`` and its sub-commands."""
    p = commands.add_parser("bench", help="benchmarks that print figures and side-by-side ratios")
    sub = p.add_subparsers(
        dest="bench_command", required=True, metavar="{collect,train,wrapper,replay}"
    )
    _add_collect(sub)
    _add_train(sub)
    _add_wrapper(sub)
    _add_replay(sub)
