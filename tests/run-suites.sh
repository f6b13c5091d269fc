#!/bin/sh
# run-suites.sh — runs Criterion suites one after another and prints one
# closing line for all of them, "N passed, N failed" (make test).
#
#   tests/run-suites.sh SUITE...
#
# Environment: CELLSCHED_BIN (the binaries the integration suites start),
# TEST_CLOCK: `boot` (default) runs each suite in a Linux time namespace
# whose CLOCK_MONOTONIC and CLOCK_BOOTTIME read one second at its start, as
# on a machine booted a second ago, so that no test can lean on the
# machine's uptime (a test once assumed more than 2.8 hours of it); `host`
# runs them on the machine's clock. A machine that refuses time namespaces
# (unshare --time needs root or unprivileged user namespaces) runs them on
# its own clock and the run says so.
#
# Criterion forks every test, so one crash fails that test and not the run;
# a suite that fails without a counted failure (a crash of the runner itself)
# counts as one failure.
#
# The closing lines repeat, for each failed suite, its name and the lines
# Criterion printed about the failure, so that the end of a long CI log (often
# all a CI page keeps) says what failed.
set -u

clock=${TEST_CLOCK:-boot}
# The offset that brings this machine's boot clock to one second now. The
# monotonic clock never reads more than the boot clock, so it lands at or
# below one second (never negative: the kernel refuses that).
offset() { echo $((1 - $(cut -d. -f1 /proc/uptime))); }

ns=0
if [ "$clock" = boot ]; then
    if [ "$(offset)" -ge 0 ]; then
        ns=0 # booted under a second ago: the clocks are there already
    elif unshare --time --monotonic="$(offset)" --boottime="$(offset)" true 2>/dev/null; then
        ns=1
    else
        echo "note: unshare --time refused: the suites run on the machine's clock (up $(cut -d' ' -f1 /proc/uptime) s)"
    fi
fi

log=$(mktemp) || exit 1
fails=$(mktemp) || exit 1
trap 'rm -f "$log" "$fails"' EXIT
pass=0 bad=0 suites_failed=0
for t in "$@"; do
    echo "== $t"
    if [ $ns = 1 ]; then
        o=$(offset)
        set -- unshare --time --monotonic="$o" --boottime="$o" "$t"
    else
        set -- "$t"
    fi
    rc=0
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} "$@" --jobs=2 >"$log" 2>&1 || rc=$?
    cat "$log"
    p=$(sed -n 's/.*Passing: \([0-9]*\).*/\1/p' "$log" | tail -1)
    f=$(sed -n 's/.*Failing: \([0-9]*\) | Crashing: \([0-9]*\).*/\1 \2/p' "$log" | tail -1)
    n=0
    for k in $f; do n=$((n + k)); done
    if [ $rc -ne 0 ]; then
        suites_failed=$((suites_failed + 1))
        [ $n -eq 0 ] && n=1
        {
            echo "-- $t (exit $rc)"
            grep -E '\[(FAIL|----|ERR )\]|CRASH|ERROR: (Address|Leak)Sanitizer|runtime error' "$log" | head -20
        } >>"$fails"
    fi
    pass=$((pass + ${p:-0}))
    bad=$((bad + n))
done
echo "$pass passed, $bad failed"
if [ $suites_failed -ne 0 ]; then
    echo "$suites_failed suite(s) failed:"
    cat "$fails"
    exit 1
fi
