"""``keypoint-wm data figures``, ``human36m`` and ``shapes``: arguments and handlers.

Kept out of ``cli.py`` so that it stays small; ``cli._add_data`` calls
:func:`add_data_commands`. Everything heavy is imported when a command runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from keypoint_wm.cli_args import positive_int


def _cmd_figures(args: argparse.Namespace) -> int:
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


def _cmd_shapes(args: argparse.Namespace) -> int:
    from keypoint_wm.data.shapes import ShapesConfig, write_shapes_dataset

    config = ShapesConfig(image_size=args.size, num_frames=args.frames, num_objects=args.objects)
    summary = write_shapes_dataset(
        Path(args.out), args.sequences, seed=args.seed, config=config, progress=not args.quiet
    )
    print(json.dumps({"out_dir": args.out, **summary}, indent=2))
    return 0


def _cmd_human36m(args: argparse.Namespace) -> int:
    from keypoint_wm.data.human36m import Human36MConfig, convert_human36m

    config = Human36MConfig(
        train_subjects=tuple(_subjects(args.train_subjects, "--train-subjects")),
        test_subjects=tuple(_subjects(args.test_subjects, "--test-subjects")),
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


def _subjects(text: str, flag: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    for name in names:
        if not (name.startswith("S") and name[1:].isdigit()):
            raise ValueError(f"{flag}: subjects look like S1,S5,...; got {name!r}")
    return names


def add_data_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``figures``, ``shapes`` and ``human36m`` to the ``keypoint-wm data`` sub-commands."""
    from keypoint_wm.data.human36m import DEFAULT_TEST_SUBJECTS, DEFAULT_TRAIN_SUBJECTS
    from keypoint_wm.data.skeleton import JOINT_SETS

    fig = sub.add_parser(
        "figures",
        help="write the Human3.6M stand-in: a stick figure performing labelled actions",
        description="Write the procedural Human3.6M stand-in: an articulated figure on the "
        "17-joint Human3.6M skeleton performing one of 6 labelled actions per sequence "
        "(joints as true_object_pos, the action in the metadata). Resumable; refuses a "
        "directory written with other settings.",
    )
    fig.add_argument("--out", required=True, help="output directory")
    fig.add_argument(
        "--sequences", type=positive_int("--sequences"), default=1000, help="sequences (default 1000)"
    )
    fig.add_argument(
        "--frames", type=positive_int("--frames"), default=50, help="frames per sequence (default 50)"
    )
    fig.add_argument("--seed", type=int, default=0)
    fig.add_argument("--size", type=positive_int("--size"), default=64)
    fig.add_argument(
        "--joints",
        choices=("17", "eval12"),
        default="17",
        help="joints in true_object_pos: the 17-joint skeleton or the paper's 12 (default 17)",
    )
    fig.add_argument("--quiet", action="store_true")
    fig.set_defaults(handler=_cmd_figures)

    shapes = sub.add_parser(
        "shapes",
        help="write bouncing-shapes videos in the reference implementation's format",
        description="Write videos of bouncing coloured shapes (discs, squares, diamonds) on a "
        "grey background as a flat folder of reference-format .npz files (image and "
        "true_object_pos only; no actions, no manifest). Resumable.",
    )
    shapes.add_argument("--out", required=True, help="output directory")
    shapes.add_argument(
        "--sequences", type=positive_int("--sequences"), default=1000, help="sequences (default 1000)"
    )
    shapes.add_argument(
        "--frames", type=positive_int("--frames"), default=50, help="frames per sequence (default 50)"
    )
    shapes.add_argument(
        "--objects", type=positive_int("--objects"), default=4, help="objects per video (default 4)"
    )
    shapes.add_argument("--seed", type=int, default=0)
    shapes.add_argument("--size", type=positive_int("--size"), default=64)
    shapes.add_argument("--quiet", action="store_true")
    shapes.set_defaults(handler=_cmd_shapes)

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
        default=",".join(DEFAULT_TRAIN_SUBJECTS),
        help=f"comma-separated (default {','.join(DEFAULT_TRAIN_SUBJECTS)})",
    )
    h36.add_argument(
        "--test-subjects",
        default=",".join(DEFAULT_TEST_SUBJECTS),
        help=f"comma-separated (default {','.join(DEFAULT_TEST_SUBJECTS)})",
    )
    h36.add_argument(
        "--frame-step",
        type=positive_int("--frame-step"),
        default=4,
        help="keep every n-th video frame (default 4: 50 fps -> 12.5 fps)",
    )
    h36.add_argument("--size", type=positive_int("--size"), default=64)
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
    h36.add_argument("--quiet", action="store_true")
    h36.set_defaults(handler=_cmd_human36m)
