"""What a reward head reads for frame t's reward, by name (``rewards train --inputs``).

- ``"hidden"`` (the paper's, the default): h_{t-1}, the RNN state that conditions frame t;
- ``"hidden+keypoints"``: h_{t-1} plus frame t's keypoints, a Struct-VRNN run's own per-frame
  representation (``representation="keypoints"``; x, y clamped to [-1, 1], scale to [0, 1]);
- ``"hidden+features"``: h_{t-1} plus frame t's encoder features, a CNN-VRNN run's own
  per-frame representation (``representation="cnn"``; ``K * 3`` values, all clamped to
  [-1, 1]).

So each model is compared on the same kind of input: h_{t-1}, or h_{t-1} plus its own
representation of frame t. A head that adds a per-frame input fits one representation only:
:func:`frame_inputs` names it, :func:`inputs_mismatch` says why another is refused.

A torch-free module: the command line reads the choices while it builds its parser.

>>> frame_inputs("keypoints"), frame_inputs("cnn")
('hidden+keypoints', 'hidden+features')
>>> inputs_mismatch("hidden+features", "cnn") is None
True
"""

from __future__ import annotations

from keypoint_wm.errors import UsageError

__all__ = [
    "FRAME_REPRESENTATION",
    "INPUTS",
    "INPUT_MEANINGS",
    "check_inputs",
    "frame_inputs",
    "inputs_help",
    "inputs_mismatch",
]

INPUT_MEANINGS = {
    "hidden": "the RNN state h_{t-1}, as in the paper",
    "hidden+keypoints": "h_{t-1} plus the keypoints detected in frame t (Struct-VRNN runs)",
    "hidden+features": "h_{t-1} plus the encoder's features of frame t (CNN-VRNN runs)",
}
"""Each input's meaning, for help texts."""

INPUTS = tuple(INPUT_MEANINGS)
"""What a head can read: ``"hidden"``, ``"hidden+keypoints"``, ``"hidden+features"``."""

FRAME_REPRESENTATION = {"hidden+keypoints": "keypoints", "hidden+features": "cnn"}
"""The inputs that add frame t's per-frame representation -> the model ``representation``
(:data:`keypoint_wm.model.config.REPRESENTATIONS`) whose per-frame output it is."""

_WHAT = {"keypoints": "keypoints", "cnn": "encoder features"}


def frame_inputs(representation: str) -> str:
    """The input that adds a run's own representation of frame t to h_{t-1}."""
    for inputs, own in FRAME_REPRESENTATION.items():
        if own == representation:
            return inputs
    raise ValueError(f"unknown representation {representation!r}")


def inputs_mismatch(inputs: str, representation: str) -> str | None:
    """Why a head reading ``inputs`` cannot read a run of ``representation`` (one clause),
    or None when it can (``"hidden"`` reads any run)."""
    own = FRAME_REPRESENTATION.get(inputs)
    if own is None or own == representation:
        return None
    per_frame = _WHAT.get(representation, f"{representation!r} outputs")
    return (
        f"the run's representation is {representation!r}, whose per-frame features are its "
        f"{per_frame}, not {_WHAT[own]}; read {frame_inputs(representation)} (or hidden)"
    )


def check_inputs(inputs: str, representation: str) -> None:
    """Refuse, in one line naming ``--inputs``, a head input the run cannot give.

    Raises:
        UsageError: ``inputs`` is unknown or adds a per-frame input of another
            representation (``hidden+keypoints`` on a CNN-VRNN run, ``hidden+features`` on a
            Struct-VRNN one).
    """
    if inputs not in INPUTS:
        raise UsageError(f"--inputs must be one of {', '.join(INPUTS)}, got {inputs!r}")
    why = inputs_mismatch(inputs, representation)
    if why is not None:
        raise UsageError(f"--inputs {inputs}: {why}")


def inputs_help() -> str:
    """The inputs and their meanings, for ``--inputs``' help."""
    return "; ".join(f"{name}: {meaning}" for name, meaning in INPUT_MEANINGS.items())
