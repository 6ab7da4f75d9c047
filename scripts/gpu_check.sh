#!/usr/bin/env bash
# The GPU check: the CUDA path end to end on one GPU in about 6 minutes.
#
# Runs where only torch (CUDA), numpy, safetensors, tensorboard, tqdm, pyyaml, matplotlib and
# imageio are installed and no registry is reachable: `make gpu-wheels` (here) builds this
# project's wheel and downloads the pure-Python wheels it needs beside it into .whl/; the
# check installs them into a private --target directory.
#
#   scripts/gpu_check.sh [OUT_DIR]     (OUT_DIR default: $OUT, else /tmp/gpu_check)
#
# Each part runs under its own time limit, logs to OUT_DIR/<part>.log and adds one line to
# OUT_DIR/summary.txt (exit code and seconds); JSON results land in OUT_DIR too. Knobs:
# STEPS (training steps of the basketball-cpu runs, default 4000), SEEDS (default 3),
# SEQUENCES (Basketball sequences, default 1000), ONLY (space-separated part names to run,
# default all); DEVICE=cpu PYTHON=.venv/bin/python with
# small STEPS and SEQUENCES is a dry run of the script on a CPU machine.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-/tmp/gpu_check}}
STEPS=${STEPS:-4000}
SEEDS=${SEEDS:-3}
SEQUENCES=${SEQUENCES:-1000}
DEVICE=${DEVICE:-cuda}
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d /tmp/kwm_gpu.XXXX)
SITE=$WORK/site
DATA=$WORK/basketball
mkdir -p "$OUT_DIR"
: >"$OUT_DIR/summary.txt"

part() {  # part NAME LIMIT_S command...
  local name=$1 limit=$2
  shift 2
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then return 0; fi
  local start rc ms
  start=$(date +%s%N)
  timeout "$limit" "$@" >"$OUT_DIR/$name.log" 2>&1
  rc=$?
  ms=$((($(date +%s%N) - start) / 1000000))
  printf '%-18s rc=%-3s %4d.%01d s\n' "$name" "$rc" $((ms / 1000)) $((ms % 1000 / 100)) \
    | tee -a "$OUT_DIR/summary.txt"
  tail -n "${TAIL:-6}" "$OUT_DIR/$name.log" | sed 's/^/    /'
}

"$PYTHON" -m pip install --quiet --no-index --no-deps --target "$SITE" .whl/*.whl .whl/deps/*.whl
export PYTHONPATH=$SITE
REPO=$PWD
cd "$WORK"  # not the source tree: `python -m` would import ./keypoint_wm instead of the wheel
KWM=("$PYTHON" -m keypoint_wm.cli)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
  >"$OUT_DIR/gpu.txt" 2>&1 || true
"$PYTHON" -c "import torch, keypoint_wm; print('torch', torch.__version__, 'keypoint_wm', \
keypoint_wm.__version__, keypoint_wm.__file__)" | tee -a "$OUT_DIR/gpu.txt"

part data 120 "${KWM[@]}" data basketball --out "$DATA" --sequences "$SEQUENCES" --quiet
part reward_data 120 "$PYTHON" "$REPO/scripts/gpu_reward_data.py" "$DATA"
# The CUDA tests, from outside the source tree so that the installed wheel is imported.
part tests_cuda 150 bash -c "cd $WORK && $PYTHON -m pytest -q -o addopts='' \
  -p no:cacheprovider -m cuda $REPO/tests/test_cuda.py"
part bench_dmcs 90 "${KWM[@]}" bench train --device "$DEVICE" --preset dmcs --steps "${BENCH_STEPS:-20}" --warmup 3 \
  --json "$OUT_DIR/bench_dmcs.json"
part bench_bbcpu 60 "${KWM[@]}" bench train --device "$DEVICE" --preset basketball-cpu --steps "${BENCH_STEPS:-30}" \
  --warmup 3 --json "$OUT_DIR/bench_basketball_cpu.json"
part train_device 150 "${KWM[@]}" train --data "$DATA" --preset basketball-cpu --device "$DEVICE" \
  --steps "$STEPS" --out "$WORK/bb" --quiet
part tracking 90 "${KWM[@]}" evaluate tracking --run "$WORK/bb" --data "$DATA" --device "$DEVICE" \
  --json "$OUT_DIR/tracking.json" --quiet
part video 90 "${KWM[@]}" evaluate video --run "$WORK/bb" --data "$DATA" --device "$DEVICE" \
  --samples 20 --max-windows 16 --json "$OUT_DIR/video.json" --quiet
part rewards 90 "${KWM[@]}" rewards train --run "$WORK/bb" --data "$DATA" --device "$DEVICE" \
  --stride 5 --quiet
part wrapper 60 "$PYTHON" "$REPO/scripts/gpu_wrapper_check.py" "$WORK/bb" "$DATA" --device "$DEVICE" \
  --json "$OUT_DIR/wrapper.json"
part train_seeds 200 "${KWM[@]}" train --data "$DATA" --preset basketball-cpu --device "$DEVICE" \
  --steps "$STEPS" --seeds "$SEEDS" --out "$WORK/bb_seeds" --quiet
part train_loader 90 "${KWM[@]}" train --data "$DATA" --preset basketball-cpu --device "$DEVICE" \
  --steps 1000 --data-placement loader --out "$WORK/bb_loader" --quiet
part steps_per_second 60 "$PYTHON" - "$WORK" "$OUT_DIR/steps_per_second.json" <<'EOF'
import json, sys
from pathlib import Path
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

work, out = Path(sys.argv[1]), Path(sys.argv[2])
result = {}
for run in [work / "bb", work / "bb_loader", *sorted((work / "bb_seeds").glob("seed_*"))]:
    if not (run / "tensorboard").exists():
        continue
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = [t for t in events.Tags()["scalars"] if "steps_per_second" in t]
    values = [e.value for e in events.Scalars(tags[0])][1:] if tags else []  # drop warm-up
    values.sort()
    median = values[len(values) // 2] if values else None
    probe = run / "probe.csv"
    result[run.name] = {"median_steps_per_second": median, "windows": len(values),
                        "probe_last": probe.read_text().splitlines()[-1] if probe.exists() else None}
print(json.dumps(result, indent=2))
out.write_text(json.dumps(result, indent=2) + "\n")
EOF
cp "$WORK"/bb/probe.csv "$OUT_DIR/probe_bb.csv" 2>/dev/null || true
echo "summary:" && cat "$OUT_DIR/summary.txt"
# PACK=1: leave only one archive and the summary, for machines that hand back few files.
if [ -n "${PACK:-}" ]; then
  tar -czf "$WORK/gpu_check.tar.gz" -C "$OUT_DIR" . \
    && find "$OUT_DIR" -mindepth 1 ! -name summary.txt -delete \
    && mv "$WORK/gpu_check.tar.gz" "$OUT_DIR/"
fi
