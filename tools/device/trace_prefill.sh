#!/usr/bin/env bash
# Dev-only, through the device tool: where one prefill step's GPU time goes,
# kernel by kernel, at real clocks (the CUPTI tracer of trace_decode.sh; the
# per-op profile, LAGUNA_CUDA_PROFILE=1, averages prefill and decode steps
# together, so its shares are not a prompt's). Runs one bench rep, splits the
# trace into bursts of kernels at GPU idle gaps over 300 us, takes the longest
# burst (the timed prompt) and charges each kernel its marginal time (its end
# minus the latest end before it), so the charges add up to the burst.
# Usage: PROMPT=4096 [LAYERS=40] [EXTRA=--bf16-activations] [BIN=...] bash tools/device/trace_prefill.sh
set -uo pipefail
PROMPT=${PROMPT:-4096} LAYERS=${LAYERS:-40}
. tools/device/kernel_trace.sh
trace=/tmp/prefill-trace-$$.csv
traced_bench $trace "$OUT/trace_prefill.log" --layers "$LAYERS" --prompt "$PROMPT" --gen 1 --reps 1 --probe-mib 0 \
    ${EXTRA:-} || exit 1
grep -E "^prefill" "$OUT/trace_prefill.log"
python3 - $trace "$LAYERS" <<'PY'
import csv, sys, collections
layers = int(sys.argv[2])
ks = []
for r in csv.reader(open(sys.argv[1])):
    if r[2].startswith("mem") or "synth" in r[2]: continue  # the weights being made
    name = ",".join(r[2:]).replace("void ", "").split("(")[0]
    ks.append((int(r[0]), int(r[1]), name[:60]))
ks.sort()
bursts, cur, last_end = [], [], None
for k in ks:
    if last_end is not None and k[0] - last_end > 300_000:
        bursts.append(cur); cur = []
    cur.append(k)
    last_end = k[1] if last_end is None else max(last_end, k[1])
bursts.append(cur)
b = max(bursts, key=lambda x: max(e for _, e, _ in x) - x[0][0])
t0, t1 = b[0][0], max(e for _, e, _ in b)
charge, busy, count = collections.defaultdict(int), collections.defaultdict(int), collections.Counter()
last = t0
for s, e, n in b:
    charge[n] += max(0, e - max(last, s))
    busy[n] += e - s
    count[n] += 1
    last = max(last, e)
span = t1 - t0
idle = span - sum(charge.values())
print(f"prefill burst: {span/1e6:.3f} ms, {len(b)} kernels, {span/1e3/layers:.1f} us a layer; idle (no kernel running) {idle/1e6:.3f} ms")
print(f"{'kernel':60s} {'charged ms':>10s} {'share':>6s} {'busy ms':>9s} {'calls':>6s} {'us/call':>9s}")
for n in sorted(charge, key=lambda x: -charge[x]):
    print(f"{n:60s} {charge[n]/1e6:10.3f} {100*charge[n]/span:5.1f}% {busy[n]/1e6:9.3f} {count[n]:6d} {busy[n]/1e3/count[n]:9.1f}")
PY
