#!/usr/bin/env bash
# Dev-only, run through the device tool from the repository root, with a
# portable build carried in build/portable (make BUILD=build/portable
# OPT="-O2 -march=x86-64-v3" build/portable/laguna bench, plus the shared
# libraries it links in build/portable/lib). Makes the variant checkpoints and
# their transformers references, checks laguna on them there too, compares
# laguna-tiny's held-out perplexity with transformers', and times the
# tokenizer against Hugging Face tokenizers on the same machine.
set -uo pipefail
B=build/portable
export LD_LIBRARY_PATH=$PWD/$B/lib
export PYTHONUNBUFFERED=1
{ nproc; lscpu | grep -E 'Model name|^CPU\(s\)'; python3 -c 'import tokenizers, transformers; print(tokenizers.__version__, transformers.__version__)'; } > "$OUT/machine.txt" 2>&1

python3 tools/reference/make_variants.py --out /tmp/variants > "$OUT/variants.log" 2>&1
tar czf "$OUT/variants.tgz" -C /tmp variants
for d in /tmp/variants/*/; do echo "$d"; $B/laguna verify "$d" "$d/golden.safetensors" | tail -2; done >> "$OUT/variants.log" 2>&1

python3 tools/reference/heldout_perplexity.py --ids-out "$OUT/heldout_ids.txt" > "$OUT/heldout.txt" 2>&1
$B/laguna perplexity -m models/laguna-tiny --tokens-file "$OUT/heldout_ids.txt" --ctx 512 --experts >> "$OUT/heldout.txt" 2>&1

for i in 1 2 3; do
    python3 bench/tokenizer_reference.py --runs 21
    $B/bench/bench_tokenizer --runs 21
done > "$OUT/tokenizer_bench.txt" 2>&1
cat "$OUT"/*.txt "$OUT/variants.log"
