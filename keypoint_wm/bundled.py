"""Exported world models: a run's weights in one small folder, and the ones shipped inside
the package (docs/design.md, "The shipped default model").

An exported model is a folder that :func:`keypoint_wm.load` reads like a run::

    MODEL/config.json          the run's full config (model, training, data: action repeat)
    MODEL/model.safetensors    the weights, float16 by default (loaded into float32)
    MODEL/card.json            where it comes from: the run, its step and weight hash, the
                               data it was trained on, the commit, the export command
    MODEL/rewards/<task>/      optional: the run's reward heads, as ``rewards train`` wrote

``keypoint-wm export --run RUN --out MODEL`` writes one. The package ships one under the
name ``"default"`` (:data:`DEFAULT`): ``keypoint_wm.load("default")``, and the latent env ids
and :class:`~keypoint_wm.envs.latent.wrapper.LatentObservation` use it when given no run.
A name is looked up among the shipped models only when no file or folder of that name
exists, so a run folder called ``default`` in the working directory still wins.

Loading never executes pickled code: the weights are safetensors, the rest JSON.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from keypoint_wm.checkpoint import (
    CONFIG_NAME,
    WEIGHTS,
    latest_checkpoint,
    read_config,
    weights_digest,
    write_tensors,
)
from keypoint_wm.data.episodes import atomic_write_json
from keypoint_wm.errors import UsageError

__all__ = [
    "BUNDLED_ROOT",
    "CARD",
    "DEFAULT",
    "EXPORT_DTYPES",
    "bundled_names",
    "export_run",
    "is_exported",
    "read_exported_weights",
    "resolve_run",
]

BUNDLED_ROOT = Path(__file__).resolve().parent / "bundled"
"""Where the shipped models live inside the package, one folder per name."""

DEFAULT = "default"
"""The name of the shipped default world model."""

CARD = "card.json"
"""An exported model's provenance file."""

METADATA_KEY = "keypoint_wm"
"""The safetensors metadata entry of an export's weights: JSON with the step and dtype."""

EXPORT_DTYPES = {"float16": torch.float16, "float32": torch.float32}
"""The storage precisions of :func:`export_run` (loading always gives float32)."""


def bundled_names() -> tuple[str, ...]:
    """The names of the models shipped in the package (folders with a ``config.json``)."""
    if not BUNDLED_ROOT.is_dir():
        return ()
    return tuple(sorted(p.name for p in BUNDLED_ROOT.iterdir() if (p / CONFIG_NAME).exists()))


def resolve_run(run: str | Path | None) -> Path:
    """The folder behind ``run``: a path as given, or a shipped model's folder: for None
    (:data:`DEFAULT`), and for one of :func:`bundled_names` when no path of that name exists.

    Raises:
        UsageError: ``run`` is None or a shipped name, and the package holds no such model.
    """
    if run is not None and (not isinstance(run, str) or "/" in run or Path(run).exists()):
        return Path(run)
    name = DEFAULT if run is None else run
    if name in bundled_names():
        return BUNDLED_ROOT / name
    if name == DEFAULT:
        raise UsageError(
            f"no shipped world model {name!r} in this installation ({BUNDLED_ROOT}); "
            "pass the folder of a run written by `keypoint-wm train`"
        )
    return Path(name)


def is_exported(folder: Path) -> bool:
    """Whether ``folder`` is an exported model (weights at its top, no checkpoints)."""
    return (folder / WEIGHTS).is_file() and not (folder / "checkpoints").exists()


def read_exported_weights(folder: Path) -> tuple[dict[str, torch.Tensor], int]:
    """``(state dict in float32, training step)`` of an exported model."""
    weights = {k: v.float() for k, v in load_file(str(folder / WEIGHTS)).items()}
    with safe_open(str(folder / WEIGHTS), framework="pt") as handle:
        metadata = handle.metadata() or {}
    return weights, int(json.loads(metadata.get(METADATA_KEY, "{}")).get("step", 0))


