"""``keypoint-wm export``: a run's weights as one small folder that loads like a run.

The folder (:mod:`keypoint_wm.bundled`) holds the config, the weights (float16 by default)
and a provenance card; ``keypoint_wm.load(FOLDER)``, ``--run FOLDER`` and the latent
wrappers read it. The package's shipped default model is made with this command.
"""

from __future__ import annotations

import argparse

from keypoint_wm.cli.common import add_run

EXAMPLE = """example:
  keypoint-wm export --run runs/dmcs --out models/dmcs --heads runs/dmcs/rewards
  python -c "import keypoint_wm; print(keypoint_wm.load('models/dmcs').num_keypoints)"
"""


def run_export(args: argparse.Namespace) -> int:
    """Write the exported model and say where, with its size."""
    from keypoint_wm.bundled import export_run

    out = export_run(args.run, args.out, dtype=args.dtype, heads=args.heads)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({size / 1e6:.1f} MB, weights in {args.dtype})")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``keypoint-wm export``."""
    p = commands.add_parser(
        "export",
        help="a run's newest weights as one small folder that loads like a run",
        description="Write RUN's newest checkpoint as a folder of config.json, "
        "model.safetensors (float16 by default: half the size) and card.json (where it comes "
        "from), optionally with reward heads; keypoint_wm.load, --run and the latent "
        "wrappers read it like a run.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run(p)
    p.add_argument("--out", required=True, help="the folder to write (new, or an earlier export)")
    p.add_argument(
        "--dtype",
        choices=("float16", "float32"),
        default="float16",
        help="storage precision of the weights (default float16; loading gives float32)",
    )
    p.add_argument(
        "--heads",
        help="a folder of reward heads to include (e.g. RUN/rewards); default none",
    )
    p.set_defaults(handler=run_export)
