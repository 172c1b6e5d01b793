#!/usr/bin/env bash
# The OCI runtime-tools validation suite (opencontainers/runtime-tools, validation/*: 58 TAP
# programs plus the in-container checker `runtimetest`) against one runtime.
#
#   bench/runtime-tools.sh [RUNTIME]     (default: target/release/berth-oci; e.g. runc, crun)
#
# Installs what it needs with apt-get (golang-go, the Debian-packaged runtime-tools library and
# its dependencies, busybox-static), builds the programs offline (GO111MODULE=off over Debian's
# /usr/share/gocode), makes a busybox rootfs tarball (rootfs-amd64.tar.gz, what
# validation/util.PrepareBundle untars), runs every program with RUNTIME=<runtime> and a
# per-program timeout, prints one TAP line per program (with its "not ok" lines and the tail of
# its stderr when it fails) and ends with "N passed, M failed".
#
# The validation sources: Debian 12's golang-github-opencontainers-runtime-tools-dev ships only
# the library (generate, specerror, validate, cgroups, error), not validation/ nor
# cmd/runtimetest, and nothing here can fetch them. Point RT_TOOLS_SRC at either
#   * a runtime-tools checkout (go.mod, validation/, cmd/runtimetest/, vendor/), built with
#     -mod=vendor, or
#   * a GOPATH tree holding src/github.com/opencontainers/runtime-tools/{validation,cmd/runtimetest}
#     and src/github.com/mndrix/tap-go; the Debian library fills in the rest.
# Default RT_TOOLS_SRC: /var/tmp/rtgo (a GOPATH tree).
#
# A program passes when it exits 0 within TIMEOUT and prints no "not ok" line (TODO lines
# excepted) and, if it prints anything, a TAP plan. The *_fail programs print nothing when they
# pass (the runtime refused the bad config) and call Fatal (exit 1) when they fail. The hook
# programs (hooks, prestart, poststart, poststop, *_fail) never print a test line: they report
# a problem only as a YAML "error" diagnostic under "1..0", shown beside the verdict.
#
# Env: TIMEOUT=60 (seconds per program), ONLY=REGEX (program names), WORK=/var/tmp/runtime-tools
# (build output, per-runtime logs in $WORK/results-<runtime>/), RT_TOOLS_SRC (above).
# Cleans up after each program: containers left in the runtime's default root, the suite's
# cgroups (/cgrouptest, testdir/, cgrouptest), controllers it enabled in the cgroup2 root,
# bundles left in /tmp and their mounts.
set -uo pipefail
[ "$(id -u)" -eq 0 ] || { echo "runtime-tools.sh: run as root" >&2; exit 1; }
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RT=${1:-$ROOT/target/release/berth-oci}
RT=$(command -v "$RT" || echo "$RT")
[ -x "$RT" ] || { echo "runtime-tools.sh: no runtime at $RT" >&2; exit 1; }
RT=$(realpath "$RT")   # the programs run from their own directory
cd "$ROOT"
RT_NAME=$(basename "$RT")
TIMEOUT=${TIMEOUT:-60}
WORK=${WORK:-/var/tmp/runtime-tools}
RT_TOOLS_SRC=${RT_TOOLS_SRC:-/var/tmp/rtgo}
ONLY=${ONLY:-.}

need=()
for p in golang-go golang-github-opencontainers-runtime-tools-dev golang-github-google-uuid-dev \
         golang-github-mrunalp-fileutils-dev golang-github-hashicorp-go-multierror-dev \
         golang-gocapability-dev golang-github-urfave-cli-dev golang-github-sirupsen-logrus-dev \
         golang-golang-x-sys-dev busybox-static util-linux; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2 || exit 1
fi

# ---- build -------------------------------------------------------------------------------
BIN=$WORK/bin
mkdir -p "$BIN"
export GOCACHE=$WORK/gocache GOFLAGS= CGO_ENABLED=0
if [ -f "$RT_TOOLS_SRC/go.mod" ] && [ -d "$RT_TOOLS_SRC/validation" ]; then
    SRC=$RT_TOOLS_SRC; export GO111MODULE=on
    [ -d "$SRC/vendor" ] && export GOFLAGS=-mod=vendor
elif [ -d "$RT_TOOLS_SRC/src/github.com/opencontainers/runtime-tools/validation" ]; then
    SRC=$RT_TOOLS_SRC/src/github.com/opencontainers/runtime-tools
    export GO111MODULE=off GOPATH=$RT_TOOLS_SRC:/usr/share/gocode
elif [ -d /usr/share/gocode/src/github.com/opencontainers/runtime-tools/validation ]; then
    SRC=/usr/share/gocode/src/github.com/opencontainers/runtime-tools
    export GO111MODULE=off GOPATH=/usr/share/gocode
else
    echo "runtime-tools.sh: no validation sources: set RT_TOOLS_SRC (see the header)" >&2
    exit 1
