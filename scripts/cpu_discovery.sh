#!/usr/bin/env bash
# Robust discovery on a CPU: basketball-cpu trained to its end on several Basketball draws x
# training seeds, one run at a time (the machine's cores all go to the run), each followed by
# `evaluate tracking` on the draw's test split. Writes OUT/summary.txt (minutes and the
# validation probe's last row per run) and OUT/tracking_<draw>.json (R^2 per object, mean
# over the seeds with their 95% interval, and per run).
#
#   scripts/cpu_discovery.sh [OUT_DIR]
#
# Knobs: DRAWS (data seeds, default "11 12 13"), SEEDS (training seeds, default 2),
# SEQUENCES (default 1000), KWM (the command, default "keypoint-wm").
set -uo pipefail
OUT_DIR=${1:-discovery}
DRAWS=${DRAWS:-11 12 13}
SEEDS=${SEEDS:-2}
SEQUENCES=${SEQUENCES:-1000}
read -r -a KWM <<<"${KWM:-keypoint-wm}"
mkdir -p "$OUT_DIR"
{
  echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)"
  echo "flags: $(grep -o -w -E 'avx2|avx512f|avx512_bf16|amx_bf16' /proc/cpuinfo | sort -u | xargs)"
} | tee "$OUT_DIR/summary.txt"
for draw in $DRAWS; do
  data="$OUT_DIR/data_$draw"
  [ -d "$data" ] || "${KWM[@]}" data basketball --out "$data" --seed "$draw" \
    --sequences "$SEQUENCES" --quiet
  for ((seed = 0; seed < SEEDS; seed++)); do
    run="$OUT_DIR/runs_$draw/seed_$seed"
    resume=()
    [ -f "$run/config.json" ] && resume=(--resume)  # a killed script picks up where it was
    start=$(date +%s)
    "${KWM[@]}" train --data "$data" --preset basketball-cpu --seed "$seed" --out "$run" \
      "${resume[@]}" --quiet >"$OUT_DIR/train_${draw}_$seed.log" 2>&1
    rc=$?
    minutes=$(awk "BEGIN {printf \"%.1f\", ($(date +%s) - $start) / 60}")
    echo "draw $draw seed $seed: exit $rc; $minutes min; last probe (validation) $(tail -n 1 \
      "$run/probe.csv")" | tee -a "$OUT_DIR/summary.txt"
  done
  "${KWM[@]}" evaluate tracking --run "$OUT_DIR/runs_$draw" --data "$data" \
    --json "$OUT_DIR/tracking_$draw.json" --quiet 2>&1 | tail -n 3 | tee -a "$OUT_DIR/summary.txt"
done
