#!/usr/bin/env bash
# research-figures.sh — the full-size runs behind docs/research.md's section
# "Fidelity (issue 15 §5)": each sweep on the omega preset (10,000
# machines), its CSV, and the figures `cellsim plot` draws from it.
#
#   tools/research-figures.sh [--days D] [--jobs N] [--out DIR] [--plot-only]
#
#   --days D   simulated days per run (default 0.25: the simulator's speed
#              today; docs/research.md says what that changes). Raise it
#              once cellsim is faster (issue 15 §8).
#   --jobs N   runs at once (default 2; each a process using one core)
#   --out DIR  where the CSVs, the JSON of the mesos runs and the PNGs go
#              (default docs/research, as committed)
#   --plot-only  draw the figures again from the CSVs already in DIR, running
#              nothing (after a change to `cellsim plot`)
#
# The sweeps, each a `cellsim sweep` (the same seed and settings give the
# same bytes, so a re-run changes a figure only if cellsim changed):
#   archs.csv       Figs. 5-7: every architecture against t_job(service)
#   schedulers.csv  Fig. 9: Omega with 1-32 batch schedulers, at two batch
#                   decision times
#   modes.csv       Fig. 14: fine/coarse x incremental/gang against
#                   t_job(service)
#   mesos.jsonl     the mesos points of archs.csv again with --json, for the
#                   offers' holds summed over frameworks (not a CSV column)
# The figures are copied under their paper's name (fig5-7_wait.png, ...);
# the gnuplot scripts beside them hold their data. Runs are niced: the
# machine is shared. The binary is $CELLSCHED_BIN/cellsim, else bin/cellsim.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CELLSIM=${CELLSCHED_BIN:-$ROOT/bin}/cellsim
DAYS=0.25
JOBS=2
OUT=$ROOT/docs/research
PLOT_ONLY=

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
    case $1 in
    --days | --jobs | --out)
        [[ $# -ge 2 ]] || { echo "research-figures.sh: $1 needs a value" >&2; exit 2; }
        case $1 in --days) DAYS=$2 ;; --jobs) JOBS=$2 ;; --out) OUT=$2 ;; esac
        shift 2 ;;
    --plot-only) PLOT_ONLY=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "research-figures.sh: unexpected argument '$1' (--help lists the flags)" >&2; exit 2 ;;
    esac
done
[[ -x $CELLSIM ]] || { echo "research-figures.sh: no $CELLSIM (run make first)" >&2; exit 1; }
mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

COMMON=(--preset omega --days "$DAYS" --seed 1)
TJOBS=0.01,0.1,1,10,100

sweep() { # NAME, then the sweep's arguments
    local name=$1
    shift
    [[ -z $PLOT_ONLY ]] || return 0
    echo "research-figures.sh: $name.csv: cellsim sweep ${COMMON[*]} $*" >&2
    nice -n 10 "$CELLSIM" sweep "${COMMON[@]}" "$@" --jobs "$JOBS" --out "$OUT/$name.csv"
}

# plot NAME FIGURE:TARGET...: draw NAME.csv and keep the figures named.
plot() {
    local name=$1 pair
    shift
    mkdir -p "$TMP/$name"
    "$CELLSIM" plot "$OUT/$name.csv" --out "$TMP/$name" >&2
    for pair in "$@"; do
        cp "$TMP/$name/${pair%%:*}.png" "$OUT/${pair#*:}.png"
        # The script beside it draws it again where it now is.
        sed "s|^set output .*|set output \"${pair#*:}.png\"|" "$TMP/$name/${pair%%:*}.gp" >"$OUT/${pair#*:}.gp"
    done
}

# Figs. 5-7: the architectures against t_job(service), the paper's defaults otherwise.
sweep archs --vary architecture=monolithic,multipath,mesos,omega --vary t_job_service=$TJOBS
plot archs tjob_wait:fig5-7_wait tjob_busyness:fig5-7_busyness

# Fig. 9: Omega's batch load split over 1-32 schedulers. With the default
# 0.1 s one batch scheduler is 6% busy and there is little to gain; at 1 s
# and 10 s a job (t_decision 1.5 s and 10.5 s for 100 tasks, one every 10 s)
# one scheduler is busy or saturated.
sweep schedulers --vary t_job_batch=1,10 --vary batch_schedulers=1,2,4,8,16,32
plot schedulers schedulers_conflict:fig9_conflict schedulers_busyness:fig9_busyness

# Fig. 14: the four conflict x commit modes against t_job(service).
sweep modes --vary conflict=fine,coarse --vary commit=incremental,gang --vary t_job_service=0.1,1,10,100
plot modes modes_conflict:fig14_conflict modes_busyness:fig14_busyness

# Mesos: the offers' holds summed over frameworks, over the run (the JSON's
# offer_locked_fraction: may pass 1), one run per t_job(service).
[[ -z $PLOT_ONLY ]] || exit 0
: >"$OUT/mesos.jsonl"
for t in ${TJOBS//,/ }; do
    echo "research-figures.sh: mesos.jsonl: cellsim ${COMMON[*]} --architecture mesos --t-job-service $t --json" >&2
    nice -n 10 "$CELLSIM" "${COMMON[@]}" --architecture mesos --t-job-service "$t" --json | tail -n 1 >>"$OUT/mesos.jsonl"
done
echo "research-figures.sh: done: $OUT" >&2
