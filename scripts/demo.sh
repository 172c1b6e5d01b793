#!/usr/bin/env bash
# Builds berth-oci and berth and runs one isolated busybox container with each.
# Run as root on Debian 12:  scripts/demo.sh (as root)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null 2>&1 && [ -x "${HOME:-/root}/.cargo/bin/cargo" ]; then
    export PATH="${HOME:-/root}/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || {
    echo "demo.sh: cargo (Rust 1.85 or newer, e.g. from rustup) is needed" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "demo.sh: run as root" >&2; exit 1; }

packages=(busybox-static libseccomp-dev pkg-config gcc python3 nftables)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

cargo build --release -p berth-oci -p berth-cli
bin=$PWD/target/release/berth-oci
berth=$PWD/target/release/berth

bundle=$(mktemp -d /tmp/berth-demo.XXXXXX)
state=$(mktemp -d /tmp/berth-demo-state.XXXXXX)
root=$(mktemp -d /tmp/berth-demo-root.XXXXXX)
trap '"$berth" --root "$root" rm -f demo >/dev/null 2>&1; rm -rf "$bundle" "$state" "$root"' EXIT
mkdir -p "$bundle/rootfs/bin"
cp /bin/busybox "$bundle/rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$bundle/rootfs/bin/$applet"
done
"$bin" spec --bundle "$bundle"
python3 - "$bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c",
    "echo Hello from an isolated container: pid $$, hostname $(hostname), uid $(id -u); ls /"]
json.dump(c, open(p, "w"), indent=2)
PY
"$bin" --root "$state" run --bundle "$bundle" "demo-$$"

# The same busybox as an image, run by the engine (state in a throwaway root).
tar -C "$bundle/rootfs" -cf "$bundle/busybox.tar" .
"$berth" --root "$root" import "$bundle/busybox.tar" demo/busybox:latest >/dev/null
"$berth" --root "$root" run --rm --name demo --hostname berth demo/busybox \
    sh -c 'echo Hello from berth run: pid $$, hostname $(hostname), uid $(id -u)'
