"""The reward heads of ``keypoint-wm evaluate dream-fidelity``: the run's folder of
``<task>/`` heads behind ``--heads`` (:func:`heads_folder`) and each task's, checked to read
this model's hidden states (:func:`task_head`). A Gymnasium id's head is in its dataset
folder's name (``ALE/Pong-v5``: ``ALE-Pong-v5/``), where ``keypoint-wm rewards train`` writes
it.
"""

from __future__ import annotations

import json
from pathlib import Path

from keypoint_wm.api import WorldModel
from keypoint_wm.errors import UsageError
from keypoint_wm.reward_inputs import inputs_mismatch
from keypoint_wm.rewards.head import HEAD_CONFIG

__all__ = ["heads_folder", "task_head"]


def heads_folder(model: WorldModel, heads: str | Path | None, several: bool = False) -> Path:
    """The folder of the run's ``<task>/`` reward heads behind ``--heads``.

    ``heads`` None: ``RUN/rewards`` (where ``keypoint-wm rewards train`` writes them). A
    relative path names a folder in the run when the run has one (``--heads
    rewards_hidden+keypoints``: ``RUN/rewards_hidden+keypoints``); otherwise it is a path as
    given, which ``several`` runs cannot share (a head reads one model's hidden states).

    Raises:
        UsageError: naming ``--heads``, when there is no such folder.
    """
    run = Path(model.run_dir or ".")
    if heads is None:
        folder = run / "rewards"
        if not folder.is_dir():
            raise UsageError(
                f"--heads: {folder} does not exist; train the run's reward heads with "
                f"`keypoint-wm rewards train --run {run} --data DIR`, or pass --heads DIR"
            )
        return folder
    given = Path(heads)
    if not given.is_absolute() and (run / given).is_dir():
        return run / given
    if given.is_dir():
        if several:
            raise UsageError(
                f"--heads {heads}: several runs cannot share one folder of heads (each reads "
                "its own model's hidden states); name a folder inside each run, e.g. "
                "--heads rewards"
            )
        return given
    raise UsageError(f"--heads {heads}: no such folder (nor {run / given}); expected <task>/ heads")


def task_head(model: WorldModel, folder: Path, task: str) -> Path:
    """``folder/<task>``, checked to hold a head for this model's hidden states.

    Raises:
        UsageError: naming ``--heads``, for a task without a head, a head of other sizes or
            one reading another representation's per-frame input (``hidden+keypoints`` of a
            CNN-VRNN run, ``hidden+features`` of a Struct-VRNN one).
    """
    directory = folder / task
    if not (directory / HEAD_CONFIG).is_file():
        found = sorted(p.name for p in folder.iterdir() if (p / HEAD_CONFIG).is_file())
        raise UsageError(
            f"--heads {folder}: no reward head for {task} (heads found: "
            f"{', '.join(found) or 'none'}); train one with `keypoint-wm rewards train --run "
            f"{model.run_dir} --data DIR --tasks {task}`"
        )
    fields = json.loads((directory / HEAD_CONFIG).read_text())
    size = fields.get("input_size")
    units = model.config.model.rnn_units
    if size != units:
        raise UsageError(
            f"--heads {folder}: the head for {task} reads hidden states of size {size}, but "
            f"the run's rnn_units is {units}; it belongs to another model"
        )
    inputs = fields.get("inputs", "hidden")
    why = inputs_mismatch(inputs, model.config.model.representation)
    if why is not None:
        raise UsageError(f"--heads {folder}: the head for {task} reads {inputs}, but {why}")
    return directory
