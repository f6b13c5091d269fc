#!/bin/sh
# run.sh — make fuzz's runner: each libFuzzer target for SECONDS seconds.
#
#   sh tests/fuzz/run.sh SECONDS TIMEOUT build/fuzz/bin/fuzz_NAME ...
#
# A target starts from a temporary copy of $FUZZ_CORPUS/NAME/ (default
# tests/fuzz/corpus: the checkout is never written to; the inputs it finds
# are thrown away) and runs with -max_total_time=SECONDS (0: the seeds only,
# once: -runs=0), -timeout=TIMEOUT (seconds one input may take) and
# LeakSanitizer on. Its output goes to $FUZZ_OUT/logs/NAME.log (default
# build/fuzz); one line per target says how many inputs it ran. A target
# that stops with a crash, a leak, an UBSan report, a slow input or too much
# memory keeps that input in $FUZZ_OUT/crashes/ (libFuzzer's
# -artifact_prefix), which the failure line names with the report's first
# lines; every target still runs, and the exit status is then 1.
#
# Why a script: the per-target bookkeeping (temporary corpus, exit status,
# the count of inputs from libFuzzer's final stats) is more than a make
# recipe reads well as.
set -u
[ $# -ge 3 ] || { echo "usage: tests/fuzz/run.sh SECONDS TIMEOUT TARGET..." >&2; exit 2; }
seconds=$1
timeout=$2
shift 2
out=${FUZZ_OUT:-build/fuzz}
seeds=${FUZZ_CORPUS:-tests/fuzz/corpus}
case "$seconds" in
'' | *[!0-9]*) echo "tests/fuzz/run.sh: SECONDS must be a number: $seconds" >&2; exit 2 ;;
0) length=-runs=0 ;;
*) length=-max_total_time=$seconds ;;
esac
mkdir -p "$out/logs" "$out/crashes"
work=$(mktemp -d "${TMPDIR:-/tmp}/cellsched-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT INT TERM
failed=""
for bin in "$@"; do
    name=$(basename "$bin")
    name=${name#fuzz_}
    corpus="$work/$name"
    mkdir -p "$corpus"
    if [ -d "$seeds/$name" ]; then
        cp -R "$seeds/$name/." "$corpus/"
    fi
    log="$out/logs/$name.log"
    # Crashes get a name of their own: libFuzzer names them by content hash.
    prefix="$out/crashes/$name-"
    "$bin" "$length" -timeout="$timeout" -rss_limit_mb=2048 \
        -detect_leaks=1 -print_final_stats=1 -artifact_prefix="$prefix" \
        "$corpus" >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    if [ "$rc" -eq 0 ]; then
        printf 'fuzz: %-14s ok: %s inputs in %ss\n' "$name" "${runs:-?}" "$seconds"
        continue
    fi
    input=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    printf 'fuzz: %-14s FAILED (exit %s) after %s inputs: input %s, log %s\n' "$name" "$rc" \
        "${runs:-?}" "${input:-(none written)}" "$log"
    grep -E 'ERROR:|runtime error:|^fuzz: |SUMMARY:' "$log" | head -n 5 | sed 's/^/    /'
    failed="$failed $name"
done
if [ -n "$failed" ]; then
    echo "fuzz: failed:$failed (reproduce: build/fuzz/bin/fuzz_NAME INPUT)" >&2
    exit 1
fi
