#!/usr/bin/env bash
# Issue 18's benchmark: rootless berth beside rootless podman, as the same ordinary user with
# the same image from the local registry (../shared/bench/registry.sh, images.sh).
#
#   bench/rootless.sh        env: RUNS=30 PULL_RUNS=3 REG=127.0.0.1:5000
#                                 BERTH=target/release/berth BENCH_USER=berthbench
#
# Measured (medians): `run --rm IMG true` with each engine's default rootless network
# (slirp4netns for both) and with `--network none`; the pull of bench/debian into an empty
# store (berth: a fresh XDG_DATA_HOME; podman: a fresh --root), PULL_RUNS times. Both stores
# are on a tmpfs (as ../shared/bench's pull figures), so the disk does not decide.
# The user is created if missing (with 65536 subordinate ids) and left for later runs;
# /dev/net/tun is made 0666 for the run (as udev would) and put back after.
# Create /tmp/berth-quiet first if other work shares the machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS=${RUNS:-30}; PULL_RUNS=${PULL_RUNS:-3}; REG=${REG:-127.0.0.1:5000}
BERTH=${BERTH:-$PWD/target/release/berth}; USER_NAME=${BENCH_USER:-berthbench}
IMG=$REG/bench/busybox:latest; BIG=$REG/bench/debian:latest
[ "$(id -u)" -eq 0 ] || { echo "rootless.sh: run as root (it sets up the user)" >&2; exit 1; }
[ -x "$BERTH" ] || cargo build --release -p berth-cli >&2
command -v podman >/dev/null || { echo "rootless.sh: podman is not installed" >&2; exit 1; }

if ! id "$USER_NAME" >/dev/null 2>&1; then
    useradd -m -s /bin/sh "$USER_NAME"
fi
grep -q "^$USER_NAME:" /etc/subuid || echo "$USER_NAME:1500000000:65536" >>/etc/subuid
grep -q "^$USER_NAME:" /etc/subgid || echo "$USER_NAME:1500000000:65536" >>/etc/subgid
uid=$(id -u "$USER_NAME")
work=$(mktemp -d /tmp/berth-rlbench.XXXXXX)
chmod 755 "$work"
tun_mode=$(stat -c %a /dev/net/tun)
cleanup() {
    set +e
    pkill -KILL -u "$USER_NAME"
    sleep 0.2
    chmod "$tun_mode" /dev/net/tun
    umount -l "$work/data" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
chmod 666 /dev/net/tun
install -m 755 "$BERTH" "$work/berth"
mkdir -p "$work/run" "$work/data" && mount -t tmpfs -o size=4g tmpfs "$work/data" && chown "$uid:$uid" "$work/run" "$work/data" && chmod 700 "$work/run"
home=$(getent passwd "$USER_NAME" | cut -d: -f6)
as_user() {
    setpriv --reuid="$uid" --regid="$uid" --clear-groups -- env -i HOME="$home" \
        XDG_RUNTIME_DIR="$work/run" XDG_DATA_HOME="$work/data" USER="$USER_NAME" \
        PATH=/usr/bin:/bin:/usr/sbin:/sbin "$@"
}
B() { as_user "$work/berth" "$@"; }
P() { as_user podman --root "$work/data/podman" --runroot "$work/run/podman" "$@"; }

# Milliseconds of each of RUNS runs of a command; prints the median.
median_ms() {
    local n=$1; shift
    local t=()
    for _ in $(seq "$n"); do
        local a b
        a=$(date +%s%N); "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; return 1; }; b=$(date +%s%N)
        t+=("$(( (b - a) / 1000 ))")
    done
    printf '%s\n' "${t[@]}" | sort -n | awk '{v[NR]=$1} END {m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%.1f\n", m/1000}'
}

B pull -q "$IMG" >/dev/null
P pull -q --tls-verify=false "$IMG" >/dev/null
for i in 1 2 3; do B run --rm "$IMG" true; P run --rm "$IMG" true; done >/dev/null 2>&1

printf 'what\tberth ms\tpodman ms\tratio\n'
row() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$(echo "scale=3; $2 / $3" | bc)"; }
b=$(median_ms "$RUNS" B run --rm "$IMG" true)
p=$(median_ms "$RUNS" P run --rm "$IMG" true)
row "run --rm (slirp4netns)" "$b" "$p"
b=$(median_ms "$RUNS" B run --rm --network none "$IMG" true)
p=$(median_ms "$RUNS" P run --rm --network none "$IMG" true)
row "run --rm --network none" "$b" "$p"

if curl -sf "http://$REG/v2/bench/debian/tags/list" >/dev/null; then
    pull_b() { rm -rf "$work/data/berth"; B pull -q "$BIG"; }
    pull_p() { rm -rf "$work/data/podman-pull"; as_user podman --root "$work/data/podman-pull" \
        --runroot "$work/run/podman-pull" pull -q --tls-verify=false "$BIG"; }
    b=$(median_ms "$PULL_RUNS" pull_b)
    p=$(median_ms "$PULL_RUNS" pull_p)
    row "pull bench/debian (empty store)" "$b" "$p"
else
    echo "pull: $REG has no bench/debian (run ../shared/bench/images.sh)" >&2
fi
