#!/usr/bin/env bash
# Dev-only, through the device tool (needs cuobjdump, no GPU time): the
# static SASS opcode mix of each kernel in build/laguna whose mangled name
# matches a regex given, so a loop's register moves or address sums show
# beside its mma without a profiler run. Every instruction of a function
# counts once (not weighted by how often it runs).
# SAVE=1: each matched function's listing also goes to $OUT/<function>.sass.
# Usage: bash tools/device/sass_mix.sh 'gemm_kernel' 'attention_mma_kernelILi16ELi8E'
set -uo pipefail
CUOBJDUMP=${CUOBJDUMP:-$(command -v cuobjdump || echo /usr/local/cuda/bin/cuobjdump)}
"$CUOBJDUMP" -sass build/laguna > /tmp/laguna.sass 2>/dev/null || { echo "sass_mix: cuobjdump failed"; exit 1; }
python3 - /tmp/laguna.sass "${TOP:-12}" "${SAVE:+${OUT:-/tmp}}" "$@" <<'PY'
import re, sys, collections
text, top, save, pats = open(sys.argv[1]).read(), int(sys.argv[2]), sys.argv[3], [re.compile(p) for p in sys.argv[4:]]
funcs, cur, listing = {}, None, {}
for line in text.splitlines():
    m = re.search(r"Function : (\S+)", line)
    if m:
        cur = m.group(1) if any(p.search(m.group(1)) for p in pats) else None
        if cur: funcs[cur], listing[cur] = collections.Counter(), []
        continue
    if cur: listing[cur].append(line)
    m = re.match(r"\s*/\*[0-9a-f]{4,}\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*)", line)
    if cur and m: funcs[cur][m.group(2)] += 1
for f, c in funcs.items():
    if save: open("%s/%s.sass" % (save, f[:120]), "w").write("\n".join(listing[f]) + "\n")
    n = sum(c.values())
    print("%s: %d instructions; %s" % (f[:90], n, ", ".join("%s %.1f%%" % (o, 100.0 * k / n) for o, k in c.most_common(top))))
PY
