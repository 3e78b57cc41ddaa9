#!/usr/bin/env bash
# GPU figures (one H100/H200; data generated there, seed 0). Writes its output to $OUT if set,
# else to docs/. Wheels of packages the GPU image lacks may wait in .cache/whl (installed into
# /tmp/site).
#   bash bench/gpu.sh            # bench/scale.py for synthetic-ml-1m and -25m (about 6 minutes)
#   bash bench/gpu.sh train [N]  # the sequential model trained N epochs (default 3) on
#                                # synthetic-ml-25m with the sampled softmax, then tested
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
if [ "${1:-scale}" = train ]; then
  # 1,024 log-Q corrected negatives a step: its cost does not grow with the 59,047 movies
  dataset="${DATASET:-synthetic-ml-25m}" run="runs/${DATASET:-synthetic-ml-25m}/sequential"
  args=(--config configs/ml-1m/sequential.yaml --data.init_args.dataset="$dataset"
    --trainer.default_root_dir="$run" --trainer.logger.init_args.save_dir="$run"
    --trainer.callbacks.dirpath="$run" --model.init_args.negatives=1024
    --trainer.accelerator="${ACCELERATOR:-gpu}" --trainer.devices=1 --trainer.deterministic=false)
  # the epochs measured so far come back even if the run is cut short
  (while sleep 10; do cp "$run"/logs/version_0/metrics.csv "$target/train_metrics.csv" || true; done) \
    > /dev/null 2>&1 &
  trap 'kill $!' EXIT
  /usr/bin/time -f "fit: %e s, peak RSS %M KB" python3 -m training fit "${args[@]}" \
    --trainer.max_epochs="${2:-3}" 2>&1 | tee "$target/train.log"
  /usr/bin/time -f "test: %e s, peak RSS %M KB" python3 -m training test "${args[@]}" \
    --ckpt_path="$run/best.ckpt" 2>&1 | tee -a "$target/train.log"
  cp "$run"/logs/version_0/metrics.csv "$target/train_metrics.csv"
  exit
fi
for like in ml-1m ml-25m; do
  /usr/bin/time -f "synthesize $like: %e s, peak RSS %M KB" \
    python3 -m contextflix.data synthesize --like "$like" 2>&1 | tee -a "$target/gpu.txt"
done
# each data set's row goes to the log as soon as it is measured
python3 bench/scale.py --device cuda --datasets synthetic-ml-1m synthetic-ml-25m \
  --plot "$target/scale_gpu.png" 2> >(tee "$target/scale_gpu.log" >&2) | tee "$target/scale_gpu.md"
