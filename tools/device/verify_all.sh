#!/usr/bin/env bash
# Dev-only, through the device tool: `laguna verify --device cuda` on every
# fixture and repository model with its golden file (needs a built build/laguna).
for m in tests/fixtures/tiny-xs tests/fixtures/tiny-xs/bf16 tests/fixtures/tiny-m tests/fixtures/tiny-m/bf16 models/laguna-tiny; do
  g=$m/golden.safetensors; [ -f $g ] || g=$(dirname $m)/golden.safetensors
  echo "verify $m: $(timeout 120 build/laguna verify -m $m $g --device cuda 2>&1 | tail -1)"
done
