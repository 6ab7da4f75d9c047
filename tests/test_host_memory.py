"""``keep_freed_memory``: a large CPU tensor freed stays in the process for the next one."""

from __future__ import annotations

import subprocess
import sys

import pytest

from keypoint_wm.host_memory import _glibc

pytestmark = pytest.mark.skipif(_glibc() is None, reason="glibc's mallopt only")

# Resident memory (MiB) after a 256 MiB tensor is written and freed, and whether a 240 MiB
# one written next (as the next step's activations) needs new pages: minor page faults. (A
# request of exactly the freed size may not fit the freed chunk: PyTorch's aligned
# allocations ask glibc for a little more.)
PROBE = """
import resource, sys, torch
from keypoint_wm.host_memory import keep_freed_memory, keeps_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory() and keeps_freed_memory()
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
base = rss()
x = torch.ones(64 * 2**20); del x  # 256 MiB, every page touched
after = rss()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
y = torch.ones(60 * 2**20)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
print(after - base, faults)
"""


def _probe(mode: str) -> tuple[float, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                         check=True, timeout=120).stdout.split()  # fmt: skip
    return float(out[0]), int(out[1])


def test_kept_memory_is_reused_instead_of_faulted_in_again() -> None:
    kept_rss, kept_faults = _probe("keep")
    plain_rss, plain_faults = _probe("plain")
    assert kept_rss > 200 and plain_rss < 50  # glibc unmapped it, unless told to keep it
    # 240 MiB is 61,440 pages of 4 KiB (fewer faults with transparent huge pages): the kept
    # ones are written again without faulting them in.
    assert kept_faults < 3_000 and kept_faults < plain_faults
