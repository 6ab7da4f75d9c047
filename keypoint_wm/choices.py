"""The named choices of settings and flags: one home each, torch-free.

The command line builds its parser from these without importing torch, gymnasium or SB3;
the code that acts on a choice reads the same tuple. Nothing here may import more than the
standard library.

>>> PRECISION_CHOICES
('auto', 'fp32', 'channels_last', 'bf16')
"""

from __future__ import annotations

__all__ = [
    "AGENT_VARIANTS",
    "DATA_PLACEMENTS",
    "DEVICE_HELP",
    "DREAM_ACTION_POLICY",
    "DREAM_POLICIES",
    "DREAM_STARTS",
    "GRAPH_MODES",
    "PAPER_TASKS",
    "PRECISIONS",
    "PRECISION_CHOICES",
    "is_dream_policy",
]

DEVICE_HELP = (
    "cpu, cuda or cuda:N (default: cuda:LOCAL_RANK under torchrun, else cuda:0 when CUDA is "
    "available, else cpu)"
)
"""The ``--help`` text of every ``--device`` flag (the rule: ``model.device.resolve_device``)."""

PRECISIONS = ("fp32", "channels_last", "bf16")
"""Precision modes of the image networks (:meth:`StructVRNN.set_precision`)."""

PRECISION_CHOICES = ("auto", *PRECISIONS)
"""``train.precision`` and ``--precision``: ``auto`` (the fastest safe mode on the device,
``model.precision.preferred_precision``) or one of :data:`PRECISIONS`."""

DATA_PLACEMENTS = ("auto", "device", "loader")
"""Where training windows come from: ``"device"`` holds the training split on the training
device (:class:`~keypoint_wm.data.device_windows.DeviceWindows`), ``"loader"`` reads files
with a DataLoader, ``"auto"`` picks the device on CUDA when the data fits."""

GRAPH_MODES = ("auto", "on", "off")
"""CUDA-graph capture of the training step: ``"auto"`` on one CUDA device (not under
``torchrun``), ``"on"`` requires CUDA, ``"off"`` always eager."""

AGENT_VARIANTS = ("random", "state", "pixels", "latent", "dream")
"""The variants of ``evaluate agents`` (``envs.agents.variants``)."""

DREAM_STARTS = ("any", "initial")
"""Where a dream episode starts in the run's data episodes (``envs.latent.dream``)."""

DREAM_POLICIES = ("zero", "plus", "minus", "random", "sine", "pd", "pd-flipped")
"""The scripted policies of ``evaluate dream-fidelity`` (``pd`` ones: cartpole only; a
Gymnasium id's ``Discrete`` actions: ``random`` and :data:`DREAM_ACTION_POLICY` ones)."""

DREAM_ACTION_POLICY = "action-"
"""``action-<k>``: ``evaluate dream-fidelity``'s policy that takes a Gymnasium id's
``Discrete`` action k (counted from the space's ``start``) at every step."""


def is_dream_policy(name: str) -> bool:
    """Whether ``name`` is an ``evaluate dream-fidelity`` policy: one of
    :data:`DREAM_POLICIES` or ``action-<k>``.

    >>> is_dream_policy("pd"), is_dream_policy("action-3"), is_dream_policy("action-x")
    (True, True, False)
    """
    k = name.removeprefix(DREAM_ACTION_POLICY)
    return name in DREAM_POLICIES or (k != name and k.isdecimal() and k == str(int(k)))


PAPER_TASKS: tuple[str, ...] = (
    "acrobot-swingup",
    "cartpole-balance",
    "cheetah-run",
    "reacher-easy",
    "walker-stand",
    "walker-walk",
)
"""The six DeepMind Control Suite tasks of the paper (Minderer et al. 2019), as
``"domain-task"`` names (``envs.registration`` checks each against ``dm_control``)."""
