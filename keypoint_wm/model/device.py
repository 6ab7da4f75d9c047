"""Which device a command runs on: one rule for every command that takes ``--device``.

The rule (docs/design.md, "Devices"): no ``--device`` means the first CUDA device when one is
available (under ``torchrun``, ``cuda:LOCAL_RANK``), else the CPU. An explicit name is
validated before any work starts: a malformed name, or a CUDA device that this machine does
not have, is a :class:`~keypoint_wm.errors.UsageError` naming the flag. A CUDA device always
comes back with its index (``cuda`` -> ``cuda:0``, or ``cuda:LOCAL_RANK`` under ``torchrun``), which ``torch.cuda.set_device`` and
DistributedDataParallel require.

>>> resolve_device("cpu")
device(type='cpu')
>>> resolve_device("banana")
Traceback (most recent call last):
...
keypoint_wm.errors.UsageError: --device: 'banana' is not a device; expected cpu, cuda or cuda:N
"""

from __future__ import annotations

import os
import platform

import torch

from keypoint_wm.errors import UsageError


def resolve_device(name: str | torch.device | None, flag: str = "--device") -> torch.device:
    """``name`` (or the default rule when None) as a validated, indexed ``torch.device``."""
    if name is None or name == "":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise UsageError(
            f"{flag}: {str(name)!r} is not a device; expected cpu, cuda or cuda:N"
        ) from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type != "cuda":
        raise UsageError(f"{flag}: {str(name)!r} is not supported; expected cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise UsageError(
            f"{flag} {name}: CUDA is not available on this machine (torch "
            f"{torch.__version__}); use --device cpu"
        )
    index = device.index
    if index is None:  # under torchrun each process takes its own GPU
        index = int(os.environ.get("LOCAL_RANK", torch.cuda.current_device()))
    if index >= torch.cuda.device_count():
        raise UsageError(
            f"{flag} {name}: this machine has {torch.cuda.device_count()} CUDA device(s)"
        )
    return torch.device("cuda", index)


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name (from /proc/cpuinfo where there is one)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
