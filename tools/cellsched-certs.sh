#!/bin/sh
# cellsched-certs.sh — a CA and per-role certificates for a local cell
# (mutual TLS, docs/security.md "Transport security").
#
#   tools/cellsched-certs.sh [--days N] [--san LIST] DIR [ROLE[:NAME]]...
#   tools/cellsched-certs.sh [--days N] --revoke ROLE[:NAME]... | --crl DIR
#
# Makes DIR/ca.pem and DIR/ca.key (the cell's CA; kept, and reused, when
# DIR already has them, so that a certificate added later is signed by the
# same CA) and, for each ROLE[:NAME], DIR/ROLE[-NAME].pem and .key: the
# certificate, signed by the CA, and its unencrypted key (mode 600). With
# no ROLE, the set `make run TLS=1` uses:
#   server                     every cellstated replica (it also dials its leader)
#   operator reader            cellctl, with all rights or read-only (issue 17 §2)
#   scheduler.batch:cell-batch scheduler.service:cell-service (each commits for its kind only)
#   agent:m1 agent:m2 agent:m3
# The subject names the role where issue 17 §2 reads it: CN=ROLE[:NAME],
# OU=ROLE, O=cellsched (e.g. CN=agent:m1, OU=agent). Every certificate may
# serve and dial (extendedKeyUsage serverAuth and clientAuth: a replica
# dials its leader, an agent serves task logs) and carries the SAN LIST,
# which a client checks against the host of the URL it dials.
#
#   --days N    validity of new certificates and of a new CRL (default 365;
#               the CA: 10 years)
#   --san LIST  subjectAltName of every new certificate (default
#               IP:127.0.0.1,DNS:127.0.0.1,DNS:localhost: a single-machine
#               cell; add the hosts' names for a cell on several machines).
#               An address is also listed as a DNS name because mbedTLS 2.28
#               (Debian 12's, under nng) compares the host of the dialled
#               URL with DNS names and the CN only, never with IP entries.
#
#   --revoke ROLE[:NAME]  revoke that certificate of DIR (repeatable) and
#               write DIR/crl.pem: every program given --tls-crl DIR/crl.pem
#               then refuses it at the handshake. Revocations are kept in
#               DIR/ca.index (openssl ca's database), so each CRL lists all
#               of them. With --revoke or --crl, no certificate is made
#               unless ROLEs are named too.
#   --crl       only write DIR/crl.pem anew (the revocations so far; none
#               yet gives an empty one). A CRL is good for --days: mbedTLS
#               refuses every certificate of the CA once it is past, so
#               make it anew before then.
#
# Keys are ECDSA P-256 (small and fast; mbedTLS, the TLS engine, takes
# them). An existing ROLE file is kept, not remade. Needs openssl.
set -eu

days=365
san="IP:127.0.0.1,DNS:127.0.0.1,DNS:localhost"
revoke=
crl=
usage() {
    sed -n '4,6p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
while [ $# -gt 0 ]; do
    case $1 in
    --days) [ $# -ge 2 ] || usage; days=$2; shift 2 ;;
    --san) [ $# -ge 2 ] || usage; san=$2; shift 2 ;;
    --revoke) [ $# -ge 2 ] || usage; revoke="$revoke $2"; crl=1; shift 2 ;;
    --crl) crl=1; shift ;;
    -h|--help) sed -n '2,45p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --*) echo "cellsched-certs.sh: unknown option $1" >&2; usage ;;
    *) break ;;
    esac
done
[ $# -ge 1 ] || usage
dir=$1
shift
[ $# -gt 0 ] || [ -n "$crl" ] || set -- server operator reader scheduler.batch:cell-batch \
    scheduler.service:cell-service agent:m1 agent:m2 agent:m3
command -v openssl >/dev/null 2>&1 || {
    echo "cellsched-certs.sh: openssl is missing (tools/deps.sh install)" >&2
    exit 1
}
case $days in ''|*[!0-9]*) echo "cellsched-certs.sh: --days $days: not a number" >&2; exit 2 ;; esac

mkdir -p "$dir"
umask 077
if [ ! -f "$dir/ca.pem" ] || [ ! -f "$dir/ca.key" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -subj "/O=cellsched/CN=cellsched CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    chmod 644 "$dir/ca.pem"
fi

ext=$(mktemp)
trap 'rm -f "$ext" "$ext.csr" "$ext.ca"' EXIT
cat >"$ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=$san
EOF

# The file name of ROLE[:NAME] into $file (and $role, $name), or exit 2.
file_of() {
    role=${1%%:*}
    case $role in
    server|operator|reader|scheduler|scheduler.batch|scheduler.service|agent) ;;
    *) echo "cellsched-certs.sh: $1: the role must be server, operator, reader, scheduler[.batch|.service] or agent" >&2
       exit 2 ;;
    esac
    case $1 in
    *:*) name=${1#*:}; file=$role-$name ;;
    *) name=; file=$role ;;
    esac
    case $name in *[!A-Za-z0-9._-]*)
        echo "cellsched-certs.sh: $1: a name is letters, digits, '.', '_' and '-'" >&2; exit 2 ;;
    esac
}

for who in "$@"; do
    file_of "$who"
    if [ -f "$dir/$file.pem" ] && [ -f "$dir/$file.key" ]; then
        continue
    fi
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/O=cellsched/OU=$role/CN=$who" -keyout "$dir/$file.key" -out "$ext.csr" 2>/dev/null
    openssl x509 -req -in "$ext.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
        -days "$days" -extfile "$ext" -out "$dir/$file.pem" 2>/dev/null
    chmod 644 "$dir/$file.pem"
    echo "$dir/$file.pem  CN=$who"
done

[ -n "$crl" ] || exit 0

# Revocation: openssl ca with a minimal configuration around DIR's CA; its
# database (DIR/ca.index) keeps every revocation, so each CRL lists them all.
[ -f "$dir/ca.index" ] || : >"$dir/ca.index"
[ -f "$dir/ca.crlnumber" ] || echo 1000 >"$dir/ca.crlnumber"
cat >"$ext.ca" <<EOF
[ ca ]
default_ca = cell
[ cell ]
database = $dir/ca.index
crlnumber = $dir/ca.crlnumber
certificate = $dir/ca.pem
private_key = $dir/ca.key
default_md = sha256
default_crl_days = $days
EOF
for who in $revoke; do
    file_of "$who"
    [ -f "$dir/$file.pem" ] || {
        echo "cellsched-certs.sh: --revoke $who: no $dir/$file.pem" >&2
        exit 1
    }
    if ! out=$(openssl ca -config "$ext.ca" -revoke "$dir/$file.pem" 2>&1); then
        case $out in
        *"Already revoked"*) ;;
        *) echo "cellsched-certs.sh: --revoke $who: $out" >&2; exit 1 ;;
        esac
    fi
    echo "$dir/$file.pem  revoked"
done
openssl ca -config "$ext.ca" -gencrl -out "$dir/crl.pem" 2>/dev/null || {
    echo "cellsched-certs.sh: openssl could not write $dir/crl.pem" >&2
    exit 1
}
chmod 644 "$dir/crl.pem"
echo "$dir/crl.pem  CRL, good for $days days"
