#!/usr/bin/env bash
# berth-oci against runc and crun, side by side, on one busybox bundle.
#
#   bench/runtime.sh [RUNTIME...]      (default: target/release/berth-oci runc crun)
#
# Measures, for each runtime that can run the bundle:
#   * `RT run ID` of /bin/true: median and mean latency (hyperfine, RUNS runs, interleaved)
#   * 100 sequential `run`s: total wall time (SEQ_REPS samples, median)
#   * create + start + delete of one container (delete after the process exited)
#   * peak RSS of `run` (GNU time's maxrss, median of RSS_REPS)
# and prints a Markdown table. Env: RUNS=100 SEQ=100 SEQ_REPS=3 RSS_REPS=10.
# HYBRID_FIX=1 mounts the v1 hierarchies crun 1.8 needs on a hybrid cgroup host (as
# ../shared/bench does); it changes the host's cgroup mounts (undo: unmount them).
# The figures of record go in docs/benchmarks.md; the shared harness
# (../shared/bench/runtime-latency.sh, quiet-window gated) is the yardstick.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS=${RUNS:-100}; SEQ=${SEQ:-100}; SEQ_REPS=${SEQ_REPS:-3}; RSS_REPS=${RSS_REPS:-10}

[ "$(id -u)" -eq 0 ] || { echo "runtime.sh: run as root" >&2; exit 1; }
for p in hyperfine busybox-static time; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
        || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p"; }
done
if [ $# -eq 0 ]; then
    cargo build --release -p berth-oci >&2
    set -- "$PWD/target/release/berth-oci" runc crun
fi
if [ "${HYBRID_FIX:-0}" = 1 ] && [ -s /sys/fs/cgroup/unified/cgroup.controllers ]; then
    for c in $(cat /sys/fs/cgroup/unified/cgroup.controllers); do
        mountpoint -q "/sys/fs/cgroup/$c" || { mkdir -p "/sys/fs/cgroup/$c"; mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c"; }
    done
fi

work=$(mktemp -d /tmp/berth-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
bundle=$work/bundle
mkdir -p "$bundle/rootfs/bin"
cp /bin/busybox "$bundle/rootfs/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$bundle/rootfs/bin/$a"; done
"$1" spec --bundle "$bundle"
python3 - "$bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
c["ociVersion"] = "1.0.2-dev"  # what runc 1.1 writes; crun 1.8 refuses 1.2
json.dump(c, open(p, "w"))
PY

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
ok=(); names=()
for rt in "$@"; do
    name=$(basename "$rt")
    if "$rt" --root "$work/root-$name" run --bundle "$bundle" "probe-$name" </dev/null >/dev/null 2>"$work/err-$name"; then
        ok+=("$rt"); names+=("$name")
    else
        echo "runtime.sh: $name cannot run the bundle here: $(tail -1 "$work/err-$name")" >&2
    fi
done
[ ${#ok[@]} -gt 0 ] || exit 1

args=()
for i in "${!ok[@]}"; do
    args+=(-n "${names[$i]}" "${ok[$i]} --root $work/root-${names[$i]} run --bundle $bundle b-${names[$i]}")
done
hyperfine -N -w 5 -r "$RUNS" --export-json "$work/run.json" "${args[@]}" >/dev/null

printf '| runtime | run /bin/true median | mean | %d sequential (median of %d) | create+start+delete median | peak RSS (median) |\n' "$SEQ" "$SEQ_REPS"
printf '|---|---|---|---|---|---|\n'
for i in "${!ok[@]}"; do
    rt=${ok[$i]}; n=${names[$i]}; root=$work/root-$n
    read -r med mean < <(python3 - "$work/run.json" "$n" <<'PY'
import json, statistics, sys
for r in json.load(open(sys.argv[1]))["results"]:
    if r["command"] == sys.argv[2]:
        print("%.2f %.2f" % (statistics.median(r["times"]) * 1e3, r["mean"] * 1e3))
PY
)
    seq_t=$(for _ in $(seq "$SEQ_REPS"); do
        s=$(date +%s.%N)
        for _ in $(seq "$SEQ"); do "$rt" --root "$root" run --bundle "$bundle" s </dev/null >/dev/null; done
        awk -v a="$(date +%s.%N)" -v b="$s" 'BEGIN { print a - b }'
    done | median)
    csd=$(for k in $(seq 20); do
        s=$(date +%s%N)
        "$rt" --root "$root" create --bundle "$bundle" "c$k" </dev/null >/dev/null
        "$rt" --root "$root" start "c$k"
        "$rt" --root "$root" delete --force "c$k"
        echo $(( ($(date +%s%N) - s) / 1000 ))
    done | median)
    rss=$(for _ in $(seq "$RSS_REPS"); do
        /usr/bin/time -f %M "$rt" --root "$root" run --bundle "$bundle" r </dev/null 2>&1 >/dev/null | tail -1
    done | median)
    printf '| %s | %s ms | %s ms | %.2f s | %.1f ms | %s KiB |\n' "$n" "$med" "$mean" "$seq_t" "$(awk -v u="$csd" 'BEGIN { print u / 1000 }')" "$rss"
done
