#!/usr/bin/env bash
# Trains models/laguna-tiny-chat on the device machine (one H200) and packs what comes back into at
# most 8 files under $OUT: the two weight shards, train.log, and everything else in bundle.tar.
# Run from the repository root through the device tool:
#     bash tools/train/run_tinychat_on_device.sh [MINUTES]
# Then here: mkdir -p models/laguna-tiny-chat && tar xf FILES/bundle.tar -C models/laguna-tiny-chat &&
#     cp FILES/model-0000?-of-00002.safetensors FILES/train.log models/laguna-tiny-chat/
set -euo pipefail
MIN=${1:-5}
export PYTHONUNBUFFERED=1
python3 -c 'import torch, transformers, tokenizers, jinja2; print("torch", torch.__version__, "transformers", transformers.__version__, "tokenizers", tokenizers.__version__)'
python3 tools/train/train_laguna_tiny_chat.py --out /tmp/laguna-tiny-chat --minutes "$MIN" --seed 1234 2>&1 | tee "$OUT/train.log"
cd /tmp/laguna-tiny-chat
ls -la
tar cf "$OUT/bundle.tar" --exclude='model*.safetensors' .
for f in model*.safetensors; do cp "$f" "$OUT/"; done
