"""The resumable dataset writer: every generated dataset (Basketball, the figure stand-in,
Human3.6M) is written through one :class:`DatasetWriter`, so all of them resume alike.

A dataset folder holds episode files and ``manifest.json``, which records the settings the
files were written with. The writer

- creates ``--out`` (a file there is refused);
- refuses a folder whose manifest records other settings, in one line naming the folder
  and each differing setting (:func:`~keypoint_wm.differences.describe_differences`; keys
  added to the settings later are compared with the value they always had, ``legacy``),
  and a folder that is not empty but holds no manifest;
- writes the manifest (atomically) before the first episode with ``"complete": false`` and
  again after the last one with ``"complete": true``;
- keeps an episode file only when it is whole
  (:func:`~keypoint_wm.data.episodes.present_and_valid`: its zip directory, keys and small
  arrays read); a damaged one (truncated, overwritten) is named in a warning and written
  again;
- writes episodes atomically (:func:`~keypoint_wm.data.episodes.save_episode`), recording
  the package and numpy versions in their metadata.

An episode's bytes depend only on what the dataset computes from its seed, so a re-run
(after a kill, or with files deleted or damaged) gives the files an uninterrupted run gives.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from keypoint_wm import __version__
from keypoint_wm.data.episodes import (
    MANIFEST_NAME,
    Episode,
    present_and_valid,
    read_manifest,
    save_episode,
    write_manifest,
)
from keypoint_wm.differences import describe_differences
from keypoint_wm.errors import UsageError

__all__ = ["DatasetWriter", "sequence_fields"]

DIFFERENCE = "{key}: {old!r} there, {new!r} now"
"""How a setting that differs from the manifest's is named in the refusal."""


def _dataset_folder(out: Path) -> Path:
    """Create ``out`` (with its parents); UsageError naming ``--out`` if that cannot be."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, expected a dataset directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"--out {out}: cannot create the dataset directory ({error})") from None
    return out


def _refuse_other_settings(
    out: Path, settings: Mapping[str, Any], legacy: Mapping[str, Any], label: str
) -> None:
    """UsageError unless ``out`` is empty or its manifest records ``settings``."""
    previous = read_manifest(out)
    if previous is None:
        if any(out.iterdir()):
            raise UsageError(
                f"--out {out} is not empty and holds no {label} dataset; choose another"
            )
        return
    recorded, wanted = {**legacy, **previous}, {**legacy, **settings}
    if recorded.get("dataset") != wanted.get("dataset"):  # another kind: that says it all
        wanted = {"dataset": wanted.get("dataset")}
    details = describe_differences({k: recorded.get(k) for k in wanted}, wanted, DIFFERENCE)
    if details:
        raise UsageError(f"--out {out} holds a dataset written with other settings ({details})")


class DatasetWriter:
    """Writes (or finishes writing) one dataset folder; see the module docstring.

    Use: construct (checks and creates the folder), :meth:`start` with the manifest's
    fields, then for each episode :meth:`finished` or else :meth:`save`, and :meth:`finish`.

    Args:
        out_dir: the dataset folder, ``--out``.
        settings: what the files depend on; recorded in the manifest, compared on a re-run.
        label: the dataset's name in messages (``"Basketball"``).
        legacy: settings added after datasets were already written, with the value those
            datasets had (a manifest without the key counts as holding it).

    Attributes:
        out: the folder.
        written, kept: episode files written and kept so far.
        manifest_path: the manifest, ``out / manifest.json``.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        settings: Mapping[str, Any],
        *,
        label: str,
        legacy: Mapping[str, Any] | None = None,
    ) -> None:
        self._started = time.perf_counter()
        self.out = _dataset_folder(Path(out_dir))
        self.settings = dict(settings)
        _refuse_other_settings(self.out, self.settings, legacy or {}, label)
        self.written = self.kept = 0
        self.manifest_path = self.out / MANIFEST_NAME
        self._fields: Callable[[], dict[str, Any]] = dict
        self.versions = {"keypoint_wm": __version__, "numpy": np.__version__}

    def start(self, fields: Callable[[], dict[str, Any]]) -> None:
        """Write the manifest, not complete yet: the settings and ``fields()`` (what the
        dataset adds: episode count, shapes ...), called again by :meth:`finish`."""
        self._fields = fields
        self._write_manifest(complete=False)

    def finished(self, name: str) -> bool:
        """Whether episode file ``name`` is there and whole (then it is kept, and counted).

        A damaged file is named in a warning; the caller writes it again."""
        state = present_and_valid(self.out / name)
        if state is False:
            warnings.warn(
                f"{self.out / name} is damaged (not a whole episode file); writing it again",
                stacklevel=2,
            )
        self.kept += bool(state)
        return bool(state)

    def save(self, name: str, episode: Episode) -> None:
        """Write ``episode`` atomically as ``name``, its metadata with the versions."""
        metadata = {**episode.metadata, "versions": self.versions}
        save_episode(self.out / name, dataclasses.replace(episode, metadata=metadata))
        self.written += 1

    def finish(self) -> None:
        """Write the manifest again, complete."""
        self._write_manifest(complete=True)

    def tally(self) -> dict[str, Any]:
        """``written``, ``kept`` and ``seconds`` since the writer was made, for a summary."""
        seconds = round(time.perf_counter() - self._started, 3)
        return {"written": self.written, "kept": self.kept, "seconds": seconds}

    def _write_manifest(self, complete: bool) -> None:
        write_manifest(self.out, {**self.settings, **self._fields(), "complete": complete})


def sequence_fields(
    out: Path, file_pattern: str, requested: int, frames: int, size: int, objects: int
) -> Callable[[], dict[str, Any]]:
    """The manifest fields of a dataset of action-free sequences named ``file_pattern``
    (``"figure_{:06d}.npz"``), for :meth:`DatasetWriter.start`: the episodes there, the
    number requested, the shapes of an episode's arrays and the pattern."""
    glob = re.sub(r"\{[^}]*\}", "*", file_pattern)

    def fields() -> dict[str, Any]:
        return {
            "num_episodes": len(list(out.glob(glob))),
            "requested_sequences": int(requested),
            "image_shape": [frames, size, size, 3],
            "action_shape": [frames, 0],
            "true_object_pos_shape": [frames, objects, 2],
            "file_pattern": file_pattern,
        }

    return fields
