#!/usr/bin/env bash
# Issue 5's benchmark: unpacking the debootstrap image (one gzip layer, ~76 MB compressed,
# ~172 MB of files) with berth, umoci and skopeo, side by side, on tmpfs.
#
#   bench/image-unpack.sh            (env: RUNS=7 W=/dev/shm/berth-unpack BERTH=path)
#
# The image is the shared harness's bench/debian:latest (../shared/bench/images.sh): a
# `debootstrap --variant=minbase bookworm` rootfs with python3 curl ca-certificates procps
# iproute2 less xz-utils, made into a one-layer OCI image with `umoci new` + `umoci insert`.
# Reused in this order: the local registry (127.0.0.1:5000, bench/debian:latest), the
# harness's OCI layout ($BASE/oci/debian), its debootstrap rootfs ($BASE/debian-rootfs);
# otherwise built here the way images.sh builds it (debootstrap takes a few minutes).
#
# berth has no registry client yet, so every tool starts from the same local bytes on tmpfs:
#   berth load (oci)     berth --root $W/berth load -i debian.oci.tar        (gzip layer)
#   berth load (docker)  berth --root $W/berth load -i debian.docker.tar     (plain layer: skopeo's
#                        docker-archive writer stores layers uncompressed)
#   umoci unpack         umoci unpack --image $W/oci:latest $W/bundle        (the OCI layout dir)
#   skopeo (oci)         skopeo copy oci-archive:debian.oci.tar containers-storage:[overlay@…]
#   skopeo (docker)      skopeo copy docker-archive:debian.docker.tar containers-storage:[overlay@…]
# berth's root is removed before each run (an empty store); skopeo's store is emptied with
# `podman rmi` (as ../shared/bench/pull-bench.sh does, so its one-time driver probes stay
# cached); umoci's bundle is removed. One round runs every tool once (interleaved); medians
# over RUNS rounds. Floors measured in the same run: zcat, sha256sum and GNU tar on the
# same bytes. Prints a Markdown table.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS=${RUNS:-7}; W=${W:-/dev/shm/berth-unpack}; BASE=${BASE:-/var/tmp/baseline}
REG=${REG:-127.0.0.1:5000}; MIRROR=${MIRROR:-http://deb.debian.org/debian}
[ "$(id -u)" -eq 0 ] || { echo "image-unpack.sh: run as root" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

need=()
for p in skopeo umoci podman debootstrap bc; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
if [ -z "${BERTH:-}" ]; then
    CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} cargo build --release -p berth-cli >&2
    BERTH=$PWD/target/release/berth
fi

# ---- the image ---------------------------------------------------------------------------
OCI=$BASE/oci/debian
if curl -fsS "http://$REG/v2/bench/debian/manifests/latest" -o /dev/null \
        -H 'Accept: application/vnd.oci.image.manifest.v1+json' 2>/dev/null; then
    log "image from the registry: $REG/bench/debian:latest"
    rm -rf "$OCI"; mkdir -p "$BASE/oci"
    skopeo copy -q --src-tls-verify=false "docker://$REG/bench/debian:latest" "oci:$OCI:latest"
elif [ -f "$OCI/index.json" ]; then
    log "image from the harness's OCI layout $OCI"
else
    DR=$BASE/debian-rootfs
    if [ ! -x "$DR/usr/bin/python3" ]; then
        log "debootstrap (a few minutes)"
        rm -rf "$DR"
        debootstrap --variant=minbase --include=python3,ca-certificates,curl,procps,iproute2,less,xz-utils \
            bookworm "$DR" "$MIRROR" > "$BASE/debootstrap.log" 2>&1
        chroot "$DR" apt-get clean
        rm -rf "$DR"/var/lib/apt/lists/* "$DR"/var/log/*.log "$DR"/dev/*
    fi
    log "image from $DR (umoci new + insert, as images.sh)"
    rm -rf "$OCI"; mkdir -p "$BASE/oci"
    umoci init --layout "$OCI"; umoci new --image "$OCI:latest"
    umoci insert --image "$OCI:latest" "$DR" /
    umoci config --image "$OCI:latest" --config.cmd /bin/bash \
        --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --os linux --architecture amd64
    umoci gc --layout "$OCI"
fi

# ---- inputs on tmpfs ---------------------------------------------------------------------
mountpoint -q /dev/shm || { echo "/dev/shm is not a tmpfs mount" >&2; exit 1; }
cleanup() {
    set +e
    podman --root "$W/cs/storage" --runroot "$W/cs/run" --storage-driver overlay rmi -af >/dev/null 2>&1
    awk '{print $5}' /proc/self/mountinfo | grep "^$W" | sort -r | while read -r m; do umount -l "$m"; done
    rm -rf "$W"
}
trap cleanup EXIT
cleanup; mkdir -p "$W/in" "$W/tmp" "$W/cs/storage" "$W/cs/run"
export TMPDIR=$W/tmp           # skopeo unpacks oci-archive sources into TMPDIR
cp -a "$OCI" "$W/oci"
skopeo copy -q "oci:$W/oci:latest" "oci-archive:$W/in/debian.oci.tar:bench/debian:latest"
skopeo copy -q "oci:$W/oci:latest" "docker-archive:$W/in/debian.docker.tar:bench/debian:latest"
LAYER=$(python3 - "$W/oci" <<'PY'
import json, sys, os
L = sys.argv[1]
idx = json.load(open(os.path.join(L, 'index.json')))
m = json.load(open(os.path.join(L, 'blobs', *idx['manifests'][0]['digest'].split(':'))))
assert len(m['layers']) == 1, m['layers']
print(os.path.join(L, 'blobs', *m['layers'][0]['digest'].split(':')))
PY
)
cp "$LAYER" "$W/in/layer.tar.gz"; zcat "$W/in/layer.tar.gz" > "$W/in/layer.tar"
gz_mb=$(( $(stat -c %s "$W/in/layer.tar.gz") / 1000000 )); tar_mb=$(( $(stat -c %s "$W/in/layer.tar") / 1000000 ))
nfiles=$(tar -tf "$W/in/layer.tar" 2>/dev/null | wc -l)
log "layer: $gz_mb MB gzip, $tar_mb MB tar, $nfiles entries"

CS="containers-storage:[overlay@$W/cs/storage+$W/cs/run]"
PM=(podman --root "$W/cs/storage" --runroot "$W/cs/run" --storage-driver overlay)
# prime the skopeo store once (driver probes), then empty it
skopeo copy -q "docker-archive:$W/in/debian.docker.tar" "${CS}bench/debian:latest" >/dev/null
"${PM[@]}" rmi -af >/dev/null 2>&1 || true

declare -A T
now_ns() { date +%s%N; }
timeit() { local k=$1; shift; sync; local t0 t1; t0=$(now_ns); "$@" >/dev/null; t1=$(now_ns)
           T[$k]+="$(echo "scale=4; ($t1-$t0)/1000000000" | bc) "; }
berth_load() { rm -rf "$W/berth"; timeit "$1" "$BERTH" --root "$W/berth" load -i "$2"
               [ "$("$BERTH" --root "$W/berth" images -q | wc -l)" = 1 ] || { echo "berth load failed" >&2; exit 1; }
               rm -rf "$W/berth"; }
skopeo_cs() { "${PM[@]}" rmi -af >/dev/null 2>&1 || true
              timeit "$1" skopeo copy -q "$2" "${CS}bench/debian:latest"
              "${PM[@]}" rmi -af >/dev/null 2>&1 || true; }
umoci_unpack() { rm -rf "$W/bundle"; timeit umoci umoci unpack --image "$W/oci:latest" "$W/bundle"; rm -rf "$W/bundle"; }
floors() {
    timeit zcat sh -c "zcat '$W/in/layer.tar.gz' > /dev/null"
    timeit sha256-tar sha256sum "$W/in/layer.tar"
    rm -rf "$W/x"; mkdir "$W/x"; timeit tar-x sh -c "tar -xpf '$W/in/layer.tar' -C '$W/x' 2>/dev/null"; rm -rf "$W/x"
    mkdir "$W/x"; timeit tar-xz sh -c "tar -xzpf '$W/in/layer.tar.gz' -C '$W/x' 2>/dev/null"; rm -rf "$W/x"
}

for r in $(seq "$RUNS"); do
    log "round $r/$RUNS"
    berth_load berth-oci "$W/in/debian.oci.tar"
    umoci_unpack
    skopeo_cs skopeo-oci "oci-archive:$W/in/debian.oci.tar"
    berth_load berth-docker "$W/in/debian.docker.tar"
    skopeo_cs skopeo-docker "docker-archive:$W/in/debian.docker.tar"
    floors
done

med() { echo "${T[$1]}" | tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m}'; }
rng() { echo "${T[$1]}" | tr ' ' '\n' | grep . | sort -n | awk 'NR==1{lo=$1} {hi=$1} END {printf "%.2f–%.2f", lo, hi}'; }
ratio() { echo "scale=2; $(med "$1") / $(med "$2")" | bc; }
cat <<EOF

debootstrap image: one layer, $gz_mb MB gzip, $tar_mb MB tar, $nfiles entries; tmpfs; $RUNS interleaved rounds.
$(uname -r), $(nproc) cores; $(skopeo --version); umoci $(umoci --version | awk '{print $NF}'); berth $(git rev-parse --short HEAD 2>/dev/null || echo '?')

| tool: what | input | median s | min–max s | vs berth (same input) |
|---|---|---|---|---|
| **berth load** (blob store + unpack into snapshot) | OCI archive (gzip layer) | **$(med berth-oci)** | $(rng berth-oci) | 1 |
| umoci unpack (layout dir → bundle rootfs) | OCI layout (gzip layer) | $(med umoci) | $(rng umoci) | $(ratio umoci berth-oci) |
| skopeo copy → containers-storage overlay | OCI archive (gzip layer) | $(med skopeo-oci) | $(rng skopeo-oci) | $(ratio skopeo-oci berth-oci) |
| **berth load** | docker-archive (plain layer) | **$(med berth-docker)** | $(rng berth-docker) | 1 |
| skopeo copy → containers-storage overlay | docker-archive (plain layer) | $(med skopeo-docker) | $(rng skopeo-docker) | $(ratio skopeo-docker berth-docker) |
| floor: \`zcat layer > /dev/null\` | gzip layer | $(med zcat) | $(rng zcat) | |
| floor: \`sha256sum layer.tar\` | plain layer | $(med sha256-tar) | $(rng sha256-tar) | |
| floor: GNU \`tar -xpf\` | plain layer | $(med tar-x) | $(rng tar-x) | |
| floor: GNU \`tar -xzpf\` | gzip layer | $(med tar-xz) | $(rng tar-xz) | |
EOF
