#!/bin/sh
# layers.sh — every #include points down the architecture, never back up.
#
#   sh tools/layers.sh [ROOT]      (ROOT: the checkout; default .)
#
# Each folder may include its own headers and those of the layers below it:
#
#   cellstate   the store                  (nothing above it)
#   txn         the semantics of change    cellstate
#   proto       the wire codec, client, TLS cellstate txn
#   spec        job specs, the cell's JSON cellstate proto
#   server      cellstated                 cellstate txn proto
#   http        cellstated's HTTP API      cellstate proto spec
#   schedulers  the loop, copy, placement  cellstate txn proto
#   agent       cell-agent                 cellstate proto
#   tools, tests                           anything
#
# So the store can be replicated without the server, and the schedulers
# driven without a socket. The HTTP API is a client of the server's
# protocol, never of its internals: http/ may not include server/; only
# cellstated's main (server/cellstated.c), which starts both, includes
# http/gateway.h. Prints each include that points back up as
# FILE:LINE: FOLDER may not include HEADER (allowed: ...), and exits 1 if
# there was one; prints nothing and exits 0 otherwise. `make test` runs it.

root=${1:-.}

allowed() {
    case $1 in
    cellstate) echo "cellstate" ;;
    txn) echo "cellstate txn" ;;
    proto) echo "cellstate txn proto" ;;
    spec) echo "cellstate proto spec" ;;
    server) echo "cellstate txn proto server" ;;
    http) echo "cellstate proto spec http" ;;
    schedulers) echo "cellstate txn proto schedulers" ;;
    agent) echo "cellstate proto agent" ;;
    *) echo "*" ;;
    esac
}

bad=0
for dir in cellstate txn proto spec server http schedulers agent; do
    [ -d "$root/$dir" ] || continue
    ok=$(allowed "$dir")
    # Folders below a layer (schedulers/batch) belong to it.
    files=$(cd "$root" && find "$dir" -name '*.[ch]' | sort)
    for f in $files; do
        # The main that starts the server and its HTTP gateway wires both.
        [ "$f" = server/cellstated.c ] && ok="$(allowed server) http" || ok=$(allowed "$dir")
        hits=$(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$root/$f" |
            sed 's/^\([0-9]*\):[^"]*"\([^"]*\)".*/\1 \2/')
        [ -n "$hits" ] || continue
        echo "$hits" | while read -r line hdr; do
            top=${hdr%%/*}
            [ "$top" = "$hdr" ] && continue # same-folder include without a path
            case " $ok " in
            *" $top "*) ;;
            *)
                echo "$f:$line: $dir may not include $hdr (allowed: $ok)"
                ;;
            esac
        done
    done
done >"${TMPDIR:-/tmp}/layers.$$"
if [ -s "${TMPDIR:-/tmp}/layers.$$" ]; then
    cat "${TMPDIR:-/tmp}/layers.$$" >&2
    bad=1
fi
rm -f "${TMPDIR:-/tmp}/layers.$$"
exit $bad
