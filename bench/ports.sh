#!/usr/bin/env bash
# Issue 12's port benchmark: throughput and latency of a published port and between two
# containers, berth beside docker and podman.
#
#   bench/ports.sh [ENGINE...]     (default: berth docker podman)
#   env: ROUNDS=3 CONNS=2000 RRS=20000 SECS=5 BERTH=target/release/berth DOCKER_CLI=/usr/bin/docker
#
# The server is bench/netperf.rs (std only, built static): the image's only file, and the
# client on the host. Per engine, a server container published with `-p PORT:5201`, then
#   * connect   host -> 127.0.0.1:PORT: connect, 1-byte request and answer, close (CONNS times):
#               the cost of reaching a published port (docker: docker-proxy, a userland copy;
#               podman 4.3: netavark's DNAT; berth: nftables DNAT, no process)
#   * rr        the same, RRS round trips on one connection
#   * stream    SECS seconds of 128 KiB writes on one connection (Gbit/s)
#   * c2c-rr / c2c-stream  a second container to the first by its address on the network
# ROUNDS rounds, engines interleaved within a round; medians of the rounds.
# berth runs inside a throwaway network namespace (its bridge and nftables table never touch
# this machine's own; a network namespace's loopback is the same code as the host's); docker
# and podman run as they normally do, on the host. dockerd is started if not running, and
# stopped again after. Create /tmp/berth-quiet first if other work shares the machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROUNDS=${ROUNDS:-3}; CONNS=${CONNS:-2000}; RRS=${RRS:-20000}; SECS=${SECS:-5}
BERTH=${BERTH:-$PWD/target/release/berth}; D=${DOCKER_CLI:-/usr/bin/docker}
U="--ulimit nofile=20000:20000 --ulimit nproc=32768:32768"   # podman 4.3 on this VM
[ "$(id -u)" -eq 0 ] || { echo "ports.sh: run as root" >&2; exit 1; }
[ $# -gt 0 ] || set -- berth docker podman
[ -x "$BERTH" ] || cargo build --release -p berth-cli >&2

work=$(mktemp -d /tmp/berth-ports.XXXXXX)
ns=berthbench-$$
dockerd_pid=
cleanup() {
    set +e
    "$BERTH" --root "$work/root" ps -aq 2>/dev/null | while read -r id; do
        nsenter --net=/run/netns/$ns "$BERTH" --root "$work/root" rm -f "$id" >/dev/null 2>&1
    done
    ip netns del $ns 2>/dev/null
    $D rm -f berth-ports-srv >/dev/null 2>&1
    podman rm -f berth-ports-srv >/dev/null 2>&1
    [ -n "$dockerd_pid" ] && kill "$dockerd_pid" 2>/dev/null && wait "$dockerd_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

rustc -O -C target-feature=+crt-static bench/netperf.rs -o "$work/netperf"
mkdir -p "$work/rootfs" && cp "$work/netperf" "$work/rootfs/netperf"
tar -C "$work/rootfs" -cf "$work/netperf.tar" netperf
NP=$work/netperf

ip netns add $ns
ip -n $ns link set lo up
B() { nsenter --net=/run/netns/$ns "$BERTH" --root "$work/root" "$@"; }
HOSTNS() { nsenter --net=/run/netns/$ns "$@"; }

for e in "$@"; do
    case $e in
    berth)
        B import "$work/netperf.tar" netperf:bench >/dev/null
        B run -d --name srv -p 18080:5201 netperf:bench /netperf serve 5201 >/dev/null ;;
    docker)
        if ! $D info >/dev/null 2>&1; then
            nohup /usr/sbin/dockerd >"$work/dockerd.log" 2>&1 &
            dockerd_pid=$!
            for _ in $(seq 100); do $D info >/dev/null 2>&1 && break; sleep 0.2; done
        fi
        $D import "$work/netperf.tar" netperf:bench >/dev/null
        $D run -d --name berth-ports-srv -p 18081:5201 netperf:bench /netperf serve 5201 >/dev/null ;;
    podman)
        podman import "$work/netperf.tar" netperf:bench >/dev/null
        # shellcheck disable=SC2086
        podman run -d $U --name berth-ports-srv -p 18082:5201 netperf:bench /netperf serve 5201 >/dev/null ;;
    *) echo "ports.sh: unknown engine $e" >&2; exit 2 ;;
    esac
done
sleep 1

# One measurement: ENGINE KIND -> prints the figure (µs p50 for connect/rr, Gbit/s for stream).
measure() {
    local e=$1 kind=$2 port addr out
    case $e in berth) port=18080;; docker) port=18081;; podman) port=18082;; esac
    case $kind in
    connect) out=$(run_client "$e" host "$NP" connect 127.0.0.1:$port "$CONNS") ;;
    rr) out=$(run_client "$e" host "$NP" rr 127.0.0.1:$port "$RRS") ;;
    stream) out=$(run_client "$e" host "$NP" stream 127.0.0.1:$port "$SECS") ;;
    c2c-rr) out=$(run_client "$e" ctr /netperf rr "$(server_ip "$e")":5201 "$RRS") ;;
    c2c-stream) out=$(run_client "$e" ctr /netperf stream "$(server_ip "$e")":5201 "$SECS") ;;
    esac
    case $kind in
    *stream) sed -n 's/.*gbit_s=\([0-9.]*\).*/\1/p' <<<"$out" ;;
    *) sed -n 's/.*p50_us=\([0-9.]*\).*/\1/p' <<<"$out" ;;
    esac
}
server_ip() {
    case $1 in
    berth) B inspect -f '{{.NetworkSettings.IPAddress}}' srv ;;
    docker) $D inspect -f '{{.NetworkSettings.IPAddress}}' berth-ports-srv ;;
    podman) podman inspect -f '{{.NetworkSettings.IPAddress}}' berth-ports-srv ;;
    esac
}
run_client() { # ENGINE host|ctr CMD...
    local e=$1 where=$2; shift 2
    if [ "$where" = host ]; then
        if [ "$e" = berth ]; then HOSTNS "$@"; else "$@"; fi
    else
        case $e in
        berth) B run --rm netperf:bench "$@" ;;
        docker) $D run --rm netperf:bench "$@" ;;
        # shellcheck disable=SC2086
        podman) podman run --rm $U netperf:bench "$@" ;;
        esac
    fi
}

kinds="connect rr stream c2c-rr c2c-stream"
for r in $(seq "$ROUNDS"); do
    for k in $kinds; do
        for e in "$@"; do
            v=$(measure "$e" "$k")
            echo "$e $k $v" >>"$work/raw"
            echo "round $r: $e $k $v" >&2
        done
    done
done

median() { sort -n | awk '{a[NR]=$1} END {if (NR) print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
printf '| what | %s |\n|---|%s\n' "$(echo "$@" | sed 's/ / | /g')" "$(printf -- '---|%.0s' "$@")"
for k in $kinds; do
    case $k in
    connect) label="127.0.0.1:PORT connect+1 B+close, p50 µs" ;;
    rr) label="127.0.0.1:PORT 1-byte round trip, p50 µs" ;;
    stream) label="127.0.0.1:PORT stream, Gbit/s" ;;
    c2c-rr) label="container→container round trip, p50 µs" ;;
    c2c-stream) label="container→container stream, Gbit/s" ;;
    esac
    row="| $label |"
    for e in "$@"; do
        row="$row $(awk -v e="$e" -v k="$k" '$1==e && $2==k {print $3}' "$work/raw" | median) |"
    done
    echo "$row"
done
