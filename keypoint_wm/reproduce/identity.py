"""Who made a result, and what it used: the machine, the commit, data and weight identities.

Every unit result names the hardware it ran on (a speed or a wall time means nothing without
it), the package's commit, and the identity of the large files it used, which stay in
``--out`` and never enter the repository: a dataset's fingerprint and a run's weight hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from keypoint_wm.bundled import CARD, is_exported, read_exported_weights
from keypoint_wm.checkpoint import WEIGHTS, latest_checkpoint, weights_digest
from keypoint_wm.data.episodes import iter_episode_files
from keypoint_wm.reproduce.protocol import fill

__all__ = [
    "dataset_fingerprint",
    "exported_from",
    "git_commit",
    "machine",
    "model_uses",
    "weights_hash",
]

CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
"""The CPU features that change this package's speed (docs/design.md, "Training speed")."""


def machine() -> dict[str, Any]:
    """The CPU model and its relevant flags, the core count, the GPU (or None), and the
    versions of torch and Python."""
    import torch

    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                if cpu and flags:
                    break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu,
        "cpu_flags": [flag for flag in CPU_FLAGS if flag in flags],
        "cores": os.cpu_count(),
        "gpu": gpu,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def git_commit(where: str | Path = ".") -> str:
    """The commit of the repository holding ``where`` (``+dirty`` with uncommitted changes
    to tracked files), or ``"unknown"`` outside a repository."""
    try:
        sha = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(where), "diff", "--quiet", "HEAD", "--", "."],
            capture_output=True,
            timeout=30,
        ).returncode
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


def dataset_fingerprint(root: str | Path) -> str:
    """A hash of every episode file's path and of its arrays' CRC-32 and sizes.

    Read from the zip archives' central directories (no frame is decompressed), so it is
    cheap; two datasets with the same fingerprint hold the same arrays.
    """
    root = Path(root)
    digest = hashlib.sha256()
    for path in iter_episode_files(root):
        digest.update(str(path.relative_to(root)).encode())
        with zipfile.ZipFile(path) as archive:
            for info in sorted(archive.infolist(), key=lambda i: i.filename):
                digest.update(f"{info.filename}:{info.CRC}:{info.file_size};".encode())
    return digest.hexdigest()[:16]


def weights_hash(run_dir: str | Path) -> dict[str, Any]:
    """``{"step", "weights"}``: the newest checkpoint's step and a hash of its weights file;
    for an exported model (``keypoint-wm export``, the shipped default among them), the step
    it was exported at and the hash of its weights file, as its ``card.json`` names it."""
    if is_exported(Path(run_dir)):
        _, step = read_exported_weights(Path(run_dir))
        return {"step": step, "weights": weights_digest(Path(run_dir) / WEIGHTS)}
    checkpoint = latest_checkpoint(Path(run_dir))
    if checkpoint is None:
        return {"step": None, "weights": None}
    step = int(checkpoint.name.removeprefix("step_"))
    return {"step": step, "weights": weights_digest(checkpoint / WEIGHTS)}


def exported_from(folder: str | Path) -> dict[str, Any]:
    """``{"step", "weights"}`` of the run an exported model (``keypoint-wm export``, the
    shipped default among them) was exported from, as its ``card.json`` names it: the
    identity the DMCS targets record for the world model it holds."""
    source = json.loads((Path(folder) / CARD).read_text())["source"]
    return {"step": source["step"], "weights": source["weights"]}


def model_uses(run: str) -> Callable[[Path], dict[str, Any]]:
    """A unit's ``uses`` when it reads one trained run: ``{"world_model": weights_hash}`` of
    ``run`` (a template, filled under the output folder)."""

    def uses(out: Path) -> dict[str, Any]:
        return {"world_model": weights_hash(fill(run, out))}

    return uses
