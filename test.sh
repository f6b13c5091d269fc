#!/bin/sh
# ./test.sh — the README's test command: installs what is missing (make, a
# compiler, pkg-config, the libraries; clang and libFuzzer for the fuzz
# targets; promtool and chromium for the metrics and dashboard suites:
# tools/deps.sh) on a fresh Debian, builds the optimised binaries
# that ./run.sh runs (an -O2 build warns where the sanitized -O1 one does
# not, and CI=true makes warnings errors), then builds under ASan+UBSan and
# runs every Criterion suite (make test), then runs every decoder's libFuzzer
# target for FUZZ_SECONDS seconds (default 3; make fuzz, docs/fuzzing.md).
# Arguments go to make test and make fuzz: ./test.sh TESTS=test_clock,
# ./test.sh SANITIZER=thread, ./test.sh FUZZ_SECONDS=0 (the seeds only).
set -eu
cd "$(dirname "$0")"
sh tools/deps.sh install
sh tools/deps.sh install fuzz
sh tools/deps.sh install tests
jobs=$(nproc 2>/dev/null || echo 2)
make -j"$jobs" all
make -j"$jobs" test "$@"
exec make -j"$jobs" fuzz FUZZ_SECONDS=3 "$@"
