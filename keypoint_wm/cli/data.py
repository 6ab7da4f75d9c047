"""``keypoint-wm data``: inspect and validate datasets, write the built-in ones.

Sub-commands: ``info``, ``check`` (read-only), ``basketball`` (built-in simulator or real
trajectories), ``figures`` (the Human3.6M stand-in), ``shapes`` (reference-format bouncing
shapes) and ``human36m`` (convert the official layout). Every handler imports its module
when it runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from keypoint_wm.cli.common import (
    add_json,
    add_quiet,
    add_seed,
    check_json_path,
    positive_int,
    write_json,
)
from keypoint_wm.data.skeleton import JOINT_SETS
from keypoint_wm.errors import UsageError

FIGURE_JOINTS = ("17", "eval12")
"""Joint sets of ``data figures``."""
H36M_TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
H36M_TEST_SUBJECTS = ("S9", "S11")
"""The standard protocol's subjects: the defaults of ``keypoint_wm.data.human36m``, repeated
here because that module imports torch (tests/cli/test_imports.py asserts they agree)."""


# ------------------------------------------------------------------------------ handlers
def run_info(args: argparse.Namespace) -> int:
    """Print what a dataset holds (and write it to ``--json``)."""
    from keypoint_wm.data.inspect import dataset_info, format_info

    check_json_path(args.json)
    info = dataset_info(args.dir)
    print(format_info(info))
    write_json(args.json, info)
    return 0


def run_check(args: argparse.Namespace) -> int:
    """Validate every episode file; exit 1 if any is bad, there is none, or fewer are there
    than the manifest lists (a collection that has not finished)."""
    from keypoint_wm.data.episodes import manifest_episode_count, read_manifest
    from keypoint_wm.data.inspect import check_dataset

    count, bad = check_dataset(args.dir)
    for path, problems in bad.items():
        print(f"BAD {path}: {'; '.join(problems)}")
    if count == 0:
        print(f"{args.dir}: no episode files found")
        return 1
    print(f"{args.dir}: {count - len(bad)} of {count} episode files valid")
    listed = manifest_episode_count(read_manifest(args.dir))
    if listed is not None and count < listed:
        print(
            f"{args.dir}: the manifest lists {listed} episodes, {listed - count} of them "
            f"missing: the collection has not finished (re-run its command to complete it)"
        )
        return 1
    return 1 if bad else 0


def run_basketball(args: argparse.Namespace) -> int:
    """Write the built-in Basketball dataset (simulated, or rendered from ``--source``)."""
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
        reward=args.reward,
    )
    print(json.dumps(summary, indent=2, default=str))
    return 0


def run_figures(args: argparse.Namespace) -> int:
    """Write the procedural Human3.6M stand-in."""
    from keypoint_wm.data.figures import write_figures_dataset

    summary = write_figures_dataset(
        Path(args.out),
        num_sequences=args.sequences,
        seed=args.seed,
        num_frames=args.frames,
        size=args.size,
        joints=args.joints,
        progress=not args.quiet,
    )
    print(json.dumps(summary, indent=2))
    return 0


def run_shapes(args: argparse.Namespace) -> int:
    """Write bouncing-shapes videos in the reference implementation's format."""
    from keypoint_wm.data.shapes import ShapesConfig, write_shapes_dataset

    config = ShapesConfig(image_size=args.size, num_frames=args.frames, num_objects=args.objects)
    summary = write_shapes_dataset(
        Path(args.out), args.sequences, seed=args.seed, config=config, progress=not args.quiet
    )
    print(json.dumps({"out_dir": args.out, **summary}, indent=2))
    return 0


def subjects(text: str, flag: str) -> list[str]:
    """``"S1,S5"`` -> ``["S1", "S5"]``; UsageError naming ``flag`` for anything else."""
    names = [s.strip() for s in text.split(",") if s.strip()]
    for name in names:
        if not (name.startswith("S") and name[1:].isdigit()):
            raise UsageError(f"{flag}: subjects look like S1,S5,...; got {name!r}")
    return names


def run_human36m(args: argparse.Namespace) -> int:
    """Convert Human3.6M (official layout) into episode files."""
    from keypoint_wm.data.human36m import Human36MConfig, convert_human36m

    config = Human36MConfig(
        train_subjects=tuple(subjects(args.train_subjects, "--train-subjects")),
        test_subjects=tuple(subjects(args.test_subjects, "--test-subjects")),
        frame_step=args.frame_step,
        size=args.size,
        joints=args.joints,
        cameras=tuple(c for c in (args.cameras or "").split(",") if c),
        crop_margin=args.crop_margin,
        crop=args.crop,
        max_frames=args.max_frames,
    )
    summary = convert_human36m(Path(args.root), Path(args.out), config, progress=not args.quiet)
    print(json.dumps(summary, indent=2))
    return 0


# ------------------------------------------------------------------------------ parsers
def _add_sequences_and_frames(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--sequences",
        type=positive_int("--sequences"),
        default=1000,
        help="sequences (default 1000)",
    )
    p.add_argument(
        "--frames",
        type=positive_int("--frames"),
        default=50,
        help="frames per sequence (default 50)",
    )


