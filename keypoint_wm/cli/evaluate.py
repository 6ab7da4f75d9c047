"""``keypoint-wm evaluate tracking | video | actions | diversity | compare`` (and, registered
from their own modules, ``state-probe``, ``state-reference``, ``agents``, ``dream-fidelity``;
the flags and the seed loop they share are in :mod:`keypoint_wm.cli.evaluate_common`).

Every command takes ``--run RUN``, ``--data DIR``, ``--json PATH``, ``--device``,
``--precision``, ``--test-fraction`` and ``--quiet``, prints a table and writes PNG plots
(beside ``--json``, or in the (first) run directory, unless a path is given). The flags are
checked (run and data directories, ``--json`` path, device) before a model is loaded.

Seeds (:mod:`keypoint_wm.evaluation.seeds`): ``--run`` repeats for the training seeds of one
variant, and a folder of ``seed_<s>/`` runs (``keypoint-wm train --seeds N --out OUT``) stands
for all of them. The JSON keeps each run's keys, each number now the mean over the runs, and
adds ``"seed_ci95"`` (95% interval half-widths over runs; null for one run) and ``"per_run"``;
the table shows mean ± that interval. ``compare`` groups its runs into variants by ``--label``.
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path
from typing import Any

from keypoint_wm.cli.common import (
    add_seed,
    check_json_path,
    device_of,
    existing_dir,
    hidden_alias,
    positive_int,
    seed_run_args,
    write_extra,
    write_json,
)
from keypoint_wm.cli.evaluate_common import (
    add_common,
    add_max_windows,
    over_seeds,
    plot_path,
    write_plot,
)
from keypoint_wm.errors import UsageError


# ------------------------------------------------------------------------------ tracking
def run_tracking(args: argparse.Namespace) -> int:
    """Linear regression from keypoints to object positions; table, plot, JSON."""
    from keypoint_wm.evaluation.tracking import evaluate_tracking, format_tracking, plot_tracking

    summary = over_seeds(
        args,
        lambda model: evaluate_tracking(
            model,
            args.data,
            test_fraction=args.test_fraction,
            samples=args.samples,
            max_windows=args.max_windows,
            best_per_object={"auto": None, "object": True, "all": False}[args.best_of],
            progress=not args.quiet,
        ),
    )
    print(format_tracking(summary))
    write_json(args.json, summary.to_json())
    write_plot(args, "tracking", lambda path: plot_tracking(summary, path))
    return 0


def _add_tracking(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser(
        "tracking",
        help="linear regression from keypoints to ground-truth object positions (paper Fig. 4)",
    )
    add_common(t, precision="auto")
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
    add_max_windows(t, 1000, "at most this many windows per task and split (default 1000)")
    t.add_argument(
        "--plot",
        help="PNG of error per time step (default: beside --json, or RUN/tracking.png)",
    )
    t.set_defaults(handler=run_tracking)


# ------------------------------------------------------------------------------ video
def _video_config(args: argparse.Namespace) -> Any:
    from keypoint_wm.evaluation.video import VideoEvalConfig

    extra = {} if args.max_windows is None else {"max_windows": args.max_windows}
    return VideoEvalConfig(
        samples=args.samples,
        test_fraction=args.test_fraction,
        vgg_weights=args.vgg_weights,
        fvd_weights=args.fvd_weights,
        **extra,
    )


def run_video(args: argparse.Namespace) -> int:
    """PSNR/SSIM of the closest and furthest sampled futures; table, plot, JSON."""
    from keypoint_wm.evaluation.video import evaluate_video, format_video, plot_video

    config = _video_config(args)
    summary = over_seeds(
        args, lambda model: evaluate_video(model, args.data, config, progress=not args.quiet)
    )
    print(format_video(summary))
    write_json(args.json, summary.to_json())
    write_plot(args, "video", lambda path: plot_video(summary, path))
    return 0


def _video_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--samples",
        type=positive_int("--samples"),
        default=100,
        help="sampled futures per window; the closest and furthest are scored (default 100)",
    )
    p.add_argument(
        "--vgg-weights",
        help="TorchScript feature net: float images [N, 3, H, W] in [0, 1] -> features "
        "(VGG cosine similarity; never downloaded)",
    )
    p.add_argument(
        "--fvd-weights",
        help="TorchScript video net (e.g. a wrapped I3D): float videos [N, 3, T, H, W] in "
        "[-1, 1] -> features [N, D] (FVD; never downloaded)",
    )


def _add_video(sub: argparse._SubParsersAction) -> None:
    v = sub.add_parser(
        "video",
        help="PSNR/SSIM of the closest and furthest of N sampled futures (paper Fig. 3, S10)",
    )
    add_common(v, precision="fp32")
    _video_flags(v)
    add_max_windows(v, 100, "at most this many test windows per task (default 100)")
    v.add_argument(
        "--plot", help="PNG of the metrics per step (default: beside --json, or RUN/video.png)"
    )
    v.set_defaults(handler=run_video)


# ------------------------------------------------------------------------------ actions
def _action_config(args: argparse.Namespace, max_windows: int | None) -> Any:
    from keypoint_wm.evaluation.actions import ActionEvalConfig

    extra = {} if max_windows is None else {"max_windows": max_windows}
    return ActionEvalConfig(
        steps=args.steps,
        test_fraction=args.test_fraction,
        epochs=args.epochs,
        seed=args.seed,
        **extra,
    )


def run_actions(args: argparse.Namespace) -> int:
    """Action recognition from the model's keypoint sequences; table, plot, JSON."""
    from keypoint_wm.evaluation.actions import evaluate_actions, format_actions, plot_actions

    config = _action_config(args, args.max_windows)
    summary = over_seeds(
        args, lambda model: evaluate_actions(model, args.data, config, progress=not args.quiet)
    )
    print(format_actions(summary))
    write_json(args.json, summary.to_json())
    write_plot(args, "actions", lambda path: plot_actions(summary, path))
    return 0


