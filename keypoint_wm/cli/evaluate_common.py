"""What every ``keypoint-wm evaluate`` command shares: the common flags, the plot's default
path, and the loop that loads and evaluates each ``--run`` as a seed of one variant."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from keypoint_wm.cli.common import (
    RUN_HELP,
    add_device,
    add_json,
    add_precision,
    add_quiet,
    check_json_path,
    device_of,
    existing_dir,
    fraction,
    positive_int,
    seed_run_args,
    write_extra,
)

__all__ = ["add_common", "add_max_windows", "each_seed", "over_seeds", "plot_path", "write_plot"]


def plot_path(args: argparse.Namespace, name: str) -> Path:
    """``--plot``, else beside ``--json``, else ``NAME.png`` in the first run directory."""
    if args.plot:
        return Path(args.plot)
    if args.json:
        return Path(args.json).with_suffix(".png")
    return Path(args.run[0]) / f"{name}.png"


def write_plot(args: argparse.Namespace, name: str, plot: Callable[[Path], Path]) -> None:
    """The plot after the JSON: a default path that cannot be written only warns."""
    write_extra(plot, plot_path(args, name), "--plot", given=bool(args.plot))


def over_seeds(args: argparse.Namespace, evaluate: Callable[[Any], Any]) -> Any:
    """Check ``--run`` (each a run or a folder of seed runs), ``--data``, ``--json`` and a
    given ``--plot`` (each writable) and ``--device``; then load and ``evaluate`` each run in
    turn, as seeds of one variant.

    Returns an :class:`~keypoint_wm.evaluation.seeds.OverSeeds` whose per-run objects add
    ``"run"`` and ``"data"``.
    """
    runs = seed_run_args(args.run)
    existing_dir(args.data)
    check_json_path(args.json)
    check_json_path(getattr(args, "plot", None), flag="--plot")
    device = device_of(args)
    from keypoint_wm.evaluation.seeds import OverSeeds

    results = each_seed(runs, args, device, evaluate)
    return OverSeeds(tuple(runs), tuple(results), {"data": str(args.data)})


def each_seed(
    runs: list[str], args: argparse.Namespace, device: Any, evaluate: Callable[[Any], Any]
) -> list[Any]:
    """Load each of ``runs`` in turn (``args.precision``, on ``device``) and ``evaluate`` it;
    runs whose model configs differ are refused (seeds of one variant share their model)."""
    import keypoint_wm
    from keypoint_wm.evaluation.seeds import check_one_variant

    results, configs = [], []
    for number, run in enumerate(runs, 1):
        if len(runs) > 1 and not args.quiet:
            print(f"run {number}/{len(runs)}: {run}", flush=True)
        model = keypoint_wm.load(run, device=device, precision=args.precision)
        configs.append(model.config.model.to_dict())
        check_one_variant(runs[:number], configs, " (seeds of one variant share their model)")
        results.append(evaluate(model))
        del model
    return results


def add_common(p: argparse.ArgumentParser, precision: str, several: bool = False) -> None:
    """The run (``several``: the runs to compare, with their labels), ``--data``, ``--json``,
    ``--device``, ``--precision``, ``--test-fraction`` and ``--quiet``."""
    if several:
        p.add_argument(
            "runs",
            nargs="*",
            metavar="RUN",
            help="run directories to compare (a folder of seed_<s>/ runs written by "
            "`keypoint-wm train --seeds N` counts as one variant with all of its seeds)",
        )
        p.add_argument(
            "--run",
            action="append",
            dest="more_runs",
            metavar="RUN",
            help="a run to compare (repeatable; same as listing it after the positional ones)",
        )
        p.add_argument(
            "--label",
            action="append",
            metavar="NAME",
            help="a name per run, in order (positional runs first, then --run); runs sharing "
            "a label are the seeds of one variant (mean and 95%% CI over them). Default: "
            "each run its own variant, named by its directory",
        )
    else:
        p.add_argument("--run", required=True, action="append", metavar="RUN", help=RUN_HELP)
    p.add_argument("--data", required=True, help="dataset directory")
    add_json(p)
    add_device(p)
    add_precision(p, default=precision)
    p.add_argument(
        "--test-fraction",
        type=fraction("--test-fraction"),
        default=0.2,
        help="held-out fraction by path hash, for data without a split in their metadata "
        "(default 0.2, as in training)",
    )
    add_quiet(p)


def add_max_windows(p: argparse.ArgumentParser, default: int | None, what: str) -> None:
    p.add_argument("--max-windows", type=positive_int("--max-windows"), default=default, help=what)
