#!/usr/bin/env bash
# Run a command as an AVX2-only CPU would: PyTorch's own kernels (ATen), oneDNN (the
# convolutions, and the check that decides whether bf16 is native) and MKL are all capped
# at AVX2, so `--precision auto` picks channels_last fp32 and no AVX-512 or AMX kernel runs.
# The clock, caches and core count stay this machine's: a figure measured this way is an
# estimate of an AVX2 CPU's, to quote with this machine's CPU named and "AVX2-capped".
#
#   scripts/as_avx2.sh keypoint-wm bench wrapper --json bench-wrapper-avx2.json
#   scripts/as_avx2.sh python -c "import torch; print(torch.backends.cpu.get_cpu_capability())"
set -euo pipefail
if [ "$#" -eq 0 ]; then
  echo "usage: scripts/as_avx2.sh COMMAND [ARGS...]" >&2
  exit 2
fi
export ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
exec "$@"
