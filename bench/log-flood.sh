#!/usr/bin/env bash
# Issue 19: a log flood. A container writes MB megabytes of `yes` (2-byte lines, the worst
# case for a line-based log driver) as fast as it can; prints how long the monitor takes to
# log them (json-file, --log-opt max-size=10m max-file=2) and the monitor's CPU time, and
# how long a `berth ps` takes meanwhile.
#
#   bench/log-flood.sh                 (env: MB=200, BERTH=target/debug/berth)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ "$(id -u)" -eq 0 ] || { echo "log-flood.sh: run as root" >&2; exit 1; }
MB=${MB:-200}
BERTH=${BERTH:-${CARGO_TARGET_DIR:-target}/debug/berth}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
mkdir -p "$tmp/rfs/bin"
cp /bin/busybox "$tmp/rfs/bin/"
for l in sh yes head sleep; do ln -s busybox "$tmp/rfs/bin/$l"; done
tar -C "$tmp/rfs" -cf "$tmp/bb.tar" .
b() { "$BERTH" --root "$root" "$@"; }
b import "$tmp/bb.tar" bb >/dev/null
trap 'b rm -f flood >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
bytes=$((MB * 1024 * 1024))
t0=$(date +%s.%N)
b run -d --name flood --network none --log-opt max-size=10m --log-opt max-file=2 bb \
  sh -c "yes | head -c $bytes" >/dev/null
mon=$(pgrep -f "__monitor $(b inspect --format '{{.Id}}' flood)" | head -1)
tick=$(getconf CLK_TCK)
cpu=0
p0=$(date +%s.%N); b ps >/dev/null; p1=$(date +%s.%N)
while [ -r "/proc/$mon/stat" ]; do
  # utime + stime of the monitor, while it lives
  c=$(awk '{print $14 + $15}' "/proc/$mon/stat" 2>/dev/null || echo "$cpu")
  cpu=${c:-$cpu}
  sleep 0.05
done
b wait flood >/dev/null
t1=$(date +%s.%N)
size=$(du -cb "$root"/containers/*/*-json.log* | tail -1 | cut -f1)
awk -v mb="$MB" -v t0="$t0" -v t1="$t1" -v cpu="$cpu" -v tick="$tick" -v p0="$p0" -v p1="$p1" -v size="$size" 'BEGIN {
  w = t1 - t0; c = cpu / tick;
  printf "%d MB of 2-byte lines: %.2f s wall (%.1f MB/s), monitor CPU %.2f s; log on disk %.1f MB (max 20); ps during the flood %.0f ms\n",
    mb, w, mb / w, c, size / 1048576, (p1 - p0) * 1000 }'
