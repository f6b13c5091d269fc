#!/usr/bin/env bash
# run-cell.sh — `make run`: a whole cell on this host, for trying cellsched.
#
#   tools/run-cell.sh [--dir DIR] [--for SECONDS] [--replicas 1|3|5]
#
# Starts the cell state as REPLICAS cellstated replicas (default 3, or
# $REPLICAS: a replicated cell, docs/design.md; 1: a single cellstated
# without --cluster), three cell-agents with different attributes (m1 rack=r1
# zone=a, m2 rack=r1 zone=b, m3 rack=r2 zone=b), cell-batch and cell-service
# in DIR (default $XDG_STATE_HOME/cellsched/run, else
# ~/.local/state/cellsched/run: never the checkout; emptied first), submits examples/*.json and shows
# `cellctl watch`. Ctrl-C (or --for SECONDS) stops everything it started,
# the tasks included. Exit status: 0 when it ran to the end or was stopped,
# 1 when something failed or a process died early (named), 2 for a bad
# command line.
#
# The binaries are taken from $CELLSCHED_BIN, else the repository's bin/
# (`make run` builds them first). Every address is on 127.0.0.1 and every
# port is chosen free, so that a run never clashes with another cell.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${CELLSCHED_BIN:-$ROOT/bin}
# Never the checkout: a run leaves `git status` as it found it.
STATE_HOME=${XDG_STATE_HOME:-}
[[ $STATE_HOME == /* ]] || STATE_HOME=${HOME:?HOME is not set: give --dir}/.local/state
DIR=$STATE_HOME/cellsched/run
FOR=
REPLICAS=${REPLICAS:-3}
TLS=${TLS:-}              # non-empty: mutual TLS on every socket (--tls)
MARKER=.run-cell          # marks a directory this script made, so that only such is emptied
AGENT_PORTS=100           # dynamic ports per agent
POLICY=$ROOT/../shared/testdata/kubernetes/scheduler-policy-config.json

say() { printf 'run-cell: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

usage() {
    echo "usage: tools/run-cell.sh [--dir DIR] [--for SECONDS]"
    echo "  --dir DIR       where the cell's data, the agents' work and the logs go"
    echo "                  (default \$XDG_STATE_HOME/cellsched/run, else ~/.local/state/cellsched/run)"
    echo "  --for SECONDS   stop after that many seconds, exit 0 (default: until Ctrl-C)"
    echo "  --replicas N    cellstated replicas: 1, 3 or 5 (default \$REPLICAS, else 3)"
    echo "  --tls           mutual TLS: certificates from tools/cellsched-certs.sh in DIR/certs,"
    echo "                  every daemon and cellctl on tls+tcp:// (default: \$TLS non-empty)"
}

while [[ $# -gt 0 ]]; do
    case $1 in
    --dir) [[ $# -ge 2 && -n $2 ]] || { say "--dir needs a directory"; exit 2; }; DIR=$2; shift 2 ;;
    --for) [[ $# -ge 2 ]] || { say "--for needs a number of seconds"; exit 2; }; FOR=$2; shift 2 ;;
    --replicas) [[ $# -ge 2 ]] || { say "--replicas needs 1, 3 or 5"; exit 2; }; REPLICAS=$2; shift 2 ;;
    --tls) TLS=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) say "unknown argument '$1'"; usage >&2; exit 2 ;;
    esac
done
if [[ -n $FOR && ! $FOR =~ ^[1-9][0-9]{0,5}$ ]]; then
    say "--for (RUN_FOR): '$FOR' is not a whole number of seconds (1-999999)"
    exit 2
fi
if [[ ! $REPLICAS =~ ^[135]$ ]]; then
    say "--replicas (REPLICAS): '$REPLICAS' is not 1, 3 or 5"
    exit 2
fi

for b in cellstated cellctl cell-agent cell-batch cell-service cellserve; do
    [[ -x $BIN/$b ]] || die "$BIN/$b is missing: build it with make (cell-batch and cell-service \
need their sources in schedulers/batch/ and schedulers/service/)"
done

# ---- the data directory ---------------------------------------------------------------

DIR=$(realpath -m -- "$DIR")
case $DIR in
/ | "$ROOT" | "$HOME") die "refusing to use $DIR as the run directory" ;;
esac
# The marker holds the pid of the run that made the directory: a run still
# going there is not wiped out from under its processes.
if [[ -f $DIR/$MARKER ]]; then
    read -r owner <"$DIR/$MARKER" || owner=
    if [[ $owner =~ ^[0-9]+$ ]] && grep -qs run-cell "/proc/$owner/cmdline"; then
        die "$DIR is in use by another run-cell.sh (pid $owner): stop it or choose another --dir"
    fi
fi
if [[ -e $DIR ]]; then
    if [[ ! -f $DIR/$MARKER ]] && ! [[ -d $DIR && -z $(ls -A -- "$DIR") ]]; then
        die "$DIR exists and was not made by run-cell.sh: remove it or choose another --dir"
    fi
    mv -T -- "$DIR" "$DIR.old.$$" || die "cannot move the previous $DIR away"
fi
# Made complete under another name, then renamed: a rename onto a directory
# that is not empty fails, so two runs starting at once cannot share one.
mkdir -p -- "$(dirname -- "$DIR")"
mkdir -- "$DIR.new.$$" "$DIR.new.$$/logs"
echo $$ >"$DIR.new.$$/$MARKER"
if ! mv -T -- "$DIR.new.$$" "$DIR" 2>/dev/null; then
    rm -rf -- "$DIR.new.$$"
    die "$DIR was taken by another run-cell.sh meanwhile"
fi
rm -rf -- "$DIR.old.$$"
LOGS=$DIR/logs

# ---- free ports -----------------------------------------------------------------------

# A port is taken when /proc/net/tcp{,6} lists it on either end of a socket
# (a stricter test than "listening", which is what a later bind needs).
declare -A TAKEN=()
# shellcheck disable=SC2013  # (hex port numbers, one a word)
for h in $(awk '$2 ~ /:/ { split($2, l, ":"); split($3, r, ":"); print l[2], r[2] }' /proc/net/tcp /proc/net/tcp6 2>/dev/null); do
    TAKEN[$((16#$h))]=1
done
free_block() { # START COUNT: is every port of [START, START+COUNT) free?
    local p
    for ((p = $1; p < $1 + $2; p++)); do
        [[ -z ${TAKEN[$p]:-} ]] || return 1
    done
    return 0
}
# One block for the replicas (a client port and a Raft port each) and the
# agents' ranges, in [10000, 20000): below
# the ephemeral ports (where the kernel puts outgoing connections, which
# could take an agent's port), and below the ports the test suites reserve
# for themselves (tests/support.h), so that a run and a test run never meet.
BLOCK=$((2 * REPLICAS + 3 * AGENT_PORTS + 1))
for ((try = 0; ; try++)); do
    ((try < 50)) || die "no free block of $BLOCK ports found between 10000 and 20000"
    BASE=$((10000 + (RANDOM * 32768 + RANDOM) % (10000 - BLOCK)))
    free_block "$BASE" "$BLOCK" && break
done
# Replica i (1..REPLICAS) serves clients on BASE+i-1 and talks Raft on
# BASE+REPLICAS+i-1; every client is given the whole list and fails over.
# With TLS (docs/security.md), each program presents the certificate of
# its role and name: tls() prints the flags of certificate $1, and the CRL
# once one was made (tools/cellsched-certs.sh --revoke ROLE[:NAME] $CERTS).
SCHEME=tcp
CERTS=$DIR/certs
tls() {
    [[ -z $TLS ]] && return
    echo "--tls-cert $CERTS/$1.pem --tls-key $CERTS/$1.key --tls-ca $CERTS/ca.pem"
    [[ ! -f $CERTS/crl.pem ]] || echo "--tls-crl $CERTS/crl.pem"
}
[[ -z $TLS ]] || SCHEME=tls+tcp
URLS=()
for ((i = 0; i < REPLICAS; i++)); do URLS+=("$SCHEME://127.0.0.1:$((BASE + i))"); done
URL=$(IFS=,; echo "${URLS[*]}")
# shellcheck disable=SC2207 # the paths are the script's own, without spaces
CTL=("$BIN/cellctl" --server "$URL" $(tls operator))
AGENT_BASE=$((BASE + 2 * REPLICAS))
# The first replica also serves the HTTP API (docs/http.md) on the block's
# last port.
HTTP_PORT=$((BASE + BLOCK - 1))
HTTP=(--http "127.0.0.1:$HTTP_PORT")

# ---- processes ------------------------------------------------------------------------

NAMES=() PIDS=()
STOPPING=
WATCH=

# start NAME CMD...: run CMD in its own session (Ctrl-C reaches this script
# and the live view, not the cell, which must outlive them until the jobs
# are killed), output to logs/NAME.log.
start() {
    local name=$1
    shift
    setsid "$@" </dev/null >"$LOGS/$name.log" 2>&1 &
    NAMES+=("$name") PIDS+=("$!")
}

alive() { # PID: running (a zombie, dead but not yet reaped, is not)
    local st
    [[ -r /proc/$1/stat ]] && read -r _ _ st _ 2>/dev/null <"/proc/$1/stat" && [[ $st != Z ]]
}

name_of() { # PID
    local i
    for i in "${!PIDS[@]}"; do [[ ${PIDS[$i]} == "$1" ]] && echo "${NAMES[$i]}" && return; done
    echo "pid $1"
}

# stop SECONDS PATTERN...: SIGTERM the processes started under a name that
# matches a glob PATTERN, SIGKILL those left after SECONDS, and reap them.
# shellcheck disable=SC2317  # (this and the next two run from the EXIT trap)
stop() {
    local secs=$1 i p any pids=()
    shift
    for i in "${!NAMES[@]}"; do
        for p in "$@"; do
            # shellcheck disable=SC2053
            [[ ${NAMES[$i]} == $p ]] && pids+=("${PIDS[$i]}")
        done
    done
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for ((i = 0; i < secs * 10; i++)); do
        any=
        for p in "${pids[@]}"; do alive "$p" && any=1; done
        [[ -z $any ]] && break
        sleep 0.1
    done
    for p in "${pids[@]}"; do
        alive "$p" && say "$(name_of "$p") did not stop on SIGTERM: SIGKILL" && kill -KILL "$p"
        wait "$p" 2>/dev/null
    done
}

# Tasks still running under the agents' work directories: the process group
# in each placement's `pid`, while its supervisor has not written `exit`
# (after which the group is gone and its id may be reused).
# shellcheck disable=SC2317
running_groups() {
    local d
    for d in "$DIR"/agent-*/tasks/*/; do
        [[ -f $d/pid && ! -f $d/exit ]] && cat -- "$d/pid" 2>/dev/null
    done
    return 0
}

# The agent leaves its tasks running when it stops (they belong to the cell),
# so the jobs are killed first, with the schedulers stopped and the agents
# still running, so that the agents stop the tasks with the jobs' grace;
# whatever is left in the task groups afterwards is killed here.
# shellcheck disable=SC2317
cleanup() {
    [[ -n $STOPPING ]] && return
    STOPPING=1
    trap '' INT TERM
    set +e
    say "stopping"
    if [[ -n $WATCH ]]; then
        kill -TERM "$WATCH" 2>/dev/null
        wait "$WATCH" 2>/dev/null
    fi
    stop 5 'batch-*' 'service-*'
    local job i g sig
    if [[ ${#PIDS[@]} -gt 0 ]] && alive "${PIDS[0]}"; then # cellstated
        # Every active job, also any submitted by hand meanwhile (by name: the
        # JSON has one top-level "name" per job, at this indentation).
        while IFS= read -r job; do
            "${CTL[@]}" --timeout 2s kill "$job" >/dev/null
        done < <("${CTL[@]}" --timeout 2s get jobs --state active -o json |
            sed -n 's/^    "name": "\(.*\)",$/\1/p')
        # The agents stop a killed job's tasks with the job's kill grace (3 s here).
        for ((i = 0; i < 60; i++)); do
            [[ -z $(running_groups) ]] && break
            sleep 0.1
        done
    fi
    stop 5 'm[0-9]'
    stop 5 'cellstated*' 
    for sig in TERM KILL; do
        for g in $(running_groups); do
            say "task group $g still runs: SIG$sig"
            kill -"$sig" -- -"$g" 2>/dev/null
        done
        for ((i = 0; i < 30; i++)); do
            [[ -z $(running_groups) ]] && break
            sleep 0.1
        done
    done
    say "stopped; logs are in $LOGS"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

if [[ -n $TLS ]]; then
    [[ $DIR != *[[:space:]]* ]] || die "--tls: the run directory $DIR must not contain spaces"
    "$ROOT/tools/cellsched-certs.sh" "$CERTS" server operator reader scheduler.batch:batch-1 \
        scheduler.service:service-1 agent:m1 agent:m2 agent:m3 >/dev/null ||
        die "cannot make the certificates (tools/cellsched-certs.sh $CERTS)"
fi
if ((REPLICAS == 1)); then
    # shellcheck disable=SC2046
    start cellstated "$BIN/cellstated" --data "$DIR/cell" --listen "$URL" "${HTTP[@]}" $(tls server)
else
    {
        echo "["
        for ((i = 1; i <= REPLICAS; i++)); do
            printf '  {"id": %d, "listen": "%s", "raft": "127.0.0.1:%d"}%s\n' "$i" "${URLS[i - 1]}" \
                "$((BASE + REPLICAS + i - 1))" "$([[ $i -lt $REPLICAS ]] && echo ,)"
        done
        echo "]"
    } >"$DIR/cluster.json"
    for ((i = 1; i <= REPLICAS; i++)); do
        extra=()
        ((i == 1)) && extra=("${HTTP[@]}")
        # shellcheck disable=SC2046
        start "cellstated-$i" "$BIN/cellstated" --cluster "$DIR/cluster.json" --id "$i" \
            --data "$DIR/cell-$i" "${extra[@]}" $(tls server)
    done
fi
# Ready when it answers; a replicated cell, when it has elected a leader
# (writes wait for one).
ready() {
    if ((REPLICAS == 1)); then
        "${CTL[@]}" --timeout 200ms stats >/dev/null 2>&1
    else
        "${CTL[@]}" --timeout 500ms members 2>/dev/null | grep -qw leader
    fi
}
for ((i = 0; ; i++)); do
    ready && break
    for ((r = 0; r < REPLICAS; r++)); do
        alive "${PIDS[r]}" || die "${NAMES[r]} exited at start: $(tail -n 5 "$LOGS/${NAMES[r]}.log")"
    done
    ((i < 100)) || die "the cell state does not answer on $URL after 10 s; see $LOGS/cellstated*.log"
    sleep 0.1
done

# The tasks run `/bin/sh -c CMD` with the agent's environment: bin/ first in
# PATH lets the examples run `cellserve`. As root, cell-agent runs them as an
# unprivileged user (docs/security.md): one that cannot reach bin/ (a
# checkout under /root) could not run cellserve, so this development cell
# then runs its tasks as root, and says so.
TASK_USER=()
if ((EUID == 0)) && command -v setpriv >/dev/null &&
    ! setpriv --reuid=nobody --regid=nogroup --clear-groups test -x "$BIN/cellserve" 2>/dev/null; then
    say "WARNING: an unprivileged user cannot run $BIN/cellserve (a checkout in a private"
    say "directory): the tasks of this development cell run as ROOT (--task-user root);"
    say "put the checkout where others may read it (e.g. /opt, /srv) to run them unprivileged"
    TASK_USER=(--task-user root)
fi
agent() { # NAME INDEX ATTRS...
    local name=$1 lo=$((AGENT_BASE + $2 * AGENT_PORTS))
    shift 2
    local attrs=() a
    for a in "$@"; do attrs+=(--attr "$a"); done
    # shellcheck disable=SC2046
    PATH=$BIN:$PATH start "$name" "$BIN/cell-agent" --server "$URL" --name "$name" "${attrs[@]}" \
        --cpu 2 --mem 2048 --ports "$lo-$((lo + AGENT_PORTS - 1))" --workdir "$DIR/agent-$name" \
        --log-listen "$SCHEME://127.0.0.1:0" "${TASK_USER[@]}" $(tls "agent-$name")
}
agent m1 0 rack=r1 zone=a
agent m2 1 rack=r1 zone=b
agent m3 2 rack=r2 zone=b

# shellcheck disable=SC2046
start batch-1 "$BIN/cell-batch" --server "$URL" --name batch-1 $(tls scheduler.batch-batch-1)
policy=()
[[ -f $POLICY ]] && policy=(--policy "$(realpath -- "$POLICY")")
# shellcheck disable=SC2046
start service-1 "$BIN/cell-service" --server "$URL" --name service-1 "${policy[@]}" \
    $(tls scheduler.service-service-1)

for f in "$ROOT"/examples/*.json; do
    "${CTL[@]}" submit "$f" || die "cannot submit $f"
done

# ---- what to look at ------------------------------------------------------------------

endpoints() { # JOB: its healthy tasks' endpoints as URLs (all machines are this host)
    "${CTL[@]}" --timeout 2s endpoints "$1" 2>/dev/null | sed 's|^[^:]*:\([0-9]*\)$|http://127.0.0.1:\1/|'
}
if "${CTL[@]}" help endpoints >/dev/null 2>&1; then
    say "waiting up to 15 s for the web services to be healthy"
    for ((i = 0; i < 150; i++)); do
        [[ $(endpoints web | wc -l) -ge 3 && $(endpoints examples/hello-marathon | wc -l) -ge 2 ]] && break
        sleep 0.1
    done
fi
{
    echo
    echo "cellsched is running: cellstated on $URL, machines m1 m2 m3, cell-batch, cell-service"
    if ((REPLICAS > 1)); then
        echo "  the cell state is replicated ($REPLICAS members, $DIR/cluster.json):"
        "${CTL[@]}" --timeout 2s members 2>&1 | sed 's/^/    /'
        printf '  pids:     '
        for ((r = 0; r < REPLICAS; r++)); do printf '%s=%s ' "${NAMES[r]}" "${PIDS[r]}"; done
        echo "(kill -9 the leader's: the cell goes on)"
    fi
    [[ ${#policy[@]} -gt 0 ]] && echo "  cell-service uses the Kubernetes policy ${policy[1]}"
    if [[ -n $TLS ]]; then
        echo "  HTTP API: https://127.0.0.1:$HTTP_PORT/v1/ (docs/http.md; try curl --cert $CERTS/operator.pem \\"
        echo "            --key $CERTS/operator.key --cacert $CERTS/ca.pem https://127.0.0.1:$HTTP_PORT/v1/jobs)"
        echo "  Dashboard: https://127.0.0.1:$HTTP_PORT/ui/ (a browser needs the operator's certificate)"
        echo "  Metrics: https://127.0.0.1:$HTTP_PORT/metrics (Prometheus text, docs/metrics.md)"
    else
        echo "  HTTP API: http://127.0.0.1:$HTTP_PORT/v1/ (docs/http.md; try curl http://127.0.0.1:$HTTP_PORT/v1/jobs)"
        echo "  Dashboard: http://127.0.0.1:$HTTP_PORT/ui/ (the cell live in a browser)"
        echo "  Metrics: http://127.0.0.1:$HTTP_PORT/metrics (Prometheus text, docs/metrics.md)"
    fi
    echo "  logs:     $LOGS/{cellstated*,m1,m2,m3,batch-1,service-1}.log"
    echo "  tasks:    $DIR/agent-m*/tasks/<task>-<attempt>/{stdout,stderr}"
    if [[ -n $TLS ]]; then
        echo "  TLS:      every daemon, the agents' log services and cellctl on tls+tcp://, the HTTP API"
        echo "            on https, Raft between replicas TLS too; certificates in $CERTS (docs/security.md)"
        echo "  try:      export CELLSCHED_TLS_CERT=$CERTS/operator.pem CELLSCHED_TLS_KEY=$CERTS/operator.key \\"
        echo "                   CELLSCHED_TLS_CA=$CERTS/ca.pem"
    fi
    echo "  try:      $BIN/cellctl --server $URL describe job web"
    for job in web examples/hello-marathon; do
        for u in $(endpoints "$job"); do echo "  $job:  ${u} (and ${u}health)"; done
    done
    if [[ -n $FOR ]]; then echo "  stopping in $FOR s"; else echo "  Ctrl-C stops everything"; fi
    echo
} | tee "$DIR/summary.txt"
# The live view redraws the whole terminal: give the summary a moment.
[[ -t 1 ]] && sleep 3

count=()
[[ -n $FOR ]] && count=(--count "$FOR")
"${CTL[@]}" watch --interval 1s "${count[@]}" </dev/null &
WATCH=$!

# Wait for the view to end (--for, or Ctrl-C) or for any process to die.
st=0 ended=
wait -n -p ended || st=$?
if [[ $ended != "$WATCH" ]]; then
    die "$(name_of "$ended") died (status $st) before the end; the end of $LOGS/$(name_of "$ended").log:
$(tail -n 5 "$LOGS/$(name_of "$ended").log")"
fi
WATCH=
((st == 0)) || die "cellctl watch failed (status $st)"
exit 0
