#!/usr/bin/env bash
# Issue 13's benchmark: `berth build` of the shared harness's Dockerfile, cold and cached,
# against docker BuildKit and buildah (../shared/bench/build-bench.sh measures those).
#
#   bench/build.sh                   (env: RUNS=10 W=/dev/shm/berth-build BERTH=path COMPARE=0)
#
# The Dockerfile is the harness's (build-bench.sh):
#   FROM 127.0.0.1:5000/bench/busybox:latest
#   RUN echo "hello from RUN" > /hello.txt
#   COPY payload.txt /payload.txt          (4 KiB of base64)
# berth's base image is a busybox rootfs (Debian's /bin/busybox, busybox-static) imported
# under that name into a store on tmpfs, so no registry is needed; docker and buildah pull
# theirs from the harness's registry. Definitions as the harness's:
#   cold   = base image present, no build cache: berth's builder cache, the built image and
#            every unreferenced blob/snapshot removed before each run (`rmi` + the cache dir)
#   cached = the same build repeated, every step a cache hit
# Each run is `berth build -q -t bench/bud:latest .` timed end to end (process start to
# exit). Medians over RUNS. With COMPARE=1 the harness's build-bench.sh also runs (docker,
# buildah; it needs the registry and dockerd) with berth's cached build as its EXTRA.
# Prints a Markdown table; the docker/buildah columns without COMPARE=1 are the harness's
# figures of record (../shared/bench/BASELINE.md §4).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS=${RUNS:-10}; W=${W:-/dev/shm/berth-build}
[ "$(id -u)" -eq 0 ] || { echo "build.sh: run as root" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
[ -x /bin/busybox ] || { echo "build.sh: needs Debian's busybox-static (/bin/busybox)" >&2; exit 1; }
if [ -z "${BERTH:-}" ]; then
    CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} cargo build --release -p berth-cli >&2
    BERTH=${CARGO_TARGET_DIR:-$PWD/target}/release/berth
fi
rm -rf "$W"; mkdir -p "$W/ctx" "$W/rootfs/bin" "$W/rootfs/etc" "$W/rootfs/tmp"
ROOT=$W/root
B="$BERTH --root $ROOT"
cp /bin/busybox "$W/rootfs/bin/busybox"
for l in sh echo cat ls true; do ln -s busybox "$W/rootfs/bin/$l"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$W/rootfs/etc/passwd"
tar -C "$W/rootfs" -cf "$W/busybox.tar" .
BASEIMG=127.0.0.1:5000/bench/busybox:latest
$B import "$W/busybox.tar" "$BASEIMG" >/dev/null
head -c 4096 /dev/urandom | base64 > "$W/ctx/payload.txt"
cat > "$W/ctx/Dockerfile" <<EOF
FROM $BASEIMG
RUN echo "hello from RUN" > /hello.txt
COPY payload.txt /payload.txt
EOF
cd "$W/ctx"

now_ns() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.4f\n", (a[NR/2]+a[NR/2+1])/2}'; }
# measure NAME PREP CMD: RUNS timings of CMD (PREP untimed before each); "median min max".
measure() {
    local f=$W/$1.txt; : > "$f"
    for _ in $(seq "$RUNS"); do
        bash -c "$2" >/dev/null 2>&1 || true
        local t0; t0=$(now_ns)
        bash -c "$3" > "$W/last.log" 2>&1 || { log "!! $1 failed"; tail -5 "$W/last.log" >&2; return 1; }
        echo "scale=4; ($(now_ns)-$t0)/1000000000" | bc >> "$f"
    done
    echo "$(median < "$f") $(sort -n "$f" | head -1) $(sort -n "$f" | tail -1)"
}
BUILD="$B build -q -t bench/bud:latest ."
COLD_PREP="$B rmi -f bench/bud:latest; rm -rf $ROOT/builder/cache"
log "berth cold"; cold=$(measure cold "$COLD_PREP" "$BUILD")
$BUILD >/dev/null 2>&1
log "berth cached"; cached=$(measure cached "true" "$BUILD")
# The cached build really was all hits (and the image runs).
$B build --progress plain -t bench/bud:latest . 2>&1 | grep -c CACHED | grep -qx 2
[ "$($B run --rm --network none bench/bud:latest cat /hello.txt)" = "hello from RUN" ]

if [ "${COMPARE:-0}" = 1 ]; then
    EXTRA="berth cached=$BUILD" bash /work/shared/bench/build-bench.sh
fi
read -r cm cmin cmax <<< "$cold"; read -r hm hmin hmax <<< "$cached"
ratio() { echo "scale=2; $1/$2" | bc; }
cat <<EOF
| build | berth median s (min-max) | docker BuildKit s | buildah --layers s | berth / BuildKit |
|---|---|---|---|---|
| cold (no build cache) | $cm ($cmin-$cmax) | 0.243 | 0.527 | $(ratio "$cm" 0.243) |
| cached (every step a hit) | $hm ($hmin-$hmax) | 0.085 | 0.120 | $(ratio "$hm" 0.085) |
EOF
rm -rf "$W"
