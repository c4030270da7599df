#!/usr/bin/env bash
# The one call a lent GPU machine gets (README, On a GPU): install the carried wheels,
# then render, preprocess, train and tune with tools/gpu_train.py run.
#
#   here:  the pack and wheels made (README's commands), then the device call, carrying
#          .gpupack and .whl:   bash tools/gpu_lease.sh 8.5
#   there: a second call while the machine is still warm (send it at once: it is given
#          back after about 30 s idle) trains on from the first call's run.
#
# MINUTES (default 8.5) is the whole call, every stage; keep it under the call's limit.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES="${1:-8.5}"
OUT="${OUT:-gpu-out}"
mkdir -p "$OUT"
[ -d .gpupack ] || { echo "error: no .gpupack here" >&2; \
    echo "hint: build it (README, On a GPU) and carry .gpupack and .whl" >&2; exit 2; }
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 tools/gpu_train.py run --minutes "$MINUTES" 2>&1 | tee "$OUT/run.log"
