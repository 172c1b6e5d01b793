#!/usr/bin/env bash
# Issue 15's API benchmark: Docker Engine API latency of `berth serve` beside dockerd 20.10,
# over one keep-alive unix-socket connection per engine (server cost, no client start-up;
# the style of ../shared/bench/api-latency.py).
#
#   bench/api.sh            env: N=300 CYCLES=40 ROUNDS=3 CONTAINERS=30
#                                BERTH=target/release/berth DOCKERD=/usr/sbin/dockerd
#
# Per engine: a private state root and socket, busybox imported from a rootfs tarball, and
# CONTAINERS running containers (`sleep`, no network) so /containers/json lists 30. Measured:
# GET /_ping, /info, /containers/json?all=1, /images/json (N requests each, medians), and
# CYCLES create -> start -> wait -> delete cycles of a `true` container with no network
# (each request on the same connection). ROUNDS rounds, engines interleaved within a round;
# medians of the round medians.
# berth serve runs in a throwaway network namespace; dockerd runs with --bridge=none
# --iptables=false and its own data/exec roots and socket (the machine's network and any
# running dockerd are not touched), is started for the benchmark and stopped after, by pid.
# Create /tmp/berth-quiet first if other work shares the machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
N=${N:-300}; CYCLES=${CYCLES:-40}; ROUNDS=${ROUNDS:-3}; CONTAINERS=${CONTAINERS:-30}
BERTH=${BERTH:-$PWD/target/release/berth}; DOCKERD=${DOCKERD:-/usr/sbin/dockerd}
D=${DOCKER_CLI:-/usr/local/bin/docker}
[ "$(id -u)" -eq 0 ] || { echo "api.sh: run as root" >&2; exit 1; }
[ -x "$BERTH" ] || cargo build --release -p berth-cli >&2

work=$(mktemp -d /tmp/berth-apibench.XXXXXX)
ns=berthapi-$$
serve_pid=; dockerd_pid=
cleanup() {
    set +e
    [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
    for id in $("$BERTH" --root "$work/root" ps -aq 2>/dev/null); do
        nsenter --net=/run/netns/$ns "$BERTH" --root "$work/root" rm -f "$id" >/dev/null 2>&1
    done
    if [ -n "$dockerd_pid" ]; then
        DOCKER_HOST=unix://$work/docker.sock $D ps -aq | xargs -r env DOCKER_HOST=unix://$work/docker.sock $D rm -f >/dev/null 2>&1
        kill "$dockerd_pid" 2>/dev/null; wait "$dockerd_pid" 2>/dev/null
    fi
    ip netns del $ns 2>/dev/null
    grep " $work/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/rootfs/bin" && cp /bin/busybox "$work/rootfs/bin/"
for l in sh true sleep; do ln -s busybox "$work/rootfs/bin/$l"; done
tar -C "$work/rootfs" -cf "$work/busybox.tar" .

# berth serve
ip netns add $ns && ip -n $ns link set lo up
B() { nsenter --net=/run/netns/$ns "$BERTH" --root "$work/root" "$@"; }
B import "$work/busybox.tar" busybox:latest >/dev/null
nsenter --net=/run/netns/$ns "$BERTH" --root "$work/root" serve -H "unix://$work/berth.sock" &
serve_pid=$!
# dockerd 20.10
"$DOCKERD" --data-root "$work/docker" --exec-root "$work/docker-exec" -H "unix://$work/docker.sock" \
    --pidfile "$work/docker.pid" --bridge=none --iptables=false --ip-masq=false \
    --containerd-namespace berthbench --containerd-plugins-namespace berthbench-plugins \
    >"$work/dockerd.log" 2>&1 &
dockerd_pid=$!
for s in berth.sock docker.sock; do
    for _ in $(seq 200); do [ -S "$work/$s" ] && break; sleep 0.1; done
done
DK() { DOCKER_HOST=unix://$work/docker.sock $D "$@"; }
for _ in $(seq 100); do DK version >/dev/null 2>&1 && break; sleep 0.2; done
DK import "$work/busybox.tar" busybox:latest >/dev/null
for i in $(seq "$CONTAINERS"); do
    B run -d --network none busybox sleep 100000 >/dev/null
    DK run -d --network none busybox sleep 100000 >/dev/null
done

python3 - "$work" "$N" "$CYCLES" "$ROUNDS" <<'PY'
import http.client, json, socket, statistics as st, sys, time
work, n, cycles, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

class UnixConn(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__('localhost'); self.path = path
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); self.sock.connect(self.path)

def req(c, m, p, body=None, want=(200, 201, 204, 304)):
    h = {'Content-Type': 'application/json'} if body is not None else {}
    c.request(m, p, body=json.dumps(body) if body is not None else None, headers=h)
    r = c.getresponse(); d = r.read()
    if r.status not in want:
        raise SystemExit('%s %s -> HTTP %d %s' % (m, p, r.status, d[:200]))
    return d

paths = ['/_ping', '/v1.41/info', '/v1.41/containers/json?all=1', '/v1.41/images/json']
engines = {'dockerd': work + '/docker.sock', 'berth': work + '/berth.sock'}
res = {(e, p): [] for e in engines for p in paths + ['cycle']}
for rd in range(rounds):
    for e, sock in engines.items():
        c = UnixConn(sock)
        for p in paths:
            for _ in range(20): req(c, 'GET', p)
            ts = []
            for _ in range(n):
                t0 = time.perf_counter(); req(c, 'GET', p); ts.append((time.perf_counter() - t0) * 1e6)
            res[(e, p)].append(st.median(ts))
        ts = []
        body = {'Image': 'busybox', 'Cmd': ['true'], 'HostConfig': {'NetworkMode': 'none'}}
        for i in range(cycles + 3):
            t0 = time.perf_counter()
            cid = json.loads(req(c, 'POST', '/v1.41/containers/create', body))['Id']
            req(c, 'POST', '/v1.41/containers/%s/start' % cid)
            w = json.loads(req(c, 'POST', '/v1.41/containers/%s/wait' % cid))
            assert w['StatusCode'] == 0, w
            req(c, 'DELETE', '/v1.41/containers/%s' % cid)
            if i >= 3: ts.append((time.perf_counter() - t0) * 1e6)
        res[(e, 'cycle')].append(st.median(ts))
        c.close()
print('| request | dockerd 20.10 | berth serve | berth / dockerd |')
print('|---|---|---|---|')
for p in paths + ['cycle']:
    d = st.median(res[('dockerd', p)]); b = st.median(res[('berth', p)])
    name = 'create-start-wait-delete' if p == 'cycle' else p
    fmt = lambda us: '%.2f ms' % (us / 1000) if us >= 1000 else '%.0f µs' % us
    print('| `%s` | %s | %s | %.2f |' % (name, fmt(d), fmt(b), b / d))
PY
