#!/usr/bin/env bash
# Reward prediction on a CPU (paper Fig. 8; docs/guide.md, "Reward prediction"): Struct-VRNN
# against CNN-VRNN, both the dmcs-cpu preset on the same data and budget, SEEDS world-model
# seeds each; then one reward head per (run, task) trained on the test split's episodes and
# scored on whole held-out episodes. Resumable: run the same command again after a kill.
#
#   scripts/cpu_rewards.sh [OUT_DIR]
#
# Writes OUT/summary.txt (CPU, minutes per run, the table) and OUT/rewards.json|png: three
# columns, Struct-VRNN with heads reading the RNN state (the paper's) or the RNN state plus
# frame t's keypoints, and CNN-VRNN reading the RNN state (its per-frame features are CNN
# features, which a head may not read). Choose between Struct-VRNN's two inputs on the
# "mean (validation)" row (each head's whole held-out episodes of its training windows), never
# on the test rows.
#
# Knobs: SEEDS (default 3), EPISODES (per task, default 250), SIDE_BY_SIDE (1, the default: a
# seed's two variants train at the same time with one thread each, 1.29x the steps per second
# on two cores; 0: one after another with all threads), PLACEMENT (train --data-placement,
# default auto), KWM (the command, default "keypoint-wm"), HELD_OUT (default 0; N > 0: also
# collect N more episodes per task with another seed, which no world model sees, and give
# them to the heads with `rewards --held-out-data`: heads in RUN/rewards_heldout_<inputs>,
# figures in OUT/rewards_heldout.json|png).
set -uo pipefail
OUT_DIR=${1:-rewards-cpu}
SEEDS=${SEEDS:-3}
EPISODES=${EPISODES:-250}
SIDE_BY_SIDE=${SIDE_BY_SIDE:-1}
PLACEMENT=${PLACEMENT:-auto}
HELD_OUT=${HELD_OUT:-0}
read -r -a KWM <<<"${KWM:-keypoint-wm}"
TASKS=acrobot-swingup,cartpole-balance,cheetah-run,reacher-easy,walker-stand,walker-walk
DATA="$OUT_DIR/dmcs$EPISODES"
mkdir -p "$OUT_DIR"
{
  echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)"
  echo "flags: $(grep -o -w -E 'avx2|avx512f|avx512_bf16|amx_bf16' /proc/cpuinfo | sort -u | xargs)"
} | tee -a "$OUT_DIR/summary.txt"

# The same command finishes a killed collection.
MUJOCO_GL=${MUJOCO_GL:-egl} "${KWM[@]}" collect --domains all --episodes "$EPISODES" \
  --out "$DATA" --quiet >"$OUT_DIR/collect.log" 2>&1 || {
  echo "collect failed: see $OUT_DIR/collect.log" >&2
  exit 1
}

train_one() {  # VARIANT SEED: one world model, resumed if it was started
  local variant=$1 seed=$2 run="$OUT_DIR/runs/$1/seed_$2" extra=() resume=() start rc
  [ "$variant" = cnn ] && extra=(--set model.representation=cnn)
  [ -f "$run/config.json" ] && resume=(--resume)
  start=$(date +%s)
  "${KWM[@]}" train --data "$DATA" --preset dmcs-cpu --seed "$seed" --out "$run" \
    --data-placement "$PLACEMENT" "${extra[@]}" "${resume[@]}" --quiet \
    >"$OUT_DIR/train_${variant}_$seed.log" 2>&1
  rc=$?
  echo "$variant seed $seed: exit $rc; $(awk "BEGIN {printf \"%.1f\", ($(date +%s) - $start) \
    / 60}") min (threads: ${OMP_NUM_THREADS:-all}); last probe (validation) $(tail -n 1 \
    "$run/probe.csv" 2>/dev/null)" | tee -a "$OUT_DIR/summary.txt"
}

for ((seed = 0; seed < SEEDS; seed++)); do
  if [ "$SIDE_BY_SIDE" = 1 ]; then
    OMP_NUM_THREADS=1 train_one struct "$seed" &
    OMP_NUM_THREADS=1 train_one cnn "$seed" &
    wait
  else
    train_one struct "$seed"
    train_one cnn "$seed"
  fi
done

held_out=() suffix=""
if [ "$HELD_OUT" -gt 0 ]; then
  # Another seed than the data's (0): new episodes; the same command finishes a killed run.
  MUJOCO_GL=${MUJOCO_GL:-egl} "${KWM[@]}" collect --domains all --episodes "$HELD_OUT" \
    --seed 11 --out "$OUT_DIR/heldout$HELD_OUT" --quiet >"$OUT_DIR/collect_heldout.log" 2>&1 || {
    echo "collect failed: see $OUT_DIR/collect_heldout.log" >&2
    exit 1
  }
  held_out=(--held-out-data "$OUT_DIR/heldout$HELD_OUT") suffix=_heldout
fi

# One call: Struct-VRNN's heads reading the RNN state (the paper's) and the RNN state plus
# frame t's keypoints, CNN-VRNN's reading the RNN state; each run is observed once.
args=()
for inputs in hidden hidden+keypoints; do
  for ((seed = 0; seed < SEEDS; seed++)); do
    args+=(--run "$OUT_DIR/runs/struct/seed_$seed" --heads
      "$OUT_DIR/runs/struct/seed_$seed/rewards${suffix}_$inputs" --label "Struct-VRNN ($inputs)"
      --inputs "$inputs")
  done
done
for ((seed = 0; seed < SEEDS; seed++)); do
  args+=(--run "$OUT_DIR/runs/cnn/seed_$seed" --heads
    "$OUT_DIR/runs/cnn/seed_$seed/rewards${suffix}_hidden" --label CNN-VRNN --inputs hidden)
done
"${KWM[@]}" rewards evaluate "${args[@]}" --data "$DATA" "${held_out[@]}" --tasks "$TASKS" \
  --stride 5 --train-missing --json "$OUT_DIR/rewards$suffix.json" \
  --plot "$OUT_DIR/rewards$suffix.png" --quiet 2>"$OUT_DIR/rewards$suffix.log" |
  tee -a "$OUT_DIR/summary.txt"
