#!/bin/sh
# ./test.sh — the README's test command: installs what is missing (make, a
# compiler, pkg-config, the libraries: tools/deps.sh) on a fresh Debian, then
# builds under ASan+UBSan and runs every Criterion suite (make test).
# Arguments go to make: ./test.sh TESTS=test_clock, ./test.sh SANITIZER=thread
set -eu
cd "$(dirname "$0")"
sh tools/deps.sh install
exec make -j"$(nproc 2>/dev/null || echo 2)" test "$@"
