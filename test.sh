#!/bin/sh
# ./test.sh — the README's test command: installs what is missing (make, a
# compiler, pkg-config, the libraries: tools/deps.sh) on a fresh Debian,
# builds the optimised binaries that ./run.sh runs (an -O2 build warns where
# the sanitized -O1 one does not, and CI=true makes warnings errors), then
# builds under ASan+UBSan and runs every Criterion suite (make test).
# Arguments go to make test: ./test.sh TESTS=test_clock, ./test.sh SANITIZER=thread
set -eu
cd "$(dirname "$0")"
sh tools/deps.sh install
jobs=$(nproc 2>/dev/null || echo 2)
make -j"$jobs" all
exec make -j"$jobs" test "$@"
