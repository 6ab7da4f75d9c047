"""``scripts/as_avx2.sh``: a command run as an AVX2-only CPU would run it.

The speed figures for AVX2-only CPUs (docs/measurements.md) come from this script on a
machine with AVX-512; they are only meaningful if, under it, PyTorch dispatches AVX2 kernels
and the precision rule sees no native bf16, so ``--precision auto`` picks what an AVX2 CPU
gets.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "as_avx2.sh"

PROBE = (
    "import torch; from keypoint_wm.model.precision import preferred_precision; "
    "print(torch.backends.cpu.get_cpu_capability(), preferred_precision('cpu'))"
)


@pytest.mark.skipif(
    torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"),
    reason="needs an x86 CPU with AVX2",
)
def test_as_avx2_caps_kernels_and_the_precision_rule():
    result = subprocess.run(
        [str(SCRIPT), sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["AVX2", "channels_last"]


def test_as_avx2_without_a_command_is_a_usage_error():
    result = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "usage: scripts/as_avx2.sh COMMAND" in result.stderr


def test_the_script_exports_the_packages_avx2_cap():
    """scripts/as_avx2.sh and ``reproduce bench-cpu`` cap the same kernels."""
    from keypoint_wm.benchmark import AVX2_CAP

    exports = [line for line in SCRIPT.read_text().splitlines() if line.startswith("export ")]
    assert len(exports) == 1
    pairs = dict(item.split("=", 1) for item in exports[0].removeprefix("export ").split())
    assert pairs == AVX2_CAP