def _action_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--steps",
        type=positive_int("--steps"),
        default=8,
        help="observed steps per sequence (default 8)",
    )
    p.add_argument(
        "--epochs",
        type=positive_int("--epochs"),
        default=100,
        help="classifier epochs (default 100)",
    )
    add_seed(p, what="classifier seed")


def _add_actions(sub: argparse._SubParsersAction) -> None:
    a = sub.add_parser(
        "actions",
        help="action recognition from the model's keypoint sequences (paper Fig. 7, S2.1)",
    )
    add_common(a, precision="fp32")
    _action_flags(a)
    add_max_windows(a, 5000, "at most this many sequences per split and task (default 5000)")
    hidden_alias(a, "--max-sequences", "max_windows", type=positive_int("--max-sequences"))
    a.add_argument(
        "--plot",
        help="PNG of accuracies and confusion (default: beside --json, or RUN/actions.png)",
    )
    a.set_defaults(handler=run_actions)


# ---------------------------------------------------------------------------- diversity
def run_diversity(args: argparse.Namespace) -> int:
    """Sampled future trajectories over the true ones for chosen windows; plot, JSON."""
    from keypoint_wm.evaluation.diversity import (
        DiversityConfig,
        evaluate_diversity,
        format_diversity,
        plot_diversity,
    )

    try:
        sequences = tuple(int(s) for s in args.sequences.split(",") if s.strip())
    except ValueError:
        raise UsageError(
            f"--sequences expects comma-separated window numbers, got {args.sequences!r}"
        ) from None
    config = DiversityConfig(
        sequences=sequences,
        samples=args.samples,
        max_objects=args.max_objects,
        test_fraction=args.test_fraction,
    )
    summary = over_seeds(args, lambda model: evaluate_diversity(model, args.data, config))
    print(format_diversity(summary))
    write_json(args.json, summary.to_json())
    plot = plot_path(args, "diversity")
    if summary.count == 1:
        write_plot(args, "diversity", lambda path: plot_diversity(summary.results[0], path))
    else:  # sampled paths of several runs do not average: one figure per run
        names = [Path(run).name for run in summary.runs]
        if len(set(names)) < len(names):
            names = [str(i) for i in range(len(names))]
        for name, (_, result) in zip(names, summary, strict=True):
            path = plot.with_name(f"{plot.stem}_{name}.png")
            write_extra(partial(plot_diversity, result), path, "--plot", bool(args.plot))
    return 0


