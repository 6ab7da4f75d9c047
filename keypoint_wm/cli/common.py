"""Flag helpers shared by the ``keypoint-wm`` command groups: one name, help text and check
per concept (``--device``, ``--precision``, ``--json``, ``--quiet``, ``--seed``, run and data
directories), plus the ``--json`` writer.

Importing this module imports nothing heavy (no torch, gymnasium, dm_control or
stable_baselines3): it runs whenever the parser is built. What a check needs (torch for
``--device``) is imported when the check runs, after parsing.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keypoint_wm.errors import UsageError, not_found, storage_cause

if TYPE_CHECKING:
    import torch

from keypoint_wm.choices import DEVICE_HELP, PRECISION_CHOICES


def int_at_least(flag: str, minimum: int) -> Callable[[str], int]:
    """An argparse ``type`` accepting integers >= ``minimum``; errors name ``flag``."""
    expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} expects {expected}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{flag} expects {expected}, got {value}")
        return value

    return parse


def positive_int(flag: str) -> Callable[[str], int]:
    """An argparse ``type`` accepting integers >= 1; errors name ``flag``."""
    return int_at_least(flag, 1)


def fraction(flag: str, *, zero_ok: bool = False) -> Callable[[str], float]:
    """An argparse ``type`` accepting numbers in (0, 1) (``[0, 1)`` with ``zero_ok``)."""
    interval = "[0, 1)" if zero_ok else "(0, 1)"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} expects a number, got {text!r}") from None
        if not (0.0 <= value < 1.0 if zero_ok else 0.0 < value < 1.0):
            raise argparse.ArgumentTypeError(f"{flag} must be in {interval}, got {value}")
        return value

    return parse


def comma_list(text: str | None) -> list[str] | None:
    """``"a, b,c"`` -> ``["a", "b", "c"]``; None or empty -> None."""
    items = [t.strip() for t in text.split(",") if t.strip()] if text else []
    return items or None


class LazyChoices:
    """An argparse ``choices`` container whose names are loaded on first use.

    Lets ``--preset`` list and check the preset names without importing the presets (and
    torch with them) while the parser is built; argparse accepts any container here.
    """

    def __init__(self, load: Callable[[], list[str]]) -> None:
        self._load = load
        self._names: list[str] | None = None

    def _get(self) -> list[str]:
        if self._names is None:
            self._names = sorted(self._load())
        return self._names

    def __contains__(self, name: object) -> bool:
        return name in self._get()

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


def hidden_alias(parser: argparse.ArgumentParser, old: str, dest: str, **kwargs: Any) -> None:
    """Accept the old spelling ``old`` of a flag (same ``dest``), hidden from ``--help``."""
    kwargs.pop("help", None)
    kwargs.pop("default", None)
    parser.add_argument(old, dest=dest, help=argparse.SUPPRESS, default=argparse.SUPPRESS, **kwargs)


def add_device(parser: argparse.ArgumentParser) -> None:
    """``--device``: where a model runs (checked by :func:`device_of`)."""
    parser.add_argument("--device", help=DEVICE_HELP)


def add_precision(parser: argparse.ArgumentParser, default: str = "auto") -> None:
    """``--precision``: the image networks' precision where a command runs the model."""
    why = ": what training picks on the device" if default == "auto" else ""
    parser.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default=default,
        help=f"image-net precision for inference (default {default}{why})",
    )


def add_json(parser: argparse.ArgumentParser, what: str = "the figures") -> None:
    """``--json PATH``: write the command's result as one JSON object."""
    parser.add_argument("--json", metavar="PATH", help=f"write {what} to this JSON file")


def add_quiet(parser: argparse.ArgumentParser, what: str = "no progress bar") -> None:
    """``--quiet``: no progress bars."""
    parser.add_argument("--quiet", action="store_true", help=what)


def add_seed(
    parser: argparse.ArgumentParser, default: int | None = 0, what: str = "random seed"
) -> None:
    """``--seed N``; ``default=None`` means "not given" (see ``train``)."""
    shown = "the config's: the preset's 0, or --config's" if default is None else str(default)
    parser.add_argument("--seed", type=int, default=default, help=f"{what} (default {shown})")


def add_env_kwargs(parser: argparse.ArgumentParser) -> None:
    """``--env-kwargs JSON``: the Gymnasium ids' env keyword arguments over the data's
    (parsed by :func:`env_kwargs_of`)."""
    parser.add_argument(
        "--env-kwargs",
        metavar="JSON",
        help="keyword arguments for the Gymnasium ids' envs, a JSON object, on top of (and "
        "overriding) the --env-kwargs the run's data was collected with, e.g. "
        "'{\"max_episode_steps\": 200}'",
    )


def env_kwargs_of(text: str | None) -> dict[str, Any] | None:
    """``--env-kwargs`` parsed: a JSON object, None when not given.

    Raises:
        UsageError: naming the flag, for anything but a JSON object.
    """
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as error:
        raise UsageError(f"--env-kwargs must be a JSON object, got {text!r} ({error})") from None
    if not isinstance(value, dict):
        raise UsageError(f"--env-kwargs must be a JSON object, got {text!r}")
    return value


