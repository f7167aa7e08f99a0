#!/usr/bin/env bash
# Runs the training on the device machine and packs what comes back into at
# most 8 files under $OUT: the weight shards, and everything else in one tar.
set -euo pipefail
MIN=${1:-7}
DATA=${2:-60}
python3 tools/train/train_laguna_tiny.py --out /tmp/laguna-tiny --minutes "$MIN" --data-mb "$DATA" --seed 1234 2>&1 | tee /tmp/train.log
cp /tmp/train.log "$OUT/train.log"
cd /tmp/laguna-tiny
ls -la
tar cf "$OUT/bundle.tar" --exclude='model*.safetensors' .
for f in model*.safetensors; do cp "$f" "$OUT/"; done
