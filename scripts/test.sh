#!/usr/bin/env bash
# The project's whole test command. Run as root on Debian 12:
#   installs the system packages the build and the tests need (only if missing),
#   builds every target of the workspace, then runs every test.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null 2>&1 && [ -x "${HOME:-/root}/.cargo/bin/cargo" ]; then
    export PATH="${HOME:-/root}/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || { echo "test.sh: cargo not found" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: the integration tests create containers and must run as root" >&2
    exit 1
fi

# busybox-static: the tests' rootfs; libseccomp-dev + pkg-config: the build;
# iproute2: `ip netns` in the namespace-joining tests;
# podman, containerd, docker.io: the engines that drive berth-oci in tests/engines.rs;
# skopeo, umoci: the archive round trips of the berth CLI (crates/cli/tests/interop.rs);
# docker-registry: the registry the registry client's tests start (crates/registry/tests);
# openssl: their token issuer's key and JWT signatures, and the TLS test's CA.
# nftables: `nft`, which berth-net applies its firewall with; iptables: the dockerd-style
# FORWARD DROP policy its tests coexist with (crates/net/tests).
# gcc, libc6-dev: the escape tests build their attack programs (crates/oci-cli/tests/attacks,
# a static program and a shared library) with `cc`.
# curl: the HTTP client of the berth CLI's network tests (crates/cli/tests/network.rs), run
# inside their throwaway namespaces (util-linux's nsenter, always installed, enters them).
# uidmap (newuidmap/newgidmap), slirp4netns, procps (pkill): rootless berth and its tests
# (crates/cli/tests/rootless.rs runs the engine as a user the test creates).
# systemd: `systemd-analyze verify` checks the units `system boot --print-unit` and
# `generate systemd` write (crates/cli/tests/ops.rs); no systemd needs to run.
# openssh-client: `berth build --ssh ID=KEYFILE` serves key files with ssh-agent/ssh-add, and
# its test (crates/cli/tests/build.rs) makes a key with ssh-keygen. docker.io's dockerd 20.10
# and its CLI are also what crates/cli/tests/build_compare.rs compares `berth build` with.
# python3-docker (docker-py 5), docker-compose (1.29, on docker-py): the Docker SDK and
# compose clients that crates/cli/tests/api.rs points at `berth serve`.
# (runc and crun are only for the benchmarks and are not installed here.)
packages=(busybox-static libseccomp-dev pkg-config iproute2 podman containerd docker.io skopeo umoci
    docker-registry openssl nftables iptables gcc libc6-dev curl uidmap slirp4netns procps systemd
    openssh-client python3-docker docker-compose)
missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "test.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # No service may start while packages install: docker.io's postinst starts dockerd
    # through /etc/init.d/docker (default bridge, iptables rules) unless policy-rc.d says
    # no (exit 101). The tests start their own daemons with their own roots.
    policy=/usr/sbin/policy-rc.d
    policy_backup=""
    restore_policy() {
        rm -f "$policy"
        if [ -n "$policy_backup" ]; then mv -f "$policy_backup" "$policy"; fi
        policy_backup=""
    }
    if [ -e "$policy" ] || [ -L "$policy" ]; then
        policy_backup="$policy.berth-test-sh"
        mv -f "$policy" "$policy_backup"
    fi
    trap restore_policy EXIT
    printf '#!/bin/sh\n# scripts/test.sh: no service starts during apt-get install\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
    restore_policy
    trap - EXIT
fi

# Docker's default seccomp profile, the reference of crates/engine/tests/seccomp_parity.rs:
# moby 20.10's profiles/seccomp/default.json, from Debian's golang-github-docker-docker-dev
# (downloaded and unpacked here, not installed: it would pull in dozens of Go packages).
seccomp_ref=/var/cache/berth-test/docker-seccomp-default.json
if [ ! -s "$seccomp_ref" ]; then
    echo "test.sh: fetching Docker's default seccomp profile (golang-github-docker-docker-dev)"
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download -qq golang-github-docker-docker-dev 2>/dev/null \
        || { apt-get update -qq && apt-get download -qq golang-github-docker-docker-dev; })
    dpkg-deb -x "$tmp"/golang-github-docker-docker-dev_*.deb "$tmp/x"
    mkdir -p "$(dirname "$seccomp_ref")"
    cp "$tmp/x/usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json" "$seccomp_ref"
    rm -rf "$tmp"
fi
export BERTH_DOCKER_SECCOMP="$seccomp_ref"

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

echo "test.sh: cargo build --workspace --all-targets"
cargo build --workspace --all-targets

echo "test.sh: cargo test --workspace"
cargo test --workspace --no-fail-fast -- --test-threads=2

# cgroup v2: this host may be v1/hybrid. When the project's shared VM runner is
# next to the checkout, run the cgroup tests again in a pure cgroup v2 kernel.
vm="${CGROUP2_VM:-$PWD/../shared/tools/cgroup2-vm/run-in-cgroup2-vm}"
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    echo "test.sh: this host is cgroup v2: the v2 paths ran above"
elif [ -x "$vm" ]; then
    echo "test.sh: running the cgroup tests in a cgroup v2 VM ($vm)"
    bins=$( { cargo test -p berth-oci --test cgroups --no-run --message-format=json
              cargo test -p berth-runtime --lib --no-run --message-format=json; } 2>/dev/null \
        | grep -o '"executable":"[^"]*/deps/[^"]*"' | cut -d'"' -f4)
    [ -n "$bins" ] || { echo "test.sh: no test binaries found for the VM run" >&2; exit 1; }
    for b in $bins; do
        echo "test.sh: [cgroup v2 VM] $(basename "$b")"
        "$vm" --mem 2G --timeout 900 -- "$b" --test-threads=2
    done
    # Rootless limits on a delegated v2 subtree: the test adds a user (--overlay: a
    # writable /etc in the guest).
    rl=$(cargo test -p berth-cli --test rootless --no-run --message-format=json 2>/dev/null \
        | grep -o '"executable":"[^"]*/deps/[^"]*"' | cut -d'"' -f4)
    [ -n "$rl" ] || { echo "test.sh: no rootless test binary for the VM run" >&2; exit 1; }
    echo "test.sh: [cgroup v2 VM] $(basename "$rl") delegated_cgroup_v2"
    "$vm" --mem 2G --timeout 900 --overlay -- "$rl" --exact rootless_limits_on_a_delegated_cgroup_v2
else
    echo "test.sh: SKIPPED the cgroup v2 tests: no VM runner at $vm (set CGROUP2_VM)"
fi