def _add_diversity(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser(
        "diversity",
        help="N sampled future trajectories over the true ones for chosen windows (paper Fig. S12)",
    )
    add_common(d, precision="fp32")
    d.add_argument(
        "--sequences",
        default="0,1,2",
        help="comma-separated test window numbers to draw (default 0,1,2)",
    )
    d.add_argument(
        "--samples", type=positive_int("--samples"), default=20, help="sampled futures (default 20)"
    )
    d.add_argument(
        "--max-objects",
        type=positive_int("--max-objects"),
        default=6,
        help="objects (columns) per window (default 6)",
    )
    d.add_argument(
        "--plot",
        help="PNG (default: beside --json, or RUN/diversity.png); several runs: one per run, "
        "named PLOT_<run>.png",
    )
    d.set_defaults(handler=run_diversity)


# ------------------------------------------------------------------------------ compare
def run_compare(args: argparse.Namespace) -> int:
    """The metrics of several runs side by side: Markdown table, JSON, one figure per metric."""
    from keypoint_wm.evaluation.compare import (
        CompareConfig,
        compare_runs,
        format_markdown,
        plot_compare,
    )

    runs = list(args.runs or []) + list(args.more_runs or [])
    if not runs:
        raise UsageError(
            "compare needs run directories: keypoint-wm evaluate compare RUN... --data DIR"
        )
    seed_run_args(runs, flag="RUN")  # each a run or a folder of seed runs, none given twice
    existing_dir(args.data)
    check_json_path(args.json)
    check_json_path(args.markdown, flag="--markdown")
    device = device_of(args)
    # --max-windows caps every evaluation (default: each one's own); --max-sequences (the old
    # spelling of the actions cap) caps action recognition only.
    action_windows = args.max_sequences or args.max_windows
    extra = {} if args.max_windows is None else {"tracking_max_windows": args.max_windows}
    config = CompareConfig(
        metrics=tuple(m.strip() for m in args.metrics.split(",") if m.strip()),
        video=_video_config(args),
        actions=_action_config(args, action_windows),
        tracking_samples=args.tracking_samples,
        test_fraction=args.test_fraction,
        **extra,
    )
    result = compare_runs(
        runs,
        args.data,
        config,
        device=device,
        precision=args.precision,
        progress=not args.quiet,
        labels=args.label,
    )
    markdown = format_markdown(result)
    print(markdown)
    base = Path(args.json).with_suffix("") if args.json else Path("compare")
    md_path = Path(args.markdown) if args.markdown else base.with_suffix(".md")
    from keypoint_wm.data.episodes import atomic_write_bytes

    md_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(md_path, markdown.encode())
    print(f"wrote {md_path}")
    plots = plot_compare(result, Path(args.plots) if args.plots else Path(f"{base}_plots"))
    payload = result.to_json()
    payload["plots"] = [str(p) for p in plots]
    payload["markdown"] = str(md_path)
    print(f"wrote {len(plots)} plots to {plots[0].parent if plots else '-'}")
    write_json(args.json, payload)
    return 0


def _add_compare(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser(
        "compare",
        help="the metrics of several runs side by side (Markdown + JSON table, one figure per metric)",
    )
    add_common(c, precision="fp32", several=True)
    _video_flags(c)
    _action_flags(c)
    add_max_windows(
        c,
        None,
        "at most this many windows per task and split in every evaluation (default: each "
        "one's own: video 100, tracking 1000, actions 5000)",
    )
    c.add_argument(
        "--max-sequences",
        type=positive_int("--max-sequences"),
        help=argparse.SUPPRESS,  # the old spelling of the actions cap
    )
    c.add_argument(
        "--metrics",
        default="video,tracking,actions",
        help="which evaluations to run where the data allow (default video,tracking,actions)",
    )
    c.add_argument(
        "--tracking-samples",
        type=positive_int("--tracking-samples"),
        default=50,
        help="sampled futures for tracking's best-of-N (default 50)",
    )
    c.add_argument("--markdown", help="Markdown table path (default: beside --json, or compare.md)")
    c.add_argument("--plots", help="folder for the figures (default: beside --json)")
    c.set_defaults(handler=run_compare)


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``keypoint-wm evaluate`` and its sub-commands."""
    p = commands.add_parser(
        "evaluate",
        help="evaluate trained runs (tracking, video, actions, diversity, state-probe, compare, "
        "agents, dream-fidelity) and what the data allows (state-reference)",
    )
    sub = p.add_subparsers(
        dest="evaluate_command",
        required=True,
        metavar="{tracking,video,actions,diversity,state-probe,state-reference,compare,agents,"
        "dream-fidelity}",
    )
    _add_tracking(sub)
    _add_video(sub)
    _add_actions(sub)
    _add_diversity(sub)
    from keypoint_wm.cli import agents, fidelity, state_probe, state_reference

    state_probe.register(sub)
    state_reference.register(sub)
    _add_compare(sub)

    agents.register(sub)
    fidelity.register(sub)
