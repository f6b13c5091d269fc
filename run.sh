#!/bin/sh
# ./run.sh — the README's command for a local cell: installs what is missing
# (tools/deps.sh) on a fresh Debian, builds, and runs cellstated, both
# schedulers, three agents and the examples with a live view (make run).
# Arguments go to make: ./run.sh RUN_FOR=30, ./run.sh RUN_DIR=/tmp/cell
set -eu
cd "$(dirname "$0")"
sh tools/deps.sh install
exec make -j"$(nproc 2>/dev/null || echo 2)" run "$@"
