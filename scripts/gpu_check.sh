#!/usr/bin/env bash
# `keypoint-wm reproduce gpu-check` on a GPU machine without a package registry. It stays
# outside the package because it installs the package: the wheels `make gpu-wheels` put in .whl/.
#
#   scripts/gpu_check.sh [OUT_DIR]     (OUT_DIR default: $OUT, else /tmp/gpu_check)
#
# The check itself (its units and settings) is keypoint_wm/reproduce/gpu_check.py; on a CPU,
# `keypoint-wm reproduce gpu-check --smoke --out DIR` runs its units on a tiny setting.
# Datasets and runs go to a temporary folder; OUT_DIR receives three files: results.tar.gz
# (the unit records and the page), gpu-check.md (the page) and logs.tar.gz (each unit's log).
# To publish the records, in the repository (the page and its README row are regenerated):
#   tar -xzf OUT_DIR/results.tar.gz -C docs/results && keypoint-wm reproduce gpu-check --out /tmp/x --report-only
set -uo pipefail
cd "$(dirname "$0")/.."  # the repository's root: the check runs tests/test_cuda.py from here
OUT_DIR=${1:-${OUT:-/tmp/gpu_check}}
WORK=$(mktemp -d /tmp/kwm_gpu.XXXX)
mkdir -p "$OUT_DIR" "$WORK/results" "$WORK/out/logs"
python3 -m pip install --quiet --no-index --no-deps --target "$WORK/site" .whl/*.whl \
  .whl/deps/*.whl || exit
# The installed wheel, never the source tree: PYTHONSAFEPATH keeps `python -m` from putting
# the current folder (this checkout, whose keypoint_wm/ lacks envs/) first on the path.
export PYTHONPATH=$WORK/site PYTHONSAFEPATH=1
python3 -c "import keypoint_wm; print('keypoint_wm', keypoint_wm.__version__, keypoint_wm.__file__)"
# Under 10 minutes (a lent machine's limit per command), so that what finished comes back.
timeout 540 python3 -m keypoint_wm.cli reproduce gpu-check --out "$WORK/out" \
  --results "$WORK/results"
rc=$?
tar -czf "$OUT_DIR/results.tar.gz" -C "$WORK/results" .
cp "$WORK/results/gpu-check.md" "$OUT_DIR/" 2>/dev/null
tar -czf "$OUT_DIR/logs.tar.gz" -C "$WORK/out" logs
exit $rc
