"""``keypoint-wm train``: train (or resume) a Struct-VRNN world model on episode files.

The config is the ``--preset``, then ``--config FILE``, then each ``--set KEY=VALUE``, then
the flags that name one setting (``--steps``, ``--seed``, ``--precision``). A flag and a
``--set`` of the same setting must agree (a ``--set seed=3`` is never overwritten by a
default). Every flag is checked before anything is read or written.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from keypoint_wm.choices import DATA_PLACEMENTS, GRAPH_MODES
from keypoint_wm.cli.common import (
    PRECISION_CHOICES,
    LazyChoices,
    add_device,
    add_quiet,
    add_seed,
    device_of,
    positive_int,
)
from keypoint_wm.errors import UsageError, not_found


def _preset_names() -> list[str]:
    from keypoint_wm.presets import PRESETS

    return list(PRESETS)


def _flag_over_set(
    overrides: dict[str, Any], key: str, flag: str, value: Any, from_set: dict[str, Any]
) -> None:
    """Apply ``flag``'s ``value`` (None: not given) to ``key``; refuse a ``--set`` of the same
    key with another value."""
    if value is None:
        return
    if key in from_set and from_set[key] != value:
        raise UsageError(
            f"{flag} {value} contradicts --set {key}={from_set[key]}; give one of them"
        )
    overrides[key] = value


def build_run_config(args: argparse.Namespace) -> Any:
    """The :class:`~keypoint_wm.config.RunConfig` the flags describe."""
    from keypoint_wm.config import load_config_file, parse_set_arguments
    from keypoint_wm.presets import get_preset

    preset = get_preset(args.preset)
    overrides: dict[str, Any] = {}
    if args.config:
        overrides.update(load_config_file(args.config))
    from_set = parse_set_arguments(args.set or [])
    overrides.update(from_set)
    if args.steps is not None:  # --steps is the documented way to extend a run on --resume
        overrides["train.steps"] = args.steps
    _flag_over_set(overrides, "seed", "--seed", args.seed, from_set)
    _flag_over_set(overrides, "train.precision", "--precision", args.precision, from_set)
    return preset.build().with_overrides(overrides)


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; expected a run directory (new or existing)")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"--out {out}: {parent} is a file, not a directory")
            break


def run_train(args: argparse.Namespace) -> int:
    """Train the run in ``--out``; print its final step and losses."""
    from keypoint_wm.collect.config import default_data_dir

    out = Path(args.out)
    _check_out(out)
    device_of(args)  # a bad --device fails here, before any data is read
    config = build_run_config(args)
    data = Path(args.data) if args.data else default_data_dir()
    if not data.exists():
        raise UsageError(
            f"--data {data} {not_found(data)}; collect it first with `keypoint-wm collect` "
            "or pass --data DIR"
        )
    if not data.is_dir():
        raise UsageError(f"--data {data} is a file; expected a dataset directory")
    common = {
        "resume": args.resume,
        "device_name": args.device,
        "progress": not args.quiet,
        "data_placement": args.data_placement,
        "cuda_graph": args.cuda_graph,
    }
    if args.seeds > 1:
        from keypoint_wm.replicas import replica_dir, train_replicas

        results = train_replicas(config, data, out, args.seeds, **common)
        runs = [replica_dir(out, config.seed + i) for i in range(args.seeds)]
    else:
        from keypoint_wm.train import train

        results, runs = [train(config, data, out, **common)], [out]
    for run, result in zip(runs, results, strict=True):
        print(
            f"trained {run} to step {result['step']} ({result['precision']}"
            f"{', CUDA graph' if result['cuda_graph'] else ''}"
            f"{', data on device' if result['data_on_device'] else ''}); "
            f"losses: " + ", ".join(f"{k} {v:.4g}" for k, v in result["losses"].items())
        )
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``keypoint-wm train``."""
    p = commands.add_parser(
        "train",
        help="train a Struct-VRNN world model",
        description="Train a Struct-VRNN (or a baseline, by config) on a dataset of episode "
        "files. --steps is the TOTAL number of steps; --resume continues a killed or finished "
        "run from its last checkpoint.",
    )
    p.add_argument("--data", help="dataset directory (default: where `keypoint-wm collect` writes)")
    p.add_argument(
        "--preset",
        default="dmcs-cpu",
        choices=LazyChoices(_preset_names),
        metavar="PRESET",
        help="named configuration (default dmcs-cpu): %(choices)s",
    )
    p.add_argument("--out", required=True, help="run directory (checkpoints, TensorBoard, media)")
    p.add_argument("--steps", type=positive_int("--steps"), help="total training steps")
    p.add_argument("--config", help="YAML file with model:/train: sections applied on the preset")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override one setting, e.g. --set model.num_keypoints=16 (repeatable)",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    add_seed(p, default=None, what="the run's seed, like --set seed=N")
    add_device(p)
    p.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        help="image-net precision (the same as --set train.precision=...; default: the "
        "preset's, auto = the fastest on the device)",
    )
    p.add_argument(
        "--seeds",
        type=positive_int("--seeds"),
        default=1,
        help="train N independent replicas with seeds S, S+1, ..., S+N-1 (S: --seed or the "
        "preset's) into OUT/seed_<s>/, concurrently on a GPU, side by side on a CPU with "
        "the threads split between them (default 1: one run in OUT)",
    )
    p.add_argument(
        "--data-placement",
        choices=DATA_PLACEMENTS,
        default="auto",
        help="where training windows come from: 'device' holds the training split on the "
        "training device as uint8 and draws windows there, 'loader' reads files with a "
        "DataLoader; auto (default): the device when the data fits (a GPU: half its free "
        "memory; a CPU: a quarter of the available RAM). Same windows either way",
    )
    p.add_argument(
        "--cuda-graph",
        choices=GRAPH_MODES,
        default="auto",
        help="capture the training step once as a CUDA graph and replay it (auto, default: "
        "on one CUDA device, not under torchrun)",
    )
    add_quiet(p)
    p.set_defaults(handler=run_train)
