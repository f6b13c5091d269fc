#!/bin/sh
# deps.sh — what cellsched needs on a Debian machine, checked by what it is
# (a command, a pkg-config module, a header) and installed by package name.
#
#   tools/deps.sh check     print each missing piece by name; exit 1 if any
#   tools/deps.sh install   install the packages of the missing pieces with
#                           apt-get (through sudo when not root), then check
#                           again and name whatever is still missing
#   tools/deps.sh check fuzz, tools/deps.sh install fuzz
#                           the same for what `make fuzz` needs besides:
#                           clang and its libFuzzer runtime (FUZZ_CC names
#                           the clang to look for; default clang)
#   tools/deps.sh check tests, tools/deps.sh install tests
#                           the same for the optional tools some suites use
#                           and skip without, naming the package: promtool
#                           (Debian's prometheus) for test_prom and
#                           test_promtext, chromium for test_ui, curl for
#                           test_tls's https check; ./test.sh
#                           installs them, so CI runs those checks
#   tools/deps.sh check bench, tools/deps.sh install bench
#                           the same for what `cellbench etcd` compares
#                           against: etcd 3.4 (Debian's etcd-server); never
#                           part of the default install
#
# Why a POSIX sh script and not a make target: the README's two commands
# (./test.sh, ./run.sh) must work on a fresh Debian that has neither make nor
# a compiler, so the one list of what is needed has to be readable before
# make exists. The Makefile only runs `check` (it never installs while it
# parses) and `make deps` runs `install`.
#
# Probes, not package names, decide what is missing: Debian's libnng-dev
# ships no pkg-config file, so a pkg-config check alone never noticed a
# missing nng; a package can also be installed yet broken or shadowed.
#
# Environment: CC (the compiler to look for; default cc), FUZZ_CC (the
# same for the fuzz group; default clang), DEPS_DRY_RUN=1
# (install prints the commands it would run instead of running them), and
# for the tests' stand-ins: DEPS_APT (apt-get by default), DEPS_SUDO (sudo
# by default; a name not on PATH acts as a machine without sudo).
set -u

CC_CMD=${CC:-cc}
# The first word only: CC may be "ccache gcc" or carry flags.
CC_CMD=${CC_CMD%% *}

