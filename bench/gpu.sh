#!/usr/bin/env bash
# GPU figures of bench/scale.py for synthetic-ml-1m and synthetic-ml-25m (about 8 minutes on one
# H100/H200; the data sets are generated first, seed 0). Writes its table, the per-stage log and
# the plot to $OUT if set, else to docs/. Wheels of packages the GPU image lacks may wait in
# .cache/whl (installed into /tmp/site).
#   bash bench/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if compgen -G ".cache/whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .cache/whl/*.whl
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export CONTEXTFLIX_DATA_DIR="${CONTEXTFLIX_DATA_DIR:-$PWD/.cache/data}"
target="${OUT:-docs}"
mkdir -p "$target" "$CONTEXTFLIX_DATA_DIR"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$target/gpu.txt"
for like in ml-1m ml-25m; do
  /usr/bin/time -f "synthesize $like: %e s, peak RSS %M KB" \
    python3 -m contextflix.data synthesize --like "$like" 2>&1 | tee -a "$target/gpu.txt"
done
# each data set's row goes to the log as soon as it is measured
python3 bench/scale.py --device cuda --datasets synthetic-ml-1m synthetic-ml-25m \
  --plot "$target/scale_gpu.png" 2> >(tee "$target/scale_gpu.log" >&2) | tee "$target/scale_gpu.md"