fi
echo "# building runtime-tools validation from $SRC" >&2
( cd "$SRC" && go build -tags "netgo osusergo" -o "$BIN/runtimetest" ./cmd/runtimetest ) || exit 1
progs=()
for d in "$SRC"/validation/*/; do
    n=$(basename "$d")
    [ "$n" = util ] && continue
    ls "$d"*.go >/dev/null 2>&1 || continue
    [[ $n =~ $ONLY ]] || continue
    ( cd "$SRC" && go build -o "$BIN/$n.t" "./validation/$n" ) || { echo "build of $n failed" >&2; exit 1; }
    progs+=("$n")
done

# ---- rootfs: busybox, laid out like the upstream rootfs-amd64.tar.gz ------------------------
RUN=$WORK/run
rm -rf "$RUN"; mkdir -p "$RUN/rootfs"
(
    cd "$RUN/rootfs"
    mkdir -p bin dev etc home proc root sys tmp usr/bin var/tmp
    chmod 1777 tmp var/tmp; chmod 700 root
    cp /bin/busybox bin/busybox
    for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "bin/$a"; done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' > etc/passwd
    printf 'root:x:0:\nnobody:x:65534:\n' > etc/group
)
tar -czf "$RUN/rootfs-amd64.tar.gz" --numeric-owner -C "$RUN/rootfs" .
rm -rf "$RUN/rootfs"
cp "$BIN/runtimetest" "$RUN/runtimetest"

# ---- cleanup helpers -----------------------------------------------------------------------
# the suite names its containers with random UUIDs: only those are ever cleaned up
containers() { "$RT" list -q 2>/dev/null | grep -E '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' | sort; }
tmp_entries() { ls -d /tmp/ocitest* /tmp/oci-pid* 2>/dev/null | sort; }
UNIFIED=$(awk '$9 == "cgroup2" {print $5; exit}' /proc/self/mountinfo)
subtree() { [ -n "$UNIFIED" ] && cat "$UNIFIED/cgroup.subtree_control" 2>/dev/null; }
before_ct=$(containers); before_tmp=$(tmp_entries); before_subtree=$(subtree)
cleanup() {
    local id d m
    for id in $(comm -13 <(echo "$before_ct") <(containers)); do
        "$RT" kill "$id" KILL >/dev/null 2>&1; "$RT" delete --force "$id" >/dev/null 2>&1
    done
    for d in $(comm -13 <(echo "$before_tmp") <(tmp_entries)); do
        for m in $(awk -v p="$d" 'index($5, p) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
            umount -l "$m" 2>/dev/null
        done
        rm -rf "$d"
    done
    for c in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
        for p in cgrouptest testdir/cgrouptest/container testdir/cgrouptest testdir; do
            [ -d "$c$p" ] && find "$c$p" -depth -type d -exec rmdir {} + 2>/dev/null
        done
    done
    # a runtime may enable controllers in the (hybrid host's) cgroup2 root: undo that
    for m in $(subtree); do
        [[ " $before_subtree " == *" $m "* ]] || echo "-$m" > "$UNIFIED/cgroup.subtree_control" 2>/dev/null
    done
}

# ---- run -----------------------------------------------------------------------------------
OUT=$WORK/results-$RT_NAME
rm -rf "$OUT"; mkdir -p "$OUT"
echo "# runtime: $RT ($("$RT" --version 2>/dev/null | head -1))"
pass=0; fail=0; i=0; failed=()
for n in "${progs[@]}"; do
    i=$((i + 1))
    ( cd "$RUN" && RUNTIME=$RT timeout -k 5 "$TIMEOUT" "$BIN/$n.t" ) >"$OUT/$n.tap" 2>"$OUT/$n.err"
    rc=$?
    cleanup
    why=""
    notok=$(grep -E '^not ok' "$OUT/$n.tap" | grep -v '# TODO')
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then why="timeout after ${TIMEOUT}s"
    elif [ $rc -ne 0 ]; then why="exit $rc"
    elif [ -n "$notok" ]; then why="$(echo "$notok" | wc -l) not ok"
    elif [ -s "$OUT/$n.tap" ] && ! grep -qE '^1\.\.[0-9]+' "$OUT/$n.tap"; then why="no TAP plan"
    fi
    # *_fail programs print nothing when the runtime rejected the config as it must; the
    # hook programs print "1..0" and report a problem only as a YAML "error" diagnostic.
    diag=""
    [ $rc -eq 0 ] && [ ! -s "$OUT/$n.tap" ] && diag=" (no output: the runtime refused the config)"
    if grep -qx '1\.\.0' "$OUT/$n.tap" && grep -qE '^ +"error":' "$OUT/$n.tap"; then
        diag=" (1..0 with diagnostic: $(grep -m1 -E '^ +"error":' "$OUT/$n.tap" | sed 's/^ *"error": *//' | cut -c1-160))"
    fi
    if [ -z "$why" ]; then
        pass=$((pass + 1)); echo "ok $i - $n$diag"
    else
        fail=$((fail + 1)); failed+=("$n"); echo "not ok $i - $n: $why$diag"
        [ -n "$notok" ] && echo "$notok" | head -20 | sed 's/^/    /'
        [ -s "$OUT/$n.err" ] && tail -5 "$OUT/$n.err" | sed 's/^/    stderr: /'
    fi
done
echo "1..$i"
echo "# per-program TAP output and stderr: $OUT/NAME.tap, NAME.err"
[ ${#failed[@]} -gt 0 ] && echo "# failed: ${failed[*]}"
echo "$pass passed, $fail failed"
