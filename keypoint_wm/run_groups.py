"""Runs grouped into labelled variants: the one reading of ``--run`` and ``--label``.

``keypoint-wm evaluate compare`` and ``keypoint-wm rewards evaluate`` score several variants
side by side, each over its training seeds. Both read their runs here:

- a run directory (it holds ``config.json``) is one run; a folder written by
  ``keypoint-wm train --seeds N --out OUT`` stands for its ``OUT/seed_<s>/`` runs, in seed
  order (:func:`seed_runs`);
- with labels (one per given run), runs sharing a label are the seeds of one variant, in the
  order the labels first appear; without, each given run (a seed folder included) is its own
  variant, named by its directory (:func:`run_labels`);
- a run given twice within one variant is refused: it would count as two seeds.

:func:`group_runs` returns the :class:`Variant` list; each seed remembers which given run it
came from (:attr:`Seed.index`), so a command can attach its own per-run options to it
(``rewards evaluate``'s ``--heads`` and ``--inputs``). Errors are :class:`UsageError`
naming the flag at fault.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from keypoint_wm.errors import UsageError

__all__ = ["Seed", "Variant", "group_runs", "run_labels", "seed_runs"]


def seed_runs(path: str | Path, flag: str = "--run") -> list[Path]:
    """The runs behind ``path``: itself when it is a run directory (``config.json``), else
    its ``seed_<s>/`` runs (``train --seeds N --out OUT``) in seed order.

    Raises:
        UsageError: ``path`` is neither (the message names ``flag``).
    """
    path = Path(path)
    if (path / "config.json").is_file():
        return [path]
    seeds = []
    if path.is_dir():
        for child in path.glob("seed_*"):
            number = child.name.removeprefix("seed_")
            if (child / "config.json").is_file() and number.lstrip("-").isdigit():
                seeds.append((int(number), child))
    if not seeds:
        raise UsageError(
            f"{flag} {path} is not a run directory written by `keypoint-wm train` (no "
            "config.json) nor a folder of seed_<s>/ runs written by `keypoint-wm train --seeds N`"
        )
    return [child for _, child in sorted(seeds)]


def run_labels(runs: Sequence[str | Path], flag: str = "--run") -> list[str]:
    """Directory names, made unique with their parent's name where two runs share one.

    Raises:
        UsageError: the same directory is given twice (label its uses apart with
            ``--label``).
    """
    names = [Path(r).resolve().name for r in runs]
    labels = []
    for run, name in zip(runs, names, strict=True):
        labels.append(
            f"{Path(run).resolve().parent.name}/{name}" if names.count(name) > 1 else name
        )
    if len(set(labels)) != len(labels):
        raise UsageError(
            f"{flag}: runs must be distinct directories, got {[str(r) for r in runs]} (to "
            "use one run in several variants, name each use with --label)"
        )
    return labels


@dataclass(frozen=True)
class Seed:
    """One run of a variant."""

    run: Path
    """The run directory."""
    index: int
    """The position among the given runs of the one it came from."""
    given: Path
    """That given run: ``run`` itself, or the folder of ``seed_<s>/`` runs holding it."""


@dataclass(frozen=True)
class Variant:
    """The runs that are the training seeds of one variant."""

    name: str
    """Its label, or (unlabelled) the directory name of its given run."""
    labelled: bool
    """Whether ``name`` is a ``--label``."""
    seeds: tuple[Seed, ...]

    @property
    def runs(self) -> list[Path]:
        """The run directories, one per seed."""
        return [seed.run for seed in self.seeds]

    @property
    def seed_hint(self) -> str:
        """Why its runs count as seeds of one variant, for an error that says they are not
        (:func:`keypoint_wm.evaluation.seeds.check_one_variant`)."""
        if self.labelled:
            return f" (both labelled {self.name!r}; label them apart to compare them)"
        return f" (seed runs of {self.seeds[0].given})"


def group_runs(
    runs: Sequence[str | Path], labels: Sequence[str] | None = None, flag: str = "--run"
) -> list[Variant]:
    """The variants of ``runs`` (module docstring), in the order they first appear.

    Args:
        runs: run directories or folders of ``seed_<s>/`` runs.
        labels: one per run; runs sharing a label are the seeds of one variant. None: each
            run is its own variant, named by its directory.
        flag: how the runs were given, for the messages (``--run``, ``RUN``).

    Raises:
        UsageError: no runs, not one label per run, a path that is neither a run nor a seed
            folder, one directory given twice without labels, or a run given twice within a
            variant.
    """
    if not runs:
        raise UsageError(f"{flag}: give at least one run directory")
    if labels is not None and len(labels) != len(runs):
        raise UsageError(f"--label: give one label per run ({len(runs)}), got {len(labels)}")
    names = list(labels) if labels is not None else run_labels(runs, flag)
    grouped: dict[str, list[Seed]] = {}
    for index, (name, given) in enumerate(zip(names, runs, strict=True)):
        members = seed_runs(given, flag=flag)
        grouped.setdefault(name, []).extend(Seed(run, index, Path(given)) for run in members)
    for name, seeds in grouped.items():
        if len({seed.run.resolve() for seed in seeds}) != len(seeds):
            shown = [str(seed.run) for seed in seeds]
            raise UsageError(f"--label {name}: a run is given twice: {shown}")
    return [Variant(name, labels is not None, tuple(seeds)) for name, seeds in grouped.items()]
