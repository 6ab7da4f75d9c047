#!/usr/bin/env bash
# The CPU speed figures (docs/measurements.md), side by side in one run, natively and as an
# AVX2-only CPU would run them (scripts/as_avx2.sh): the latent wrapper against the bare env
# (`bench wrapper`, 1 and 8 envs), where a single env's step goes (scripts/profile_wrapper.py),
# and the training step (`bench train`) of basketball-cpu and at the paper's DMCS size.
# Run it with nothing else on the machine (its timings: docs/measurements.md).
#
#   scripts/cpu_bench.sh [OUT_DIR]          (KWM: the command, default "keypoint-wm";
#                                            PYTHON: default "python3")
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-cpu-bench}
read -r -a KWM <<<"${KWM:-keypoint-wm}"
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT_DIR"
{
  echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)"
  echo "flags: $(grep -o -w -E 'avx2|avx512f|avx512_bf16|amx_bf16' /proc/cpuinfo | sort -u | xargs)"
  echo "cores: $(nproc)"
} | tee "$OUT_DIR/summary.txt"
for isa in native avx2; do
  run=()
  [ "$isa" = avx2 ] && run=(scripts/as_avx2.sh)
  echo "== $isa" | tee -a "$OUT_DIR/summary.txt"
  "${run[@]}" "${KWM[@]}" bench wrapper --quiet --json "$OUT_DIR/wrapper_$isa.json" 2>&1 \
    | grep -v WARNING | tee -a "$OUT_DIR/summary.txt"
  "${run[@]}" "$PYTHON" scripts/profile_wrapper.py --steps 150 2>&1 | grep -v WARNING \
    | tee -a "$OUT_DIR/summary.txt"
  "${run[@]}" "${KWM[@]}" bench train --device cpu --preset basketball-cpu --steps 20 \
    --warmup 3 --json "$OUT_DIR/train_basketball_cpu_$isa.json" 2>&1 | tee -a "$OUT_DIR/summary.txt"
  "${run[@]}" "${KWM[@]}" bench train --device cpu --preset dmcs --steps 2 --warmup 1 \
    --json "$OUT_DIR/train_dmcs_$isa.json" 2>&1 | tee -a "$OUT_DIR/summary.txt"
done
