#!/usr/bin/env bash
# Runs every test program in $BUILD/tests from the repository root and prints
# one closing line "N passed, N failed, N skipped". A program that crashes or
# exits non-zero without reporting a FAIL line counts as one failed case;
# SKIP lines (say, GPU cases on a machine without one) are listed and counted.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
passed=0; failed=0; skipped=0
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    case "$t" in *.d|*.o) continue;; esac
    name=$(basename "$t")
    log=$(mktemp)
    "$t" >"$log" 2>&1
    rc=$?
    p=$(grep -c '^PASS ' "$log"); f=$(grep -c '^FAIL ' "$log"); s=$(grep -c '^SKIP ' "$log")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1; echo "FAIL $name: exited with status $rc"
    fi
    if [ "$f" -ne 0 ]; then cat "$log"; else echo "ok   $name ($p cases)"; grep '^SKIP ' "$log"; fi
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
    rm -f "$log"
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
