"""``keypoint-wm evaluate video | actions | diversity | compare``: arguments and handlers.

Kept out of ``cli.py``; ``cli._add_evaluate`` calls :func:`add_evaluate_commands`. Every
command takes ``--run RUN`` (compare: several), ``--data DIR``, ``--json PATH`` and
``--device``, prints a table and writes PNG plots (beside ``--json``, or in the run
directory, unless a path is given).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from keypoint_wm.cli_args import positive_int, write_json


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--test-fraction expects a number, got {text!r}"
        ) from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"--test-fraction must be in (0, 1), got {value}")
    return value


def _plot_path(args: argparse.Namespace, name: str) -> Path:
    if args.plot:
        return Path(args.plot)
    if args.json:
        return Path(args.json).with_suffix(".png")
    return Path(args.run) / f"{name}.png"


def _load(args: argparse.Namespace):
    import keypoint_wm

    return keypoint_wm.load(args.run, device=args.device)


def _common(p: argparse.ArgumentParser, several: bool = False) -> None:
    if several:
        p.add_argument("runs", nargs="*", metavar="RUN", help="run directories to compare")
        p.add_argument(
            "--run",
            action="append",
            dest="more_runs",
            metavar="RUN",
            help="a run to compare (repeatable; same as listing it positionally)",
        )
    else:
        p.add_argument("--run", required=True, help="run directory written by `keypoint-wm train`")
    p.add_argument("--data", required=True, help="dataset directory")
    p.add_argument("--json", help="write the figures to this JSON file")
    p.add_argument("--device", help="cpu, cuda, ... (default: CUDA if available)")
    p.add_argument(
        "--test-fraction",
        type=_fraction,
        default=0.2,
        help="held-out fraction by path hash, for data without a split in their metadata "
        "(default 0.2, as in training)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


# ------------------------------------------------------------------------------ video
def _video_config(args: argparse.Namespace):
    from keypoint_wm.evaluation.video import VideoEvalConfig

    return VideoEvalConfig(
        samples=args.samples,
        test_fraction=args.test_fraction,
        max_windows=args.max_windows,
        vgg_weights=args.vgg_weights,
        fvd_weights=args.fvd_weights,
    )


def _cmd_video(args: argparse.Namespace) -> int:
    from keypoint_wm.evaluation.video import evaluate_video, format_video, plot_video

    result = evaluate_video(_load(args), args.data, _video_config(args), progress=not args.quiet)
    result.update(run=str(args.run), data=str(args.data))
    print(format_video(result))
    print(f"wrote {plot_video(result, _plot_path(args, 'video'))}")
    write_json(args.json, result)
    return 0


def _video_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--samples",
        type=positive_int("--samples"),
        default=100,
        help="sampled futures per window; the closest and furthest are scored (default 100)",
    )
    p.add_argument(
        "--max-windows",
        type=positive_int("--max-windows"),
        default=100,
        help="at most this many test windows per task (default 100)",
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


# ---------------------------------------------------------------------------- actions
def _action_config(args: argparse.Namespace):
    from keypoint_wm.evaluation.actions import ActionEvalConfig

    return ActionEvalConfig(
        steps=args.steps,
        test_fraction=args.test_fraction,
        max_windows=args.max_sequences,
        epochs=args.epochs,
        seed=args.seed,
    )


def _cmd_actions(args: argparse.Namespace) -> int:
    from keypoint_wm.evaluation.actions import evaluate_actions, format_actions, plot_actions

    result = evaluate_actions(_load(args), args.data, _action_config(args), progress=not args.quiet)
    result.update(run=str(args.run), data=str(args.data))
    print(format_actions(result))
    print(f"wrote {plot_actions(result, _plot_path(args, 'actions'))}")
    write_json(args.json, result)
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
    p.add_argument(
        "--max-sequences",
        type=positive_int("--max-sequences"),
        default=5000,
        help="at most this many sequences per split and task (default 5000)",
    )
    p.add_argument("--seed", type=int, default=0, help="classifier seed (default 0)")


# -------------------------------------------------------------------------- diversity
def _cmd_diversity(args: argparse.Namespace) -> int:
    from keypoint_wm.evaluation.diversity import (
        DiversityConfig,
        evaluate_diversity,
        format_diversity,
        plot_diversity,
    )

    try:
        sequences = tuple(int(s) for s in args.sequences.split(",") if s.strip())
    except ValueError:
        raise ValueError(
            f"--sequences expects comma-separated window numbers, got {args.sequences!r}"
        ) from None
    config = DiversityConfig(
        sequences=sequences,
        samples=args.samples,
        max_objects=args.max_objects,
        test_fraction=args.test_fraction,
    )
    result = evaluate_diversity(_load(args), args.data, config)
    result.update(run=str(args.run), data=str(args.data))
    print(format_diversity(result))
    print(f"wrote {plot_diversity(result, _plot_path(args, 'diversity'))}")
    write_json(args.json, result)
    return 0


# ---------------------------------------------------------------------------- compare
def _cmd_compare(args: argparse.Namespace) -> int:
    from keypoint_wm.evaluation.compare import (
        CompareConfig,
        compare_runs,
        format_markdown,
        plot_compare,
    )

    config = CompareConfig(
        metrics=tuple(m.strip() for m in args.metrics.split(",") if m.strip()),
        video=_video_config(args),
        actions=_action_config(args),
        tracking_samples=args.tracking_samples,
        test_fraction=args.test_fraction,
    )
    args.runs = list(args.runs or []) + list(args.more_runs or [])
    if not args.runs:
        raise ValueError(
            "compare needs run directories: keypoint-wm evaluate compare RUN... --data DIR"
        )
    for run in args.runs:
        if not Path(run).is_dir():
            raise FileNotFoundError(f"RUN {run}: no such run directory")
    result = compare_runs(args.runs, args.data, config, device=args.device, progress=not args.quiet)
    markdown = format_markdown(result)
    print(markdown)
    base = Path(args.json).with_suffix("") if args.json else Path("compare")
    md_path = Path(args.markdown) if args.markdown else base.with_suffix(".md")
    from keypoint_wm.data.episodes import atomic_write_bytes

    md_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(md_path, markdown.encode())
    print(f"wrote {md_path}")
    plots = plot_compare(result, Path(args.plots) if args.plots else Path(f"{base}_plots"))
    result["plots"] = [str(p) for p in plots]
    result["markdown"] = str(md_path)
    print(f"wrote {len(plots)} plots to {plots[0].parent if plots else '-'}")
    write_json(args.json, result)
    return 0


def add_evaluate_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``video``, ``actions``, ``diversity`` and ``compare`` to ``keypoint-wm evaluate``."""
    v = sub.add_parser(
        "video",
        help="PSNR/SSIM of the closest and furthest of N sampled futures (paper Fig. 3, S10)",
    )
    _common(v)
    _video_flags(v)
    v.add_argument(
        "--plot", help="PNG of the metrics per step (default: beside --json, or RUN/video.png)"
    )
    v.set_defaults(handler=_cmd_video)

    a = sub.add_parser(
        "actions",
        help="action recognition from the model's keypoint sequences (paper Fig. 7, S2.1)",
    )
    _common(a)
    _action_flags(a)
    a.add_argument(
        "--plot",
        help="PNG of accuracies and confusion (default: beside --json, or RUN/actions.png)",
    )
    a.set_defaults(handler=_cmd_actions)

    d = sub.add_parser(
        "diversity",
        help="N sampled future trajectories over the true ones for chosen windows (paper Fig. S12)",
    )
    _common(d)
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
    d.add_argument("--plot", help="PNG (default: beside --json, or RUN/diversity.png)")
    d.set_defaults(handler=_cmd_diversity)

    c = sub.add_parser(
        "compare",
        help="the metrics of several runs side by side (Markdown + JSON table, one figure per metric)",
    )
    _common(c, several=True)
    _video_flags(c)
    _action_flags(c)
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
    c.set_defaults(handler=_cmd_compare)
