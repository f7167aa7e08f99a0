#!/usr/bin/env bash
# Dev-only, through the device tool: where one kernel's warps stall, instruction
# by instruction (Nsight Compute's source page, SASS), for one launch of the
# kernel whose demangled name matches KERNEL (an ncu regex, e.g.
# 'matmul_kernel<\(int\)1>') after SKIP launches of it, in a short XS.2-shaped
# bench (BENCH: its arguments). Prints the stall reasons summed, the code size
# and how much of it ran, the runs of executed code and the hottest instructions;
# the executed mix by opcode; the whole listing stays in $OUT/sass.csv. Needs a built build/laguna.
# Usage: KERNEL='attention_mma' SKIP=9 [BENCH="--type q4_k_m --layers 4 ..."] bash tools/device/ncu_sass.sh
set -uo pipefail
KERNEL=${KERNEL:?KERNEL: a regex of the demangled kernel name} SKIP=${SKIP:-9}
BENCH=${BENCH:-"--layers 4 --prompt 1024 --gen 4"}
ncu --clock-control none --cache-control none --kernel-name-base demangled --kernel-name "regex:$KERNEL" \
    --launch-skip "$SKIP" --launch-count 1 --section SourceCounters --section WarpStateStats --page source \
    --print-source sass --csv build/laguna bench --device cuda --synth xs2 --reps 1 --probe-mib 0 $BENCH \
    > "$OUT/sass.csv" 2> "$OUT/sass.err"
python3 - "$OUT/sass.csv" <<'PY'
import csv, sys, collections
lines = open(sys.argv[1]).read().splitlines()
start = next((i for i, l in enumerate(lines) if l.startswith('"Address"')), None)
if start is None:
    sys.exit("no source page in the output (kernel not matched?): " + " | ".join(lines[-3:]))
rows = list(csv.reader(lines[start:]))
head, rows = rows[0], [r for r in rows[1:] if len(r) == len(rows[0])]
col = {n: i for i, n in enumerate(head)}
num = lambda x: float(x.replace(",", "") or 0)
stalls = [n for n in head if n.startswith("stall_") and "Not Issued" not in n]
S, X = col["Warp Stall Sampling (All Samples)"], col["Instructions Executed"]
total = sum(num(r[S]) for r in rows)
per = collections.Counter({s: sum(num(r[col[s]]) for r in rows) for s in stalls})
print("samples %d; by reason: %s" % (total, ", ".join("%s %.0f%%" % (k[6:], 100 * v / max(total, 1)) for k, v in per.most_common(6))))
ran = [r for r in rows if num(r[X]) > 0]
print("code %d instructions, %d of them executed" % (len(rows), len(ran)))
ops, n_exec = collections.Counter(), sum(num(r[X]) for r in rows)
for r in rows:
    w = r[col["Source"]].split()
    if w: ops[(w[1] if w[0].startswith("@") and len(w) > 1 else w[0]).split(".")[0]] += num(r[X])
print("executed by opcode: " + ", ".join("%s %.1f%%" % (o, 100 * k / max(n_exec, 1)) for o, k in ops.most_common(12)))
rows.sort(key=lambda r: int(r[col["Address"]], 16))
base, runs, cur = int(rows[0][col["Address"]], 16), [], None
for r in rows:
    a = int(r[col["Address"]], 16) - base
    if num(r[X]) > 0:
        cur = cur or [a, a, 0, 0.0]
        cur[1], cur[2], cur[3] = a, cur[2] + 1, cur[3] + num(r[S])
    elif cur:
        runs.append(cur)
        cur = None
if cur: runs.append(cur)
print("executed runs (offset, instructions, samples):", "; ".join("%x %d %.0f" % (r[0], r[2], r[3]) for r in runs[:24]))
for r in sorted(rows, key=lambda r: -num(r[S]))[:15]:
    top = max(stalls, key=lambda s: num(r[col[s]]))
    print("%8x %5.0f %-10s %s" % (int(r[col["Address"]], 16) - base, num(r[S]), top[6:], r[col["Source"]][:70]))
PY
