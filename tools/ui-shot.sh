#!/bin/sh
# ui-shot.sh — take docs/ui.png, the dashboard's picture in the docs, of a
# small live cell: `make run`'s cell (tools/run-cell.sh, one cellstated),
# a batch job of 120 short tasks submitted while the page watches, so that
# the schedulers' sparklines move, and headless chromium's screenshot of
# http://127.0.0.1:PORT/ui/#job=web at 1280x900.
#
#   tools/ui-shot.sh [OUT]      (default docs/ui.png; `make ui-shot` builds first)
#
# The binaries come from $CELLSCHED_BIN, else bin/. Everything it starts
# (the cell, chromium, whose profile goes to the same temporary directory)
# is stopped and removed at the end. Needs chromium (Debian's chromium:
# sh tools/deps.sh install tests). Takes about a minute: the page draws its
# series from the reports it sees while open.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CELLSCHED_BIN:-$ROOT/bin}
OUT=${1:-$ROOT/docs/ui.png}
# Virtual time the page runs for before the picture: about 20 of its
# refreshes, each one blocking query of up to 2 s of real time.
BUDGET_MS=${UI_SHOT_BUDGET_MS:-10000}

say() { printf 'ui-shot: %s\n' "$*" >&2; }
if ! command -v chromium >/dev/null 2>&1; then
    say "chromium is not installed (Debian's chromium package: sh tools/deps.sh install tests)"
    exit 1
fi
for b in cellstated cellctl; do
    [ -x "$BIN/$b" ] || { say "no $BIN/$b: run make first (or make ui-shot)"; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ui-shot.XXXXXX")
run=
cleanup() {
    if [ -n "$run" ]; then
        kill -TERM "$run" 2>/dev/null || true
        wait "$run" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

CELLSCHED_BIN=$BIN "$ROOT/tools/run-cell.sh" --replicas 1 --dir "$tmp/cell" --for 600 \
    >"$tmp/run.log" 2>&1 &
run=$!
# The summary names the cell's and the dashboard's URLs once it is up.
i=0
until grep -q 'Dashboard: http' "$tmp/run.log"; do
    if ! kill -0 "$run" 2>/dev/null || [ $i -ge 240 ]; then
        cat "$tmp/run.log" >&2
        say "the cell did not start"
        exit 1
    fi
    i=$((i + 1))
    sleep 0.5
done
dash=$(sed -n 's/.*Dashboard: \(http[^ ]*\).*/\1/p' "$tmp/run.log" | head -1)
cell=$(sed -n 's/.*cellstated on \(tcp:[^,]*\),.*/\1/p' "$tmp/run.log" | head -1)
say "cell at $cell, dashboard at $dash"

cat >"$tmp/load.json" <<'JSON'
{"name": "batch-load", "kind": "batch", "priority": 20, "count": 120, "cmd": "sleep 2",
 "resources": {"cpu": 0.25, "mem": 32, "disk": 0}, "duration": "2s"}
JSON
(sleep 4 && "$BIN/cellctl" --server "$cell" submit "$tmp/load.json" >/dev/null) &
load=$!

chromium --headless --disable-gpu --no-sandbox --no-first-run --hide-scrollbars \
    --user-data-dir="$tmp/chromium" --window-size=1280,900 \
    --virtual-time-budget="$BUDGET_MS" --screenshot="$OUT" "$dash#job=web" \
    >"$tmp/chromium.log" 2>&1 || { cat "$tmp/chromium.log" >&2; say "chromium failed"; exit 1; }
wait "$load" || say "the load job was not submitted (the picture is of the cell without it)"
[ -s "$OUT" ] || { say "chromium wrote no $OUT"; exit 1; }
say "wrote $OUT"
