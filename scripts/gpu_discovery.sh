#!/usr/bin/env bash
# Robust discovery on a GPU: basketball-cpu on several Basketball draws x 2 training seeds,
# all trained side by side for a fixed wall time, then `evaluate tracking` (test split) on
# each draw's replicas. Answers "does the preset find all six objects on data nobody tuned
# on?" at the step the time limit allows (the step is reported with each figure).
#
#   scripts/gpu_discovery.sh [OUT_DIR]    (needs `make gpu-wheels` first, like gpu_check.sh)
#
# Knobs: DRAWS (data seeds, default "11 12 13"), TRAIN_SECONDS (default 140), SEQUENCES
# (default 1000), DEVICE, PYTHON.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-/tmp/gpu_discovery}}
DRAWS=${DRAWS:-11 12 13}
TRAIN_SECONDS=${TRAIN_SECONDS:-140}
SEQUENCES=${SEQUENCES:-1000}
DEVICE=${DEVICE:-cuda}
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d /tmp/kwm_discovery.XXXX)
mkdir -p "$OUT_DIR"
"$PYTHON" -m pip install --quiet --no-index --no-deps --target "$WORK/site" .whl/*.whl .whl/deps/*.whl
export PYTHONPATH=$WORK/site
cd "$WORK"  # not the source tree: `python -m` would import ./keypoint_wm instead of the wheel
KWM=("$PYTHON" -m keypoint_wm.cli)

for draw in $DRAWS; do
  "${KWM[@]}" data basketball --out "data_$draw" --seed "$draw" --sequences "$SEQUENCES" --quiet \
    >"$OUT_DIR/data_$draw.log" 2>&1 &
done
wait
start=$(date +%s)
for draw in $DRAWS; do
  timeout "$TRAIN_SECONDS" "${KWM[@]}" train --data "data_$draw" --preset basketball-cpu \
    --device "$DEVICE" --seeds 2 --out "runs_$draw" --quiet >"$OUT_DIR/train_$draw.log" 2>&1 &
done
wait
pkill -f "multiprocessing.spawn" 2>/dev/null  # replicas outlive their killed parent
sleep 2
echo "trained for $(($(date +%s) - start)) s" | tee "$OUT_DIR/summary.txt"
for draw in $DRAWS; do
  "${KWM[@]}" evaluate tracking --run "runs_$draw" --data "data_$draw" --device "$DEVICE" \
    --json "$OUT_DIR/tracking_$draw.json" --quiet >"$OUT_DIR/tracking_$draw.log" 2>&1 &
done
wait
for draw in $DRAWS; do
  for run in runs_"$draw"/seed_*; do
    step=$(ls "$run/checkpoints" 2>/dev/null | grep -o '[0-9]*' | sort -n | tail -1)
    echo "draw $draw $(basename "$run"): checkpoint step ${step:-none}; probe $(tail -n 1 \
      "$run/probe.csv" 2>/dev/null)" | tee -a "$OUT_DIR/summary.txt"
  done
  tail -n 4 "$OUT_DIR/tracking_$draw.log" | tee -a "$OUT_DIR/summary.txt"
done
tar -czf "$WORK/discovery.tar.gz" -C "$OUT_DIR" . && find "$OUT_DIR" -mindepth 1 \
  ! -name summary.txt -delete && mv "$WORK/discovery.tar.gz" "$OUT_DIR/"