def _add_figures(sub: argparse._SubParsersAction) -> None:
    fig = sub.add_parser(
        "figures",
        help="write the Human3.6M stand-in: a stick figure performing labelled actions",
        description="Write the procedural Human3.6M stand-in: an articulated figure on the "
        "17-joint Human3.6M skeleton performing one of 6 labelled actions per sequence "
        "(joints as true_object_pos, the action in the metadata). Resumable; refuses a "
        "directory written with other settings.",
    )
    fig.add_argument("--out", required=True, help="output directory")
    _add_sequences_and_frames(fig)
    add_seed(fig)
    fig.add_argument("--size", type=positive_int("--size"), default=64, help="image side (64)")
    fig.add_argument(
        "--joints",
        choices=FIGURE_JOINTS,
        default="17",
        help="joints in true_object_pos: the 17-joint skeleton or the paper's 12 (default 17)",
    )
    add_quiet(fig)
    fig.set_defaults(handler=run_figures)


def _add_shapes(sub: argparse._SubParsersAction) -> None:
    shapes = sub.add_parser(
        "shapes",
        help="write bouncing-shapes videos in the reference implementation's format",
        description="Write videos of bouncing coloured shapes (discs, squares, diamonds) on a "
        "grey background as a flat folder of reference-format .npz files (image and "
        "true_object_pos only; no actions, no manifest). Resumable.",
    )
    shapes.add_argument("--out", required=True, help="output directory")
    _add_sequences_and_frames(shapes)
    shapes.add_argument(
        "--objects", type=positive_int("--objects"), default=4, help="objects per video (default 4)"
    )
    add_seed(shapes)
    shapes.add_argument("--size", type=positive_int("--size"), default=64, help="image side (64)")
    add_quiet(shapes)
    shapes.set_defaults(handler=run_shapes)


def _add_human36m(sub: argparse._SubParsersAction) -> None:
    h36 = sub.add_parser(
        "human36m",
        help="convert Human3.6M (official layout) into episode files",
        description="Convert Human3.6M videos (S<n>/Videos/<Action>.<camera>.mp4) and 2D poses "
        "(S<n>/MyPoseFeatures/D2_Positions/<Action>.<camera>.cdf) into 64x64 person-centred "
        "episodes with the joints as true_object_pos and subject split and action label in "
        "the metadata. Needs cdflib (pip install 'keypoint-wm[human36m]'). Resumable.",
    )
    h36.add_argument("--root", required=True, help="Human3.6M root holding S1, S5, ...")
    h36.add_argument("--out", required=True, help="output directory")
    h36.add_argument(
        "--train-subjects",
        default=",".join(H36M_TRAIN_SUBJECTS),
        help=f"comma-separated (default {','.join(H36M_TRAIN_SUBJECTS)})",
    )
    h36.add_argument(
        "--test-subjects",
        default=",".join(H36M_TEST_SUBJECTS),
        help=f"comma-separated (default {','.join(H36M_TEST_SUBJECTS)})",
    )
    h36.add_argument(
        "--frame-step",
        type=positive_int("--frame-step"),
        default=4,
        help="keep every n-th video frame (default 4: 50 fps -> 12.5 fps)",
    )
    h36.add_argument("--size", type=positive_int("--size"), default=64, help="image side (64)")
    h36.add_argument(
        "--joints",
        choices=JOINT_SETS,
        default="17",
        help="joints in true_object_pos: 17-joint skeleton, the paper's 12, or all 32",
    )
    h36.add_argument("--cameras", help="comma-separated camera ids (default: all)")
    h36.add_argument(
        "--crop-margin",
        type=float,
        default=0.2,
        help="margin around the joints' bounding box, as a fraction of its side (default 0.2)",
    )
    h36.add_argument(
        "--crop",
        choices=("track", "fixed"),
        default="track",
        help="track: a square of fixed size following the person (smoothed); fixed: one "
        "square holding the person in every frame (default track)",
    )
    h36.add_argument(
        "--max-frames",
        type=positive_int("--max-frames"),
        help="at most this many (subsampled) frames per video",
    )
    add_quiet(h36)
    h36.set_defaults(handler=run_human36m)


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``keypoint-wm data`` and its sub-commands."""
    p = commands.add_parser("data", help="inspect, validate or generate datasets")
    sub = p.add_subparsers(
        dest="data_command",
        required=True,
        metavar="{info,check,basketball,figures,shapes,human36m}",
    )
    info = sub.add_parser("info", help="print what a dataset holds")
    info.add_argument("dir", help="dataset directory")
    add_json(info)
    info.set_defaults(handler=run_info)

    check = sub.add_parser(
        "check", help="validate every episode file (read-only); exit 1 if any is bad"
    )
    check.add_argument("dir", help="dataset directory")
    check.set_defaults(handler=run_check)

    bb = sub.add_parser("basketball", help="write the built-in Basketball dataset")
    bb.add_argument("--out", required=True, help="output directory")
    bb.add_argument(
        "--sequences",
        type=positive_int("--sequences"),
        default=None,
        help="number of sequences (default 1000; with --source: all of the file)",
    )
    add_seed(bb)
    bb.add_argument("--source", help="real trajectories: .npy [N, 50, 22] or .npz holding one")
    bb.add_argument("--source-key", help="array name inside a --source .npz")
    bb.add_argument("--size", type=positive_int("--size"), default=64, help="image side (64)")
    bb.add_argument("--draw-defence", action="store_true", help="also draw the five defenders")
    bb.add_argument(
        "--reward",
        choices=("zero", "ball-x"),
        default="zero",
        help="what the episodes' reward holds: zero (default; the games have none) or ball-x, "
        "the ball's x position in the keypoint frame (something to check reward heads on)",
    )
    add_quiet(bb)
    bb.set_defaults(handler=run_basketball)

    _add_figures(sub)
    _add_shapes(sub)
    _add_human36m(sub)