def add_run(parser: argparse.ArgumentParser) -> None:
    """``--run RUN``: a run directory written by ``keypoint-wm train``."""
    parser.add_argument("--run", required=True, help="run directory written by `keypoint-wm train`")


def device_of(args: argparse.Namespace) -> torch.device:
    """``args.device`` checked and resolved by the one device rule (UsageError naming
    ``--device`` for a bad name or a CUDA device this machine lacks)."""
    from keypoint_wm.model.device import resolve_device

    return resolve_device(getattr(args, "device", None))


def existing_run(path: str | Path, flag: str = "--run") -> Path:
    """``path`` as a run directory (holding ``config.json``), or the folder of a model shipped
    in the package when ``path`` is its name (``default``: :func:`keypoint_wm.bundled.
    resolve_run`), else UsageError naming ``flag``."""
    from keypoint_wm.bundled import resolve_run

    run = resolve_run(str(path))
    if not (run / "config.json").is_file():
        raise UsageError(
            f"{flag} {run} is not a run directory written by `keypoint-wm train` (no "
            "config.json) nor the name of a shipped model (default)"
        )
    return run


def existing_dir(path: str | Path, flag: str = "--data") -> Path:
    """``path`` as an existing directory, else UsageError naming ``flag``."""
    data = Path(path)
    if not data.is_dir():
        what = "is not a directory" if data.exists() else not_found(data)
        raise UsageError(f"{flag} {data} {what}; expected a dataset directory")
    return data


def check_json_path(path: str | None, flag: str = "--json") -> None:
    """Refuse, before any work starts, an output path (``--json``, a given ``--plot``) that
    is a directory or that cannot be written: a file is created and removed in its folder
    (or, where the folder is still to be made, in the nearest one that exists), since
    permission bits say nothing of a read-only mount. The message names ``flag``, the
    folder and the cause."""
    if not path:
        return
    if Path(path).is_dir():
        raise UsageError(f"{flag} {path} is a directory; expected a file path")
    folder = Path(path).parent
    while not folder.exists() and folder != folder.parent:  # made when written
        folder = folder.parent
    if not folder.is_dir():
        raise UsageError(f"{flag} {path}: {folder} is a file, not a folder")
    try:
        handle, probe = tempfile.mkstemp(prefix=f".{Path(path).name}.", suffix=".probe", dir=folder)
    except OSError as error:
        cause = storage_cause(error) or error.strerror or str(error)
        raise UsageError(f"{flag} {path}: cannot write in {folder} ({cause})") from None
    os.close(handle)
    os.unlink(probe)


def write_json(path: str | None, payload: dict[str, Any], flag: str = "--json") -> None:
    """Write ``payload`` atomically to ``path`` (no-op when ``path`` is None) and say so."""
    if not path:
        return
    from keypoint_wm.data.episodes import atomic_write_json

    check_json_path(path, flag)
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"{flag} {path}: cannot create its folder ({error.strerror})") from None
    try:
        atomic_write_json(target, payload)
    except OSError as error:  # a full disk, a read-only mount, no permission
        raise UsageError(f"{flag} {path}: cannot write it ({error.strerror})") from None
    print(f"wrote {target}")


def write_extra(write: Callable[[Path], Path], path: Path, flag: str, given: bool) -> Path | None:
    """Write an extra output (a plot) with ``write(path)`` after the requested ones.

    A path the user gave (``given``) that cannot be written is an error naming ``flag``
    and the cause; a default one (say ``RUN/tracking.png`` in a read-only run) only warns,
    so that it never costs what was asked for. Returns the path written, or None.
    """
    try:
        written = write(path)
    except OSError as error:
        cause = error.strerror or str(error)
        if given:
            raise UsageError(f"{flag} {path}: cannot write it ({cause})") from None
        warnings.warn(
            f"could not write {path} ({cause}); pass {flag} PATH to put it elsewhere",
            stacklevel=2,
        )
        return None
    print(f"wrote {written}")
    return written


RUN_HELP = (
    "run directory written by `keypoint-wm train`; repeat it for the training seeds of one "
    "variant (figures: mean and 95%% CI over them). A folder of seed_<s>/ runs (`keypoint-wm "
    "train --seeds N --out OUT`) counts as all of its seeds"
)
"""The ``--help`` text of ``--run`` in every command that evaluates runs as seeds."""


def seed_run_args(given: list[str], flag: str = "--run") -> list[str]:
    """Every run behind ``--run`` values ``given`` (seed folders expanded), each named as
    given where it is a run itself; a run given twice is refused (the message names
    ``flag``)."""
    from keypoint_wm.run_groups import seed_runs

    runs = []
    for path in given:
        members = seed_runs(path, flag=flag)
        runs += [path] if members == [Path(path)] else [str(m) for m in members]
    seen: dict[Path, str] = {}
    for run in runs:
        if Path(run).resolve() in seen:
            raise UsageError(
                f"{flag} {run}: the same run is given twice ({seen[Path(run).resolve()]})"
            )
        seen[Path(run).resolve()] = run
    return runs