# One line per piece: name|probe kind|probe argument|Debian package.
# Probe kinds: cmd (on PATH), pc (pkg-config module), hdr (a header the
# compiler finds), lib (a library the linker finds).
pieces() {
    cat <<EOF
make|cmd|make|make
compiler ($CC_CMD)|cmd|$CC_CMD|gcc
C library headers|hdr|stdio.h|libc6-dev
pkg-config|cmd|pkg-config|pkg-config
liblmdb|pc|lmdb|liblmdb-dev
lmdb-utils|cmd|mdb_stat|lmdb-utils
libnng|hdr|nng/nng.h|libnng-dev
libnng (library)|lib|nng|libnng-dev
mbedTLS (TLS file checks, the TLS engine)|hdr|mbedtls/ssl.h|libmbedtls-dev
openssl (tools/cellsched-certs.sh)|cmd|openssl|openssl
msgpack-c|pc|msgpack|libmsgpack-dev
xxhash|pc|libxxhash|libxxhash-dev
jansson|pc|jansson|libjansson-dev
libraft (replication)|pc|raft|libraft-dev
libuv (replication)|pc|libuv|libuv1-dev
zlib (cellsim's trace reader)|pc|zlib|zlib1g-dev
criterion|pc|criterion|libcriterion-dev
nanomsg (compat tests)|pc|nanomsg|libnanomsg-dev
nanomsg-utils|cmd|nanocat|nanomsg-utils
gnuplot (cellsim plot)|cmd|gnuplot|gnuplot-nox
man (test_install renders the man pages)|cmd|man|man-db
EOF
}

# What `make fuzz` needs besides: clang, and the libFuzzer and sanitizer
# runtimes, which Debian ships apart from clang (clang only recommends
# libclang-rt-dev, and installs here run --no-install-recommends). Asked
# for only by `check fuzz` and `install fuzz` (./test.sh, make fuzz):
# building and running cellsched needs neither.
fuzz_pieces() {
    fcc=${FUZZ_CC:-clang}
    fcc=${fcc%% *}
    cat <<EOF
clang ($fcc)|cmd|$fcc|clang
libFuzzer ($fcc -fsanitize=fuzzer)|fuzzer|$fcc|libclang-rt-dev
EOF
}

# The optional tools of the suites (a suite skips that check without one,
# naming the package). Asked for only by `check tests` and `install tests`
# (./test.sh): building cellsched and running the other suites need none.
test_pieces() {
    cat <<EOF
promtool (test_prom, test_promtext)|cmd|promtool|prometheus
chromium (test_ui: the dashboard in a headless browser)|cmd|chromium|chromium
curl (test_tls: the HTTP API over https with client certificates)|cmd|curl|curl
EOF
}

# What `cellbench etcd` needs besides: the etcd server it starts on
# 127.0.0.1. Asked for only by `check bench` and `install bench`: the
# benchmark skips, saying so, without it, and nothing else uses it.
bench_pieces() {
    cat <<EOF
etcd 3.4 (cellbench etcd)|cmd|etcd|etcd-server
EOF
}

have_cmd() { command -v "$1" >/dev/null 2>&1; }

# Headers and libraries are asked of the compiler when there is one (it knows
# its own search paths); without one, Debian's standard places are looked at,
# so that a missing compiler is not also reported as every missing header.
probe() { # kind arg
    case "$1" in
    cmd) have_cmd "$2" ;;
    pc) have_cmd pkg-config && pkg-config --exists "$2" 2>/dev/null ;;
    hdr)
        if have_cmd "$CC_CMD"; then
            printf '#include <%s>\n' "$2" | "$CC_CMD" -E -x c - >/dev/null 2>&1
        else
            [ -f "/usr/include/$2" ] || [ -f "/usr/local/include/$2" ]
        fi
        ;;
    lib)
        if have_cmd "$CC_CMD"; then
            printf 'int main(void){return 0;}\n' | "$CC_CMD" -x c - -o /dev/null -l"$2" >/dev/null 2>&1
        else
            for f in /usr/lib/lib"$2".so /usr/lib/*/lib"$2".so /usr/local/lib/lib"$2".so; do
                [ -e "$f" ] && return 0
            done
            return 1
        fi
        ;;
    fuzzer)
        # A whole libFuzzer target, linked under the sanitizers make fuzz uses.
        have_cmd "$2" || return 1
        printf '%s\n%s\n' 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n);' \
            'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return d && n; }' |
            "$2" -fsanitize=fuzzer,address,undefined -x c - -o /dev/null >/dev/null 2>&1
        ;;
    *) return 1 ;;
    esac
}

# Prints "name|package" for each missing piece of $GROUP (empty: what
# cellsched needs; fuzz: what make fuzz needs besides; tests: the suites'
# optional tools; bench: what
# cellbench etcd needs besides).
group_pieces() {
    case "$GROUP" in
    fuzz) fuzz_pieces ;;
    tests) test_pieces ;;
    bench) bench_pieces ;;
    *) pieces ;;
    esac
}

missing() {
    group_pieces | while IFS='|' read -r name kind arg pkg; do
        probe "$kind" "$arg" || printf '%s|%s\n' "$name" "$pkg"
    done
}

names() { cut -d'|' -f1 | paste -sd, - | sed 's/,/, /g'; }
packages() { cut -d'|' -f2 | sort -u | paste -sd' ' -; }

check() {
    m=$(missing)
    if [ -n "$m" ]; then
        echo "cellsched: missing: $(printf '%s\n' "$m" | names)" >&2
        if [ "$GROUP" = fuzz ]; then
            echo "cellsched: install them with: sh tools/deps.sh install fuzz (or ./test.sh, which does it first)" >&2
        elif [ "$GROUP" = tests ]; then
            echo "cellsched: install them with: sh tools/deps.sh install tests (or ./test.sh, which does it first)" >&2
        elif [ "$GROUP" = bench ]; then
            echo "cellsched: install them with: sh tools/deps.sh install bench" >&2
        else
            echo "cellsched: install them with: make deps (or ./test.sh, which does it first)" >&2
        fi
        return 1
    fi
    return 0
}

run() { # command... (printed instead with DEPS_DRY_RUN=1)
    if [ "${DEPS_DRY_RUN:-}" = 1 ]; then
        echo "would run: $*"
    else
        "$@"
    fi
}

install() {
    m=$(missing)
    if [ -z "$m" ]; then
        echo "cellsched: every dependency is present"
        return 0
    fi
    pkgs=$(printf '%s\n' "$m" | packages)
    echo "cellsched: missing: $(printf '%s\n' "$m" | names)"
    apt=${DEPS_APT:-apt-get}
    if [ "$(id -u)" -eq 0 ]; then
        sudo=""
    elif have_cmd "${DEPS_SUDO:-sudo}"; then
        sudo=${DEPS_SUDO:-sudo}
    else
        echo "cellsched: cannot install as $(id -un) without sudo; run as root: apt-get update && apt-get install -y $pkgs" >&2
        return 1
    fi
    echo "cellsched: installing: $pkgs"
    # shellcheck disable=SC2086 # $sudo and $pkgs are word lists on purpose
    if ! run $sudo "$apt" update -qq ||
        ! run $sudo env DEBIAN_FRONTEND=noninteractive "$apt" install -y -qq --no-install-recommends $pkgs; then
        echo "cellsched: apt-get failed installing: $pkgs" >&2
        return 1
    fi
    [ "${DEPS_DRY_RUN:-}" = 1 ] && return 0
    m=$(missing)
    if [ -n "$m" ]; then
        echo "cellsched: still missing after the install: $(printf '%s\n' "$m" | names) (packages: $(printf '%s\n' "$m" | packages))" >&2
        return 1
    fi
    echo "cellsched: every dependency is present"
}

GROUP=${2:-}
case "$GROUP" in
'' | fuzz | tests | bench) ;;
*)
    echo "usage: tools/deps.sh check|install [fuzz|tests|bench]" >&2
    exit 2
    ;;
esac
case "${1:-}" in
check) check ;;
install) install ;;
*)
    echo "usage: tools/deps.sh check|install [fuzz|tests|bench]" >&2
    exit 2
    ;;
esac
