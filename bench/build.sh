#!/usr/bin/env bash
# Issue 13's benchmarks: `berth build` of the shared harness's Dockerfile, cold and cached,
# against docker BuildKit and buildah (../shared/bench/build-bench.sh measures those); then
# the real multi-stage build (gcc in Debian, the binary into busybox), cold and with one
# source file changed (see "The real multi-stage build" below).
#
#   bench/build.sh                   (env: RUNS=10 W=/dev/shm/berth-build BERTH=path COMPARE=0
#                                     GCC=1 GRUNS=5 GW=/var/tmp/berth-build-gcc GCC_ROOTFS=…
#                                     BUILDKIT=1: the gcc builds on a private dockerd too)
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

# ---- The real multi-stage build (GCC=1, on by default) -------------------------------------
# A C program (three files) compiled with gcc -O2 -static in a Debian bookworm image
# (debootstrap --variant=minbase --include=gcc,libc6-dev: 332 MB, one layer), the binary
# copied into a busybox stage. `cold`: both base images present, no build cache, no result;
# `one file changed`: one source file gets a new line, so its COPY, the compile and the final
# COPY run again. The Debian rootfs is made once into $GCC_ROOTFS (needs debootstrap and the
# Debian mirror); the stores sit on disk ($GW, /var/tmp) for both builders. With BUILDKIT=1,
# docker BuildKit does the same builds from a dockerd 20.10 of our own (private socket,
# data root and exec root under $GW, --bridge=none --iptables=false, builds with
# --network none; stopped at the end). buildah is measured when installed.
if [ "${GCC:-1}" = 1 ]; then
    GCC_ROOTFS=${GCC_ROOTFS:-/var/tmp/berth-bench/debian-gcc-rootfs}
    GW=${GW:-/var/tmp/berth-build-gcc}
    RUNS=${GRUNS:-5}
    if [ ! -x "$GCC_ROOTFS/usr/bin/gcc" ]; then
        log "debootstrap of the gcc image into $GCC_ROOTFS"
        debootstrap --variant=minbase --include=gcc,libc6-dev bookworm "$GCC_ROOTFS" \
            "${MIRROR:-http://deb.debian.org/debian}" > "$W/debootstrap.log" 2>&1
        chroot "$GCC_ROOTFS" apt-get clean
        rm -rf "$GCC_ROOTFS"/var/lib/apt/lists/* "$GCC_ROOTFS"/var/log/*.log "$GCC_ROOTFS"/dev/*
    fi
    rm -rf "$GW"; mkdir -p "$GW/ctx/src"
    GROOT=$GW/root; GB="$BERTH --root $GROOT"
    tar -C "$GCC_ROOTFS" -cf "$GW/debian-gcc.tar" .
    $GB import "$GW/debian-gcc.tar" bench/debian-gcc:latest >/dev/null
    $GB import "$W/busybox.tar" bench/busybox:latest >/dev/null
    cat > "$GW/ctx/src/util.h" <<'EOF'
unsigned long fib(unsigned n);
unsigned long checksum(const char *s);
EOF
    cat > "$GW/ctx/src/util.c" <<'EOF'
#include "util.h"
unsigned long fib(unsigned n) { unsigned long a = 0, b = 1; while (n--) { unsigned long t = a + b; a = b; b = t; } return a; }
unsigned long checksum(const char *s) { unsigned long h = 5381; while (*s) h = h * 33 + (unsigned char)*s++; return h; }
EOF
    cat > "$GW/ctx/src/main.c" <<'EOF'
#include <stdio.h>
#include "util.h"
int main(int argc, char **argv) {
    printf("fib(50)=%lu checksum=%lu\n", fib(50), checksum(argc > 1 ? argv[1] : "berth"));
    return 0;
}
EOF
    cat > "$GW/ctx/Dockerfile" <<'EOF'
FROM bench/debian-gcc:latest AS build
WORKDIR /src
COPY src/ ./
RUN gcc -O2 -static -o /app main.c util.c
FROM bench/busybox:latest
COPY --from=build /app /app
CMD ["/app"]
EOF
    cd "$GW/ctx"
    GBUILD="$GB build -q --network none -t bench/gcc:latest ."
    GCOLD_PREP="$GB rmi -f bench/gcc:latest; rm -rf $GROOT/builder/cache"
    log "berth gcc cold"; gcold=$(measure gcc-cold "$GCOLD_PREP" "$GBUILD")
    $GBUILD >/dev/null 2>&1
    CHANGE="echo '/* '\$(date +%s%N)' */' >> $GW/ctx/src/util.c"
    log "berth gcc one file changed"; gchanged=$(measure gcc-changed "$CHANGE" "$GBUILD")
    out=$($GB run --rm --network none bench/gcc:latest)
    case "$out" in "fib(50)=12586269025 checksum="*) ;; *) log "!! the built program printed: $out" ;; esac
    dcold="-"; dchanged="-"; bcold="-"; bchanged="-"
    if [ "${BUILDKIT:-0}" = 1 ]; then
        DS=$GW/docker; mkdir -p "$DS"; echo '{}' > "$DS/daemon.json"
        DK="/usr/bin/docker -H unix://$DS/docker.sock"
        dockerd --host "unix://$DS/docker.sock" --data-root "$DS/data" --exec-root "$DS/exec" \
            --pidfile "$DS/dockerd.pid" --config-file "$DS/daemon.json" --bridge=none \
            --iptables=false --ip6tables=false > "$GW/dockerd.log" 2>&1 &
        DPID=$!
        stop_dockerd() {
            kill "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null || true
            { grep " $DS/" /proc/self/mountinfo || true; } | awk '{print $5}' | sort -r \
                | xargs -r -n1 umount -l
        }
        trap stop_dockerd EXIT
        for _ in $(seq 100); do $DK version >/dev/null 2>&1 && break; sleep 0.2; done
        $DK import "$GW/debian-gcc.tar" bench/debian-gcc:latest >/dev/null
        $DK import "$W/busybox.tar" bench/busybox:latest >/dev/null
        DBUILD="DOCKER_BUILDKIT=1 $DK build -q --network none -t bench/gcc:latest ."
        DCOLD_PREP="$DK rmi -f bench/gcc:latest; $DK builder prune -af"
        log "BuildKit gcc cold"; dcold=$(measure dk-gcc-cold "$DCOLD_PREP" "$DBUILD")
        bash -c "$DBUILD" >/dev/null 2>&1
        log "BuildKit gcc one file changed"; dchanged=$(measure dk-gcc-changed "$CHANGE" "$DBUILD")
        stop_dockerd; trap - EXIT
        if command -v buildah >/dev/null; then
            BB="buildah bud -q --layers --network none -t bench/gcc:latest ."
            buildah pull -q "docker-archive:$GW/debian-gcc.tar" >/dev/null 2>&1 || true
            log "buildah gcc cold"
            bcold=$(measure bh-gcc-cold "buildah rmi -f bench/gcc:latest; buildah rmi --prune -f" "$BB")
            log "buildah gcc one file changed"; bchanged=$(measure bh-gcc-changed "$CHANGE" "$BB")
        fi
    fi
    first() { echo "${1%% *}"; }
    gr() { if [ "$2" = "-" ]; then echo "-"; else ratio "$(first "$1")" "$(first "$2")"; fi; }
    cat <<EOF

| gcc multi-stage build | berth median s (min max) | docker BuildKit median s (min max) | buildah --layers | berth / BuildKit |
|---|---|---|---|---|
| cold | $gcold | $dcold | $bcold | $(gr "$gcold" "$dcold") |
| one file changed | $gchanged | $dchanged | $bchanged | $(gr "$gchanged" "$dchanged") |
EOF
    cd /; rm -rf "$GW"
fi
rm -rf "$W"