def _save_weights(weights: dict[str, torch.Tensor], path: Path, metadata: dict[str, Any]) -> None:
    """safetensors written atomically, readable by every user of an installed package; the
    metadata as one sorted JSON entry (safetensors orders several entries differently from
    one process to the next: the same export must give the same bytes)."""
    tmp = path.with_name(f".{path.name}.tmp")
    entry = {METADATA_KEY: json.dumps(metadata, sort_keys=True)} if metadata else None
    write_tensors(tmp, weights, metadata=entry)
    tmp.chmod(0o644)
    tmp.replace(path)


def _copy_heads(source: Path, target: Path, dtype: torch.dtype) -> None:
    """The reward heads of ``source`` (one folder per task) with their weights in ``dtype``;
    their training logs (TensorBoard) stay behind."""
    for folder, names, files in os.walk(source):
        names[:] = [n for n in names if n != "tensorboard"]
        here = target / Path(folder).relative_to(source)
        here.mkdir(parents=True, exist_ok=True)
        for name in files:
            if name.endswith(".safetensors"):
                tensors = load_file(str(Path(folder) / name))
                _save_weights(
                    {k: v.to(dtype).contiguous() for k, v in tensors.items()}, here / name, {}
                )
            else:
                shutil.copyfile(Path(folder) / name, here / name)


def export_run(
    run_dir: str | Path,
    out: str | Path,
    dtype: str = "float16",
    heads: str | Path | None = None,
    card: dict[str, Any] | None = None,
) -> Path:
    """Write ``run_dir``'s newest checkpoint as an exported model in ``out`` (module doc).

    Args:
        run_dir: a run written by ``keypoint-wm train``.
        out: the folder to write (replaced if it is an exported model already; refused if it
            holds anything else).
        dtype: ``"float16"`` (half the size) or ``"float32"``.
        heads: a folder of reward heads to copy into ``out/rewards`` (default: none).
        card: more provenance to record in ``card.json`` (commands, figures).

    Raises:
        UsageError: naming the flag: no checkpoint, an unknown dtype, a non-empty ``out``
            that is not an exported model, or ``heads`` that is not a folder.
    """
    run_dir, out = Path(run_dir), Path(out)
    if dtype not in EXPORT_DTYPES:
        raise UsageError(f"--dtype must be one of {', '.join(EXPORT_DTYPES)}, got {dtype!r}")
    config = read_config(run_dir)
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise UsageError(f"--run {run_dir}: the run has no checkpoint to export")
    if heads is not None and not Path(heads).is_dir():
        raise UsageError(f"--heads {heads}: not a folder of reward heads")
    if out.exists() and any(out.iterdir()) and not is_exported(out):
        raise UsageError(f"--out {out}: exists and is not an exported model; choose a new folder")
    state = json.loads((checkpoint / "state.json").read_text())
    weights = {
        k: v.to(EXPORT_DTYPES[dtype]).contiguous()
        for k, v in load_file(str(checkpoint / WEIGHTS)).items()
    }
    out.mkdir(parents=True, exist_ok=True)
    _save_weights(weights, out / WEIGHTS, {"step": int(state["step"]), "dtype": dtype})
    atomic_write_json(out / CONFIG_NAME, config)
    if (out / "rewards").exists():
        shutil.rmtree(out / "rewards")
    if heads is not None:
        _copy_heads(Path(heads), out / "rewards", EXPORT_DTYPES[dtype])
    provenance = {
        "source": {
            "run": str(run_dir),
            "step": int(state["step"]),
            "weights": weights_digest(checkpoint / WEIGHTS),
            "data": config.get("data", {}),
        },
        "dtype": dtype,
        "weights": weights_digest(out / WEIGHTS),
        "heads": None if heads is None else str(heads),
        **(card or {}),
    }
    atomic_write_json(out / CARD, provenance)
    return out
