#!/usr/bin/env bash
# Dev-only, through the device tool: a decode step's kernels as they run
# inside the recorded step (a CUPTI activity trace, tools/device/kernel_trace.c:
# graph nodes one by one at real clocks, programmatic-launch overlap kept,
# unlike ncu, which serialises kernels; this machine's nsys cannot import its
# traces). Each kernel is charged its marginal time: its end minus the latest
# end before it, so the charges add up to the step. Prints, over the last
# STEPS decode steps (a step ends at the argmax kernel), the median step, each
# kernel name's median charge and busy time a step, and one step's middle
# kernels in order. Needs a built build/laguna.
# Usage: TYPE=bf16 PROMPT=1024 [LAYERS=40] [STEPS=8] [EXTRA=...] [BIN=...] bash tools/device/trace_decode.sh
set -uo pipefail
TYPE=${TYPE:-bf16} PROMPT=${PROMPT:-1024} LAYERS=${LAYERS:-40} STEPS=${STEPS:-8}
. tools/device/kernel_trace.sh
trace=/tmp/kernel-trace-$$.csv
traced_bench $trace "$OUT/trace.log" --type "$TYPE" --layers "$LAYERS" --prompt "$PROMPT" --gen $((STEPS + 4)) \
    --reps 1 --probe-mib 0 ${EXTRA:-} || exit 1
grep -E "decode greedy" "$OUT/trace.log"
python3 - $trace "$STEPS" <<'PY'
import csv, sys, statistics, collections
steps_wanted = int(sys.argv[2])
ks = []
for r in csv.reader(open(sys.argv[1])):
    name = ",".join(r[2:]).replace("void ", "").split("(")[0]
    ks.append((int(r[0]), int(r[1]) - int(r[0]), name[:38]))
ks.sort()
ends = [i for i, k in enumerate(ks) if "argmax" in k[2]]
steps = [(ends[j] + 1, ends[j + 1] + 1) for j in range(len(ends) - 1)][-steps_wanted:]
per_step, charge, dur, count = [], collections.defaultdict(list), collections.defaultdict(list), {}
for a, b in steps:
    t0 = ks[a - 1][0] + ks[a - 1][1]
    last_end = t0
    c, d, n = collections.defaultdict(int), collections.defaultdict(int), collections.defaultdict(int)
    for s, du, name in ks[a:b]:
        e = s + du
        c[name] += max(0, e - last_end)
        d[name] += du
        n[name] += 1
        last_end = max(last_end, e)
    per_step.append(last_end - t0)
    for name in c:
        charge[name].append(c[name]); dur[name].append(d[name]); count[name] = n[name]
print("steps %d, median step %.1f us (%.1f tok/s at batch 1)" % (len(per_step), statistics.median(per_step) / 1e3,
      1e9 / statistics.median(per_step)))
print("%-38s %6s %10s %10s %9s" % ("kernel", "calls", "charge us", "busy us", "us a call"))
for name in sorted(charge, key=lambda k: -statistics.median(charge[k])):
    cm, dm = statistics.median(charge[name]) / 1e3, statistics.median(dur[name]) / 1e3
    print("%-38s %6d %10.1f %10.1f %9.2f" % (name, count[name], cm, dm, dm / count[name]))
a, b = steps[-1]
t0 = ks[a - 1][0] + ks[a - 1][1]
print("the last step's first kernels: start and end after the previous step's end (us)")
for s, du, name in ks[a:a + 5]:
    print("%-38s %8.2f %8.2f" % (name, (s - t0) / 1e3, (s + du - t0) / 1e3))
mid = a + (b - a) // 2
print("the last step's kernels %d-%d of %d, in order: start and end after the first's start, charge (us)" %
      (mid - a, mid - a + 40, b - a))
last_end = max(s + d for s, d, _ in ks[a:mid])
t0 = ks[mid][0]
for s, du, name in ks[mid:mid + 40]:
    e = s + du
    print("%-38s %8.2f %8.2f %7.2f" % (name, (s - t0) / 1e3, (e - t0) / 1e3, max(0, e - last_end) / 1e3))
    last_end = max(last_end, e)
PY
rm -f $trace
