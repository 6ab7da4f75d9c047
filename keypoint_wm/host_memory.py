"""Freed host memory kept in the process, so that a CPU step reuses the last step's pages.

PyTorch has no caching allocator for CPU tensors: each one is a ``malloc`` and a ``free``.
glibc serves a request above its mmap threshold (32 MiB at most) with a fresh ``mmap`` and
unmaps it on ``free``, so every large activation of every training step arrives as pages the
kernel must fault in and zero one at a time, and leaves again at the end of the step. At the
paper's DMCS size a step allocates and frees gigabytes this way.

:func:`keep_freed_memory` tells glibc (``mallopt``) to serve every request from its heap
(``M_MMAP_MAX = 0``) and never to hand the heap's free top back to the kernel
(``M_TRIM_THRESHOLD`` = the largest size), so the next step reuses the pages of the one
before. The process then keeps its peak resident memory, as PyTorch's CUDA caching allocator
keeps its peak device memory. Measured in docs/measurements.md; the rule is in
docs/design.md, "Host memory on a CPU".

``keypoint-wm train`` on a CPU and the fast path of ``keypoint-wm bench train`` call it; it is
a no-op where the C library is not glibc (macOS, musl, Windows).
"""

from __future__ import annotations

import ctypes
import sys

__all__ = ["keep_freed_memory", "keeps_freed_memory"]

M_TRIM_THRESHOLD = -1
"""glibc's ``mallopt`` parameter: free heap top above this many bytes goes back to the
kernel (-1 as the C ``int`` becomes the largest ``size_t``: never)."""

M_MMAP_MAX = -4
"""glibc's ``mallopt`` parameter: how many requests may be served by ``mmap`` at once."""

_kept = False


def _glibc() -> ctypes.CDLL | None:
    """The process's C library when it is glibc, else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return libc


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory in the process (see the module docstring).

    Affects the whole process from the call on, and cannot be undone in it. Returns whether
    the setting is in force (False where the C library is not glibc or refused it).
    """
    global _kept
    if _kept:
        return True
    libc = _glibc()
    if libc is None:
        return False
    _kept = libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, -1) == 1
    return _kept


def keeps_freed_memory() -> bool:
    """Whether :func:`keep_freed_memory` is in force in this process."""
    return _kept
