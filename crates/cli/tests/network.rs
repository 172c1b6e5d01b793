//! Bridge networking through the `berth` command, end to end, as root.
//!
//! Every test runs `berth` inside a throwaway network namespace that plays the host
//! (`common::TestNetns`, entered with `nsenter --net=…`): `berth0`, the user bridges, the
//! veths and Berth's nftables table all live there. Tests that need an "outside" host make a
//! second namespace joined to the first by a veth (host 10.200.0.1/24, outside
//! 10.200.0.2/24). Traffic is busybox's `httpd` and `nc` in the containers (the image is
//! built from Debian's busybox-static) and curl in the namespaces. After each test: the
//! containers are removed, no veth, published-port chain or lease is left, the namespaces
//! are gone, and this machine's own `nft list ruleset` is what it was.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{RootfsTar, TestNetns, berth, berth_command, monitor_pids};

const LINKS: &[&str] = &[
    "sh", "echo", "cat", "ls", "sleep", "true", "hostname", "grep", "nc", "httpd", "ip", "printf",
    "tail", "head", "wc", "seq", "timeout", "nslookup",
];

/// A root with `busybox:latest` (and `web:latest`, the same with `EXPOSE 80 81/udp`), run in
/// its own host namespace.
struct Net {
    /// One network test at a time in this binary (they were once serialized for a lost
    /// first connection, which turned out to be the test's own listener closing at EOF on
    /// its stdin; they also each load the machine with containers).
    _serial: std::sync::MutexGuard<'static, ()>,
    t: Option<tempfile::TempDir>,
    root: PathBuf,
    host: Option<TestNetns>,
    outside: Option<TestNetns>,
    ruleset: String,
}

impl Net {
    fn new() -> Net {
        static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let ruleset = common::host_ruleset();
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        let tarball = t.path().join("busybox.tar");
        RootfsTar::busybox(&["bin", "etc", "tmp", "www"], LINKS).write(&tarball);
        let host = TestNetns::new("host");
        host.host_berth(&root);
        let n = Net {
            _serial: serial,
            t: Some(t),
            root,
            host: Some(host),
            outside: None,
            ruleset,
        };
        n.ok(&["import", tarball.to_str().unwrap(), "busybox:latest"]);
        n.ok(&[
            "import",
            "--change",
            "EXPOSE 80 81/udp",
            tarball.to_str().unwrap(),
            "web:latest",
        ]);
        n
    }

    fn host(&self) -> &TestNetns {
        self.host.as_ref().unwrap()
    }

    /// The outside host: a namespace on a veth from the host namespace.
    fn with_outside(mut self) -> Net {
        let out = TestNetns::new("out");
        let h = self.host();
        let veth = format!("vt{}", &out.name[out.name.len().saturating_sub(8)..]).replace('-', "");
        let peer = format!("{veth}o");
        h.sh(&[
            "ip", "link", "add", &veth, "type", "veth", "peer", "name", &peer,
        ]);
        h.sh(&["ip", "link", "set", &peer, "netns", &out.name]);
        h.sh(&["ip", "addr", "add", "10.200.0.1/24", "dev", &veth]);
        h.sh(&["ip", "link", "set", &veth, "up"]);
        out.sh(&["ip", "addr", "add", "10.200.0.2/24", "dev", &peer]);
        out.sh(&["ip", "link", "set", &peer, "up"]);
        self.outside = Some(out);
        self
    }

    /// Waits (10 s at most) until something listens on TCP `port` in the outside
    /// namespace: a fixed pause was too short on a busy machine.
    fn wait_outside_listening(&self, port: u16) {
        let needle = format!(":{port:04X} ");
        let t = Instant::now();
        // busybox nc listens on :: (dual stack): /proc/net/tcp6 has it.
        while !self
            .outside()
            .sh(&["cat", "/proc/net/tcp", "/proc/net/tcp6"])
            .contains(&needle)
            && t.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn outside(&self) -> &TestNetns {
        self.outside.as_ref().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        common::ok(&self.root, args)
    }

    fn fails(&self, args: &[&str], code: i32) -> String {
        common::fails(&self.root, args, code)
    }

    fn inspect(&self, c: &str) -> Value {
        let v: Value = serde_json::from_str(&self.ok(&["inspect", c])).unwrap();
        v[0].clone()
    }

    fn ip_on(&self, c: &str, net: &str) -> String {
        self.inspect(c)["NetworkSettings"]["Networks"][net]["IPAddress"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// An HTTP GET of /hostname through busybox nc from a new container; the last line of
    /// the answer (empty when the connection failed).
    fn get_from_container(&self, extra: &[&str], addr: &str, port: &str) -> String {
        let script = format!(
            "printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {addr} {port} | tail -n 1"
        );
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["busybox", "sh", "-c", &script]);
        let o = berth(&self.root, &args);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// A web server container serving its /etc (GET /hostname is its short id).
    fn web(&self, args: &[&str]) -> String {
        let mut a = vec!["run", "-d"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["httpd", "-f", "-p", "80", "-h", "/etc"]);
        let id = self.ok(&a).trim().to_string();
        id[..12].to_string()
    }

    /// [`leftovers`](Self::leftovers) once the kernel has had 10 s to delete the veths of
    /// stopped containers (it does so with their network namespaces, a moment after).
    fn settled_leftovers(&self) -> Vec<String> {
        let t = Instant::now();
        loop {
            let left = self.leftovers();
            if left.is_empty() || t.elapsed() > Duration::from_secs(10) {
                return left;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Veths of containers and published-port chains left in the host namespace.
    fn leftovers(&self) -> Vec<String> {
        let h = self.host();
        let mut v: Vec<String> = h
            .sh(&["ip", "-o", "link"])
            .lines()
            .filter(|l| {
                l.split(':')
                    .nth(1)
                    .is_some_and(|n| n.trim().starts_with("vb"))
            })
            .map(String::from)
            .collect();
        let rules = h.sh(&["nft", "list", "ruleset"]);
        v.extend(
            rules
                .lines()
                .filter(|l| l.contains("chain ctr-"))
                .map(String::from),
        );
        v
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let ids = berth(&self.root, &["ps", "-aq", "--no-trunc"]);
        for id in String::from_utf8_lossy(&ids.stdout).lines() {
            let _ = berth(&self.root, &["rm", "-f", id]);
        }
        let left = self.settled_leftovers();
        let names: Vec<String> = [&self.host, &self.outside]
            .into_iter()
            .flatten()
            .map(|n| n.name.clone())
            .collect();
        self.outside = None;
        self.host = None;
        self.t = None;
        if std::thread::panicking() {
            return;
        }
        assert!(left.is_empty(), "left behind: {left:?}");
        let ns = common::leftover_namespaces();
        for n in names {
            assert!(!ns.contains(&n), "namespace {n} left behind");
        }
        assert_eq!(
            common::host_ruleset(),
            self.ruleset,
            "this machine's own nftables ruleset changed"
        );
    }
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(20), "never: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn curl(ns: &TestNetns, url: &str) -> Option<String> {
    let o = ns
        .command("curl")
        .args(["-s", "-m", "3", url])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

#[test]
fn outbound_nat_and_published_ports_from_everywhere() {
    let n = Net::new().with_outside();
    // Outbound: the outside host has no route to 172.17.0.0/16, so a TCP handshake only
    // completes through the masquerade.
    let listener = n
        .outside()
        .command("timeout")
        .args(["10", "busybox", "nc", "-l", "-p", "9000"])
        // Its stdin stays open until the client is done: at EOF on stdin busybox nc closes
        // the connection, and the client, seeing that first, may leave before it sends
        // (this was the "first NAT'd connection lost about 1 run in 6").
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    n.wait_outside_listening(9000);
    let o = n.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo hello-outside | nc -w 3 10.200.0.2 9000; ip route",
    ]);
    assert!(o.contains("default via 172.17.0.1"), "{o}");
    let got = listener.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&got.stdout), "hello-outside\n");

    // -p 8080:80, and one bound to 127.0.0.1 only.
    let web = n.web(&[
        "--name",
        "web",
        "-p",
        "8080:80",
        "-p",
        "127.0.0.1:8081:80",
        "busybox",
    ]);
    wait_until("web answers", || {
        curl(n.host(), "http://127.0.0.1:8080/hostname").is_some()
    });
    // From the outside host, through the host's address.
    assert_eq!(
        curl(n.outside(), "http://10.200.0.1:8080/hostname").as_deref(),
        Some(web.as_str())
    );
    // From the test host itself, 127.0.0.1 included (no proxy process).
    assert_eq!(
        curl(n.host(), "http://127.0.0.1:8080/hostname").as_deref(),
        Some(web.as_str())
    );
    assert_eq!(
        curl(n.host(), "http://10.200.0.1:8080/hostname").as_deref(),
        Some(web.as_str())
    );
    // The 127.0.0.1-only port: from the host, not from outside.
    assert_eq!(
        curl(n.host(), "http://127.0.0.1:8081/hostname").as_deref(),
        Some(web.as_str())
    );
    assert_eq!(curl(n.outside(), "http://10.200.0.1:8081/hostname"), None);
    // From another container, through the host's address (hairpin NAT) and directly.
    assert_eq!(n.get_from_container(&[], "10.200.0.1", "8080"), web);
    let ip = n.ip_on("web", "bridge");
    assert!(ip.starts_with("172.17.0."), "{ip}");
    assert_eq!(n.get_from_container(&[], &ip, "80"), web);

    // What berth reports about it.
    assert_eq!(
        n.ok(&["port", "web"]),
        "80/tcp -> 0.0.0.0:8080\n80/tcp -> 127.0.0.1:8081\n"
    );
    assert_eq!(
        n.ok(&["port", "web", "80/tcp"]),
        "0.0.0.0:8080\n127.0.0.1:8081\n"
    );
    let e = n.fails(&["port", "web", "81"], 1);
    assert!(
        e.contains("No public port '81/tcp' published for web"),
        "{e}"
    );
    let ps = n.ok(&["ps", "--format", "{{.Names}} {{.Ports}}"]);
    assert_eq!(
        ps, "web 0.0.0.0:8080->80/tcp, 127.0.0.1:8081->80/tcp\n",
        "{ps}"
    );
    let v = n.inspect("web");
    let s = &v["NetworkSettings"];
    assert_eq!(s["IPAddress"], ip.as_str());
    assert_eq!(s["Gateway"], "172.17.0.1");
    assert_eq!(s["IPPrefixLen"], 16);
    assert!(
        s["MacAddress"]
            .as_str()
            .unwrap()
            .starts_with("02:42:ac:11:")
    );
    assert_eq!(
        s["Ports"]["80/tcp"][0],
        serde_json::json!({"HostIp": "0.0.0.0", "HostPort": "8080"})
    );
    assert_eq!(s["Networks"]["bridge"]["IPAddress"], ip.as_str());
    assert_eq!(v["HostConfig"]["NetworkMode"], "bridge");
    assert_eq!(
        v["HostConfig"]["PortBindings"]["80/tcp"][0],
        serde_json::json!({"HostIp": "", "HostPort": "8080"})
    );
    // A port taken: docker's message, nothing made.
    let e = n.fails(&["run", "-d", "-p", "8080:80", "busybox", "true"], 125);
    assert!(
        e.contains("Bind for 0.0.0.0:8080 failed: port is already allocated"),
        "{e}"
    );
    assert_eq!(n.ok(&["ps", "-aq"]).lines().count(), 1);

    // -P: the image's EXPOSE on docker's ephemeral ports; a range; udp.
    n.ok(&["run", "-d", "--name", "all", "-P", "web", "sleep", "60"]);
    let ports = n.ok(&["port", "all"]);
    assert!(ports.contains("80/tcp -> 0.0.0.0:49153"), "{ports}");
    assert!(ports.contains("81/udp -> 0.0.0.0:"), "{ports}");
    n.ok(&[
        "run",
        "-d",
        "--name",
        "rng",
        "-p",
        "9100-9101:90-91",
        "-p",
        "5353:53/udp",
        "busybox",
        "sleep",
        "60",
    ]);
    assert_eq!(
        n.ok(&["port", "rng"]),
        "90/tcp -> 0.0.0.0:9100\n91/tcp -> 0.0.0.0:9101\n53/udp -> 0.0.0.0:5353\n"
    );
    n.ok(&["rm", "-f", "web", "all", "rng"]);
    // The port is free again.
    n.ok(&["run", "--rm", "-p", "8080:80", "busybox", "true"]);
    // A firewall reload that wiped every rule: the next container start puts the network's
    // back (outbound NAT works again).
    n.host().sh(&["nft", "flush", "ruleset"]);
    let listener = n
        .outside()
        .command("timeout")
        .args(["10", "busybox", "nc", "-l", "-p", "9001"])
        // Its stdin stays open until the client is done: at EOF on stdin busybox nc closes
        // the connection, and the client, seeing that first, may leave before it sends
        // (this was the "first NAT'd connection lost about 1 run in 6").
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    n.wait_outside_listening(9001);
    n.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo again | nc -w 3 10.200.0.2 9001",
    ]);
    let got = listener.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&got.stdout), "again\n");
    // The bridge keeps one MAC however veths come and go (one that followed its lowest
    // port would change under the containers' neighbour entries for the gateway).
    let link = n.host().sh(&["ip", "link", "show", "berth0"]);
    assert!(link.contains("link/ether 02:42:ac:11:00:01 "), "{link}");
}

#[test]
fn user_networks_names_isolation_internal_connect() {
    let n = Net::new().with_outside();
    n.ok(&[
        "network",
        "create",
        "--subnet",
        "10.61.0.0/24",
        "--label",
        "team=a",
        "neta",
    ]);
    n.ok(&["network", "create", "netb"]);
    n.ok(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.63.0.0/24",
        "neti",
    ]);
    let srv = n.web(&[
        "--name",
        "srv",
        "--network",
        "neta",
        "--network-alias",
        "db",
        "busybox",
    ]);
    let ip = n.ip_on("srv", "neta");
    assert_eq!(ip, "10.61.0.2");
    wait_until("srv answers", || {
        n.get_from_container(&["--network", "neta"], &ip, "80") == srv
    });
    // By name, alias and short id, also for containers started later.
    for name in ["srv", "db", srv.as_str()] {
        assert_eq!(
            n.get_from_container(&["--network", "neta"], name, "80"),
            srv,
            "{name}"
        );
    }
    // Through the container's resolver at 127.0.0.11 (docker's resolv.conf), not through
    // /etc/hosts, which only has the container itself (docker 28 on dockerd 20.10 alike).
    let files = n.ok(&[
        "run",
        "--rm",
        "--network",
        "neta",
        "--name",
        "late",
        "busybox",
        "cat",
        "/etc/resolv.conf",
        "/etc/hosts",
    ]);
    assert!(files.starts_with("nameserver 127.0.0.11\n"), "{files}");
    assert!(files.contains("options ndots:0"), "{files}");
    assert!(!files.contains("srv"), "{files}");
    // A container started later resolves from the earlier one.
    n.ok(&[
        "run",
        "-d",
        "--name",
        "peer",
        "--network",
        "neta",
        "busybox",
        "sleep",
        "60",
    ]);
    let peer_ip = n.ip_on("peer", "neta");
    let found = n.ok(&["exec", "srv", "nslookup", "peer"]);
    assert!(found.contains(&format!("Address: {peer_ip}")), "{found}");
    assert_eq!(
        n.ok(&["ps", "--filter", "network=neta", "--format", "{{.Names}}"]),
        "peer\nsrv\n"
    );
    // Isolation: from another network the address does not answer.
    assert_eq!(n.get_from_container(&["--network", "netb"], &ip, "80"), "");
    assert_eq!(n.get_from_container(&[], &ip, "80"), "");
    // connect / disconnect a running container.
    n.ok(&[
        "run",
        "-d",
        "--name",
        "cli",
        "--network",
        "netb",
        "busybox",
        "sleep",
        "60",
    ]);
    let get =
        "printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 3 srv 80 | tail -n 1".to_string();
    let o = berth(&n.root, &["exec", "cli", "sh", "-c", &get]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "");
    n.ok(&["network", "connect", "--alias", "c2", "neta", "cli"]);
    assert_eq!(
        n.ok(&["ps", "--filter", "name=cli", "--format", "{{.Networks}}"]),
        "netb,neta\n"
    );
    assert_eq!(n.ok(&["exec", "cli", "sh", "-c", &get]).trim(), srv);
    let v = n.inspect("cli");
    assert!(
        v["NetworkSettings"]["Networks"]["neta"]["IPAddress"]
            .as_str()
            .unwrap()
            .starts_with("10.61.0.")
    );
    let ins: Value = serde_json::from_str(&n.ok(&["network", "inspect", "neta"])).unwrap();
    let ctrs = ins[0]["Containers"].as_object().unwrap();
    assert_eq!(ctrs.len(), 3, "{ctrs:?}");
    let srv_full = n.inspect("srv")["Id"].as_str().unwrap().to_string();
    assert_eq!(ctrs[&srv_full]["IPv4Address"], "10.61.0.2/24");
    assert_eq!(ctrs[&srv_full]["Name"], "srv");
    assert_eq!(ins[0]["IPAM"]["Config"][0]["Subnet"], "10.61.0.0/24");
    assert_eq!(ins[0]["IPAM"]["Config"][0]["Gateway"], "10.61.0.1");
    assert_eq!(ins[0]["Labels"]["team"], "a");
    assert_eq!(ins[0]["Driver"], "bridge");
    assert_eq!(ins[0]["Scope"], "local");
    n.ok(&["network", "disconnect", "neta", "cli"]);
    let o = berth(&n.root, &["exec", "cli", "sh", "-c", &get]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "");
    let e = n.fails(&["network", "disconnect", "neta", "cli"], 1);
    assert!(e.contains("is not connected to network neta"), "{e}");

    // --internal: the peers, but no way out (no default route, no NAT).
    n.ok(&[
        "run",
        "-d",
        "--name",
        "in1",
        "--network",
        "neti",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    let in1 = n.ip_on("in1", "neti");
    let o = n.ok(&["run", "--rm", "--network", "neti", "busybox", "sh", "-c",
        &format!("ip route; printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {in1} 80 | tail -n 1; echo x | nc -w 2 10.200.0.2 9000 || echo no-way-out")]);
    assert!(!o.contains("default"), "{o}");
    assert!(o.contains("no-way-out"), "{o}");
    assert!(
        o.contains(&n.inspect("in1")["Id"].as_str().unwrap()[..12]),
        "{o}"
    );

    // ls, filters, format, -q.
    let ls = n.ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    assert_eq!(
        ls,
        "bridge bridge\nhost host\nneta bridge\nnetb bridge\nneti bridge\nnone null\n"
    );
    assert_eq!(
        n.ok(&["network", "ls", "-q", "--filter", "label=team=a"])
            .lines()
            .count(),
        1
    );
    assert_eq!(
        n.ok(&[
            "network",
            "ls",
            "--filter",
            "name=net",
            "--format",
            "{{.Name}}"
        ]),
        "neta\nnetb\nneti\n"
    );
    // In use: refused with docker's message; prune keeps it.
    let e = n.fails(&["network", "rm", "neta"], 1);
    assert!(
        e.contains("network neta id") && e.contains("has active endpoints"),
        "{e}"
    );
    let e = n.fails(&["network", "rm", "bridge"], 1);
    assert!(
        e.contains("bridge is a pre-defined network and cannot be removed"),
        "{e}"
    );
    n.ok(&["rm", "-f", "srv", "peer", "cli", "in1"]);
    let pruned = n.ok(&["network", "prune", "-f"]);
    assert!(
        pruned.contains("neta") && pruned.contains("netb") && pruned.contains("neti"),
        "{pruned}"
    );
    assert_eq!(
        n.ok(&["network", "ls", "--format", "{{.Name}}"]),
        "bridge\nhost\nnone\n"
    );
    // Their bridges are gone from the host namespace.
    let links = n.host().sh(&["ip", "-o", "link"]);
    assert!(!links.contains("br-"), "{links}");
}

#[test]
fn addresses_unique_under_concurrency_and_reused_after_rm() {
    let n = Net::new();
    let root = n.root.clone();
    // The issue's figure: 50 `run` at once, every one with its own address (and each one
    // answering on it from the host).
    let handles: Vec<_> = (0..50)
        .map(|_| {
            let root = root.clone();
            std::thread::spawn(move || {
                common::ok(&root, &["run", "-d", "busybox", "sleep", "60"])
                    .trim()
                    .to_string()
            })
        })
        .collect();
    let ids: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let mut ips: Vec<String> = ids.iter().map(|id| n.ip_on(id, "bridge")).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 50, "{ips:?}");
    for ip in &ips {
        n.host().sh(&["busybox", "ping", "-c", "1", "-W", "2", ip]);
    }
    // Each has its own address inside, and the addresses answer on the bridge.
    let inside = n.ok(&["exec", &ids[3], "ip", "-4", "-o", "addr", "show", "eth0"]);
    assert!(
        inside.contains(&format!("{}/16", n.ip_on(&ids[3], "bridge"))),
        "{inside}"
    );
    for id in &ids {
        n.ok(&["rm", "-f", id]);
    }
    // Leases released: the lowest address again (once the kernel has deleted the old veths
    // with their namespaces); --ip and --mac-address on a user network.
    assert_eq!(n.settled_leftovers(), Vec::<String>::new());
    n.ok(&["run", "-d", "--name", "again", "busybox", "sleep", "60"]);
    assert_eq!(n.ip_on("again", "bridge"), "172.17.0.2");
    n.ok(&[
        "network",
        "create",
        "--subnet",
        "10.64.0.0/24",
        "--ip-range",
        "10.64.0.128/25",
        "fixed",
    ]);
    n.ok(&[
        "run",
        "-d",
        "--name",
        "ranged",
        "--network",
        "fixed",
        "busybox",
        "sleep",
        "60",
    ]);
    assert_eq!(n.ip_on("ranged", "fixed"), "10.64.0.128");
    n.ok(&[
        "run",
        "-d",
        "--name",
        "st",
        "--network",
        "fixed",
        "--ip",
        "10.64.0.9",
        "--mac-address",
        "02:00:00:00:00:09",
        "busybox",
        "sleep",
        "60",
    ]);
    let o = n.ok(&["exec", "st", "ip", "-o", "link", "show", "eth0"]);
    assert!(o.contains("02:00:00:00:00:09"), "{o}");
    assert_eq!(n.ip_on("st", "fixed"), "10.64.0.9");
    let e = n.fails(
        &[
            "run",
            "--rm",
            "--network",
            "fixed",
            "--ip",
            "10.64.0.9",
            "busybox",
            "true",
        ],
        125,
    );
    assert!(e.contains("address 10.64.0.9 is already in use"), "{e}");
    n.ok(&["rm", "-f", "again", "ranged", "st"]);
    n.ok(&["network", "rm", "fixed"]);
}

#[test]
fn killed_monitor_then_rm_leaves_nothing_and_restarts_keep_the_address() {
    let n = Net::new();
    let id = n
        .ok(&[
            "run", "-d", "--name", "k", "-p", "8090:80", "busybox", "sleep", "60",
        ])
        .trim()
        .to_string();
    let ip = n.ip_on("k", "bridge");
    assert!(
        !n.leftovers().is_empty(),
        "a veth and a port chain while it runs"
    );
    for pid in monitor_pids(&id) {
        Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
    n.ok(&["rm", "-f", "k"]);
    assert_eq!(n.settled_leftovers(), Vec::<String>::new());
    // A `run -d` killed at any moment, then `rm -f`: nothing left either.
    for delay_ms in [0u64, 10, 30, 60, 120] {
        let mut c = berth_command(&n.root)
            .args(["run", "-d", "-p", "8099:80", "busybox", "sleep", "60"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = c.kill();
        let _ = c.wait();
        std::thread::sleep(Duration::from_millis(300));
        for id in n.ok(&["ps", "-aq"]).lines() {
            n.ok(&["rm", "-f", id]);
        }
        assert_eq!(n.settled_leftovers(), Vec::<String>::new(), "{delay_ms} ms");
    }
    let ins: Value = serde_json::from_str(&n.ok(&["network", "inspect", "bridge"])).unwrap();
    assert_eq!(ins[0]["Containers"], serde_json::json!({}));
    // The lease and the port are free again.
    n.ok(&[
        "run", "-d", "--name", "k2", "-p", "8090:80", "busybox", "sleep", "60",
    ]);
    assert_eq!(n.ip_on("k2", "bridge"), ip);
    // A restart policy brings it back on the same address and port.
    // (The first run exits at once, the second stays: its /tmp survives the restart.)
    n.ok(&[
        "run",
        "-d",
        "--name",
        "r",
        "--restart",
        "always",
        "-p",
        "8091:80",
        "busybox",
        "sh",
        "-c",
        "test -e /tmp/again && exec httpd -f -p 80 -h /etc; touch /tmp/again; exit 1",
    ]);
    wait_until("a restart", || {
        let v = n.inspect("r");
        v["RestartCount"].as_i64().unwrap_or(0) >= 1 && v["State"]["Status"] == "running"
    });
    assert_eq!(n.ip_on("r", "bridge"), "172.17.0.3");
    wait_until("the restarted container's published port", || {
        curl(n.host(), "http://127.0.0.1:8091/hostname").is_some()
    });
    n.ok(&["rm", "-f", "k2", "r"]);
}

#[test]
fn resolv_conf_hosts_and_hostname() {
    let n = Net::new();
    let o = n.ok(&[
        "run",
        "--rm",
        "--name",
        "dn",
        "-h",
        "box",
        "--dns",
        "10.9.9.9",
        "--dns-search",
        "example.test",
        "--dns-option",
        "ndots:3",
        "--add-host",
        "gw:host-gateway",
        "--add-host",
        "db:10.1.2.3",
        "busybox",
        "sh",
        "-c",
        "cat /etc/resolv.conf /etc/hosts /etc/hostname",
    ]);
    assert!(o.contains("nameserver 10.9.9.9\n"), "{o}");
    assert!(o.contains("search example.test\n"), "{o}");
    assert!(o.contains("options ndots:3\n"), "{o}");
    assert!(o.contains("172.17.0.1\tgw\n"), "{o}");
    assert!(o.contains("10.1.2.3\tdb\n"), "{o}");
    assert!(o.contains("172.17.0.2\tbox\n"), "{o}");
    assert!(o.ends_with("box\n"), "{o}");
    // Without --dns: the host's resolvers, never a loopback one (unreachable from the
    // container's namespace; docker's rule puts 8.8.8.8/8.8.4.4 instead).
    let o = n.ok(&["run", "--rm", "busybox", "cat", "/etc/resolv.conf"]);
    assert!(o.contains("nameserver "), "{o}");
    assert!(!o.contains("nameserver 127."), "{o}");
    // --network container:NAME: the other container's namespace and address.
    n.ok(&["run", "-d", "--name", "owner", "busybox", "sleep", "60"]);
    let ip = n.ip_on("owner", "bridge");
    let o = n.ok(&[
        "run",
        "--rm",
        "--network",
        "container:owner",
        "busybox",
        "ip",
        "-4",
        "-o",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(o.contains(&format!("{ip}/16")), "{o}");
    let e = n.fails(
        &[
            "run",
            "--rm",
            "--network",
            "container:owner",
            "-p",
            "80",
            "busybox",
            "true",
        ],
        125,
    );
    assert!(e.contains("conflicting options: port publishing"), "{e}");
    n.ok(&["stop", "-t", "0", "owner"]);
    let e = n.fails(
        &[
            "run",
            "--rm",
            "--network",
            "container:owner",
            "busybox",
            "true",
        ],
        125,
    );
    assert!(
        e.contains("cannot join network namespace of a non running container"),
        "{e}"
    );
    n.ok(&["rm", "-f", "owner"]);
}

#[test]
fn bad_input_is_named_and_leaves_nothing() {
    let n = Net::new();
    n.ok(&["network", "create", "--subnet", "10.70.0.0/16", "n1"]);
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["network", "create", "--subnet", "10.70.5.0/24", "n2"],
            1,
            "overlaps with network n1",
        ),
        (
            &["network", "create", "--subnet", "10.70.0.0/33", "n2"],
            1,
            "invalid subnet",
        ),
        (
            &["network", "create", "--subnet", "nonsense", "n2"],
            1,
            "invalid subnet \"nonsense\"",
        ),
        (
            &["network", "create", "--subnet", "10.71.0.5/24", "n2"],
            1,
            "it should be 10.71.0.0/24",
        ),
        (
            &[
                "network",
                "create",
                "--subnet",
                "10.71.0.0/24",
                "--gateway",
                "10.72.0.1",
                "n2",
            ],
            1,
            "not inside subnet",
        ),
        (
            &["network", "create", "n1"],
            1,
            "network with name n1 already exists",
        ),
        (
            &[
                "network",
                "create",
                "-o",
                "com.docker.network.driver.mtu=abc",
                "n2",
            ],
            1,
            "not a valid MTU",
        ),
        (&["network", "rm", "nosuch"], 1, "network nosuch not found"),
        (
            &["network", "inspect", "nosuch"],
            1,
            "network nosuch not found",
        ),
        (
            &["run", "--rm", "--network", "nosuch", "busybox", "true"],
            125,
            "network nosuch not found",
        ),
        (
            &[
                "run",
                "--rm",
                "--network",
                "n1",
                "--ip",
                "10.99.0.2",
                "busybox",
                "true",
            ],
            125,
            "not inside subnet 10.70.0.0/16",
        ),
        (
            &[
                "run",
                "--rm",
                "--network",
                "n1",
                "--ip",
                "10.70.0.1",
                "busybox",
                "true",
            ],
            125,
            "gateway address",
        ),
        (
            &[
                "run",
                "--rm",
                "--network",
                "n1",
                "--ip",
                "bogus",
                "busybox",
                "true",
            ],
            125,
            "invalid address \"bogus\"",
        ),
        (
            &["run", "--rm", "--ip", "172.17.0.9", "busybox", "true"],
            125,
            "only for user-defined networks",
        ),
        (
            &["run", "--rm", "-p", "99999:80", "busybox", "true"],
            125,
            "invalid hostPort: 99999",
        ),
        (
            &["run", "--rm", "-p", "80/bogus", "busybox", "true"],
            125,
            "invalid proto: bogus",
        ),
        (
            &["run", "--rm", "--mac-address", "zz", "busybox", "true"],
            125,
            "not a MAC address",
        ),
        (
            &["network", "connect", "nosuch", "x"],
            1,
            "no such container: x",
        ),
    ];
    for (args, code, want) in cases {
        let e = n.fails(args, *code);
        assert!(e.contains(want), "{args:?}: {e}");
    }
    assert_eq!(n.ok(&["ps", "-aq"]), "");
    assert_eq!(
        n.ok(&["network", "ls", "--format", "{{.Name}}"]),
        "bridge\nhost\nn1\nnone\n"
    );
    // Only n1's bridge was made.
    let links = n.host().sh(&["ip", "-o", "link"]);
    assert_eq!(
        links.lines().filter(|l| l.contains(": br-")).count(),
        1,
        "{links}"
    );
    n.ok(&["network", "rm", "n1"]);
    let links = n.host().sh(&["ip", "-o", "link"]);
    assert!(!links.contains(": br-"), "{links}");
    let _ = Path::new("/");
    let _ = berth_command(&n.root);
}

#[test]
fn ipv6_networks() {
    let n = Net::new();
    n.ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd00:b1::/64",
        "--subnet",
        "10.81.0.0/24",
        "v6net",
    ]);
    let srv = n.web(&["--name", "s6", "--network", "v6net", "busybox"]);
    let v = n.inspect("s6");
    let s = &v["NetworkSettings"]["Networks"]["v6net"];
    assert_eq!(s["GlobalIPv6Address"], "fd00:b1::2");
    assert_eq!(s["GlobalIPv6PrefixLen"], 64);
    assert_eq!(s["IPv6Gateway"], "fd00:b1::1");
    assert_eq!(s["IPAddress"], "10.81.0.2");
    wait_until("s6 answers over IPv6", || {
        n.get_from_container(&["--network", "v6net"], "fd00:b1::2", "80") == srv
    });
    let o = n.ok(&[
        "run",
        "--rm",
        "--network",
        "v6net",
        "--ip6",
        "fd00:b1::99",
        "busybox",
        "sh",
        "-c",
        "ip -6 route; ip -6 -o addr show eth0; cat /etc/hosts; nslookup -type=aaaa s6",
    ]);
    assert!(o.contains("default via fd00:b1::1"), "{o}");
    assert!(o.contains("fd00:b1::99/64"), "{o}");
    // Its own v6 address in /etc/hosts, as docker writes it; the peer's from its resolver.
    assert!(o.contains("fd00:b1::99\t"), "{o}");
    assert!(o.contains("Address: fd00:b1::2"), "{o}");
    let ins: Value = serde_json::from_str(&n.ok(&["network", "inspect", "v6net"])).unwrap();
    assert_eq!(ins[0]["EnableIPv6"], true);
    assert_eq!(ins[0]["IPAM"]["Config"][1]["Subnet"], "fd00:b1::/64");
    let e = n.fails(
        &[
            "network",
            "create",
            "--ipv6",
            "--subnet",
            "10.82.0.0/24",
            "b",
        ],
        1,
    );
    assert!(e.contains("--ipv6 needs an IPv6 --subnet"), "{e}");
    let e = n.fails(&["network", "create", "--subnet", "fd00:b2::/64", "b"], 1);
    assert!(e.contains("given without --ipv6"), "{e}");
    let e = n.fails(
        &[
            "run",
            "--rm",
            "--network",
            "v6net",
            "--ip6",
            "fd00:b1::2",
            "busybox",
            "true",
        ],
        125,
    );
    assert!(e.contains("address fd00:b1::2 is already in use"), "{e}");
    n.ok(&["rm", "-f", "s6"]);
    n.ok(&["network", "rm", "v6net"]);
}

#[test]
fn default_bridge_avoids_a_subnet_the_host_routes() {
    // dockerd's docker0 on the same host: 172.17.0.0/16 is taken.
    let n = Net::new();
    n.host()
        .sh(&["ip", "link", "add", "docker0", "type", "bridge"]);
    n.host()
        .sh(&["ip", "addr", "add", "172.17.0.1/16", "dev", "docker0"]);
    n.host().sh(&["ip", "link", "set", "docker0", "up"]);
    n.ok(&["run", "-d", "--name", "c", "busybox", "sleep", "60"]);
    assert_eq!(n.ip_on("c", "bridge"), "172.18.0.2");
    let ins: Value = serde_json::from_str(&n.ok(&["network", "inspect", "bridge"])).unwrap();
    assert_eq!(ins[0]["IPAM"]["Config"][0]["Subnet"], "172.18.0.0/16");
    n.ok(&["rm", "-f", "c"]);
}

/// A DNS server in a test namespace that answers every A query with `answer` (and every
/// other type with no records), counting the queries it got. Stops when dropped.
struct FakeUpstream {
    queries: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeUpstream {
    fn start(ns: &TestNetns, addr: &str, answer: [u8; 4]) -> FakeUpstream {
        use std::sync::atomic::Ordering;
        let queries = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (q, s) = (queries.clone(), stop.clone());
        let path = ns.path();
        let addr = format!("{addr}:53");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let f = std::fs::File::open(&path).unwrap();
            // SAFETY: setns on this test thread only, with a descriptor it holds open.
            let r = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns {path}");
            let sock = std::net::UdpSocket::bind(&addr).unwrap();
            sock.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            ready_tx.send(()).unwrap();
            let mut buf = [0u8; 512];
            while !s.load(Ordering::SeqCst) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                // Header, then the question: labels up to the root, type, class.
                let mut end = 12;
                while end < n && buf[end] != 0 {
                    end += 1 + usize::from(buf[end]);
                }
                let qend = end + 5;
                if n < qend {
                    continue;
                }
                q.fetch_add(1, Ordering::SeqCst);
                let is_a = buf[end + 1..end + 3] == [0, 1];
                let mut r = buf[..qend].to_vec();
                r[2] = 0x81; // QR, RD
                r[3] = 0x80; // RA, NOERROR
                r[6..12].copy_from_slice(&[0, u8::from(is_a), 0, 0, 0, 0]);
                if is_a {
                    r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
                    r.extend_from_slice(&answer);
                }
                let _ = sock.send_to(&r, from);
            }
        });
        ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        FakeUpstream {
            queries,
            stop,
            thread: Some(thread),
        }
    }

    fn queries(&self) -> usize {
        self.queries.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A DNS query for `name` (type A) over TCP: RFC 1035's two-byte length, then the message.
fn tcp_query(name: &str, id: u16) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    let mut framed = (m.len() as u16).to_be_bytes().to_vec();
    framed.extend(m);
    framed
}

#[test]
fn embedded_dns_names_forwarding_and_a_free_port_53() {
    let n = Net::new().with_outside();
    let upstream = FakeUpstream::start(n.outside(), "10.200.0.2", [192, 0, 2, 7]);
    n.ok(&["network", "create", "--subnet", "10.64.0.0/24", "dnsnet"]);
    n.ok(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.65.0.0/24",
        "dnsint",
    ]);
    for name in ["named", "twin"] {
        n.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "dnsnet",
            "--network-alias",
            "shared",
            "busybox",
            "sleep",
            "60",
        ]);
    }
    let named = n.ip_on("named", "dnsnet");
    let twin = n.ip_on("twin", "dnsnet");
    let ask = |extra: &[&str], script: &str| {
        let mut a = vec!["run", "--rm", "--network", "dnsnet"];
        a.extend_from_slice(extra);
        a.extend_from_slice(&["busybox", "sh", "-c", script]);
        n.ok(&a)
    };
    // A name shared by two containers answers with both; NAME.NETWORK; a reverse lookup
    // gives docker's NAME.NETWORK.
    let o = ask(
        &[],
        "nslookup -type=a shared; nslookup -type=a named.dnsnet",
    );
    assert!(o.contains(&format!("Address: {named}")), "{o}");
    assert!(o.contains(&format!("Address: {twin}")), "{o}");
    let o = ask(&[], &format!("nslookup {named}"));
    assert!(o.contains("named.dnsnet"), "{o}");
    // Other names go to the --dns server, from the host's namespace (the container itself
    // has no route to 10.200.0.2's port 53 unless NAT'd; the point is that its resolver
    // asked that server).
    let before = upstream.queries();
    let o = ask(&["--dns", "10.200.0.2"], "nslookup -type=a example.test");
    assert!(o.contains("192.0.2.7"), "{o}");
    assert!(upstream.queries() > before);
    // TCP, one query per connection, while the container's own server holds TCP port 53
    // on every address (docker's design: 127.0.0.11:53 is redirected to the resolver's own
    // ports, so 53 stays the container's).
    let mut c = common::berth_command(&n.root);
    c.args([
        "run",
        "-i",
        "--rm",
        "--network",
        "dnsnet",
        "busybox",
        "sh",
        "-c",
        "nc -l -p 53 </dev/null >/dev/null & p=$!; sleep 0.5; \
         kill -0 $p && echo bound >&2; nc -w 2 127.0.0.11 53; kill $p",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &tcp_query("named", 0x4242)).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bound"),
        "{out:?}"
    );
    let r = out.stdout;
    assert!(r.len() > 14, "{r:?}");
    assert_eq!(r[2..4], [0x42, 0x42], "{r:?}");
    let ip: Vec<u8> = named.split('.').map(|p| p.parse().unwrap()).collect();
    assert!(r.windows(4).any(|w| w == ip.as_slice()), "{r:?}");
    // A stopped container is no longer found; a removed one neither.
    n.ok(&["stop", "-t", "0", "twin"]);
    let o = ask(&[], "nslookup -type=a shared");
    assert!(o.contains(&format!("Address: {named}")), "{o}");
    assert!(!o.contains(&format!("Address: {twin}")), "{o}");
    n.ok(&["rm", "-f", "twin"]);
    // --internal: container names only; nothing is forwarded.
    let before = upstream.queries();
    let o = n.ok(&[
        "run",
        "--rm",
        "--network",
        "dnsint",
        "--dns",
        "10.200.0.2",
        "busybox",
        "sh",
        "-c",
        "nslookup -type=a example.test; echo done",
    ]);
    assert!(!o.contains("192.0.2.7"), "{o}");
    assert!(o.contains("done"), "{o}");
    assert_eq!(upstream.queries(), before);
    // The default bridge keeps docker's resolv.conf: the servers themselves.
    let o = n.ok(&[
        "run",
        "--rm",
        "--dns",
        "10.200.0.2",
        "busybox",
        "cat",
        "/etc/resolv.conf",
    ]);
    assert!(o.contains("nameserver 10.200.0.2"), "{o}");
    n.ok(&["rm", "-f", "named"]);
}

#[test]
fn an_address_waits_for_its_old_veth() {
    // Something outside holds a stopped container's network namespace (here a process that
    // entered it; in life a `--network container:` joiner or an admin's nsenter), so its veth,
    // with the old address and MAC, stays on the bridge after `rm`. The address must not go
    // to the next container meanwhile (two hosts answering ARP for it), and must come back
    // once the veth is gone.
    let n = Net::new();
    let id = n
        .ok(&["run", "-d", "--name", "old", "busybox", "sleep", "60"])
        .trim()
        .to_string();
    let ip = n.ip_on("old", "bridge");
    let pid = n.inspect(&id)["State"]["Pid"].as_i64().unwrap();
    let mut holder = Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    n.ok(&["rm", "-f", "old"]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!n.leftovers().is_empty(), "the held veth is still there");
    n.ok(&["run", "-d", "--name", "new", "busybox", "sleep", "60"]);
    let new_ip = n.ip_on("new", "bridge");
    assert_ne!(
        new_ip, ip,
        "the lingering veth's address was handed out again"
    );
    // The same for a stopped container started again: its lingering veth (same name) is
    // replaced, and it answers on its address.
    let pid = n.inspect("new")["State"]["Pid"].as_i64().unwrap();
    let mut holder2 = Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    n.ok(&["stop", "-t", "0", "new"]);
    n.ok(&["start", "new"]);
    assert_eq!(n.ip_on("new", "bridge"), new_ip);
    n.host()
        .sh(&["busybox", "ping", "-c", "1", "-W", "2", &new_ip]);
    let _ = holder.kill();
    let _ = holder.wait();
    let _ = holder2.kill();
    let _ = holder2.wait();
    n.ok(&["rm", "-f", "new"]);
    assert_eq!(n.settled_leftovers(), Vec::<String>::new());
    n.ok(&["run", "-d", "--name", "again", "busybox", "sleep", "60"]);
    assert_eq!(n.ip_on("again", "bridge"), ip, "the address is free again");
    n.ok(&["rm", "-f", "again"]);
}

/// docker's legacy links. On the default bridge: the linked container in `/etc/hosts`
/// (`IP\tALIAS HOSTNAME NAME`) and docker's variables (its exposed ports, its name, its
/// environment but PATH and HOME); the linked container must run when the linking one
/// starts. On a user-defined network: the alias resolves through the embedded resolver, for
/// the linking container alone. `HostConfig.Links` in docker's form; docker's refusals.
#[test]
fn legacy_links() {
    let n = Net::new();
    n.ok(&[
        "run",
        "-d",
        "--name",
        "db",
        "-e",
        "SECRET=s3",
        "--expose",
        "7000-7001",
        "web",
        "sleep",
        "60",
    ]);
    let ip = n.ip_on("db", "bridge");
    let short = n.inspect("db")["Id"].as_str().unwrap()[..12].to_string();
    let o = n.ok(&[
        "run",
        "--rm",
        "--name",
        "app",
        "--link",
        "db:data",
        "busybox",
        "sh",
        "-c",
        "cat /etc/hosts; env | sort",
    ]);
    assert!(o.contains(&format!("{ip}\tdata {short} db\n")), "{o}");
    for v in [
        format!("DATA_PORT=tcp://{ip}:80"),
        format!("DATA_PORT_80_TCP=tcp://{ip}:80"),
        format!("DATA_PORT_80_TCP_ADDR={ip}"),
        "DATA_PORT_80_TCP_PORT=80".to_string(),
        "DATA_PORT_80_TCP_PROTO=tcp".to_string(),
        format!("DATA_PORT_81_UDP=udp://{ip}:81"),
        // A run of consecutive ports: docker's range variables.
        format!("DATA_PORT_7000_TCP_START=tcp://{ip}:7000"),
        format!("DATA_PORT_7000_TCP_END=tcp://{ip}:7001"),
        "DATA_PORT_7000_TCP_PORT_END=7001".to_string(),
        "DATA_NAME=/app/data".to_string(),
        "DATA_ENV_SECRET=s3".to_string(),
    ] {
        assert!(o.contains(&format!("{v}\n")), "{v}: {o}");
    }
    assert!(!o.contains("DATA_ENV_PATH"), "{o}");
    // Without an alias the name is the alias; the line has it once.
    let o = n.ok(&[
        "run",
        "--rm",
        "--link",
        "db",
        "busybox",
        "cat",
        "/etc/hosts",
    ]);
    assert!(o.contains(&format!("{ip}\tdb {short}\n")), "{o}");
    n.ok(&[
        "create", "--name", "later", "--link", "db:data", "busybox", "true",
    ]);
    assert_eq!(
        n.inspect("later")["HostConfig"]["Links"],
        serde_json::json!(["/db:/later/data"])
    );
    n.ok(&["stop", "-t", "0", "db"]);
    let e = n.fails(&["start", "later"], 1);
    assert!(
        e.contains("Cannot link to a non running container: /db AS /later/data"),
        "{e}"
    );
    // The link follows its container through a rename, and goes with it when it is
    // removed (docker's: the linking container starts again).
    n.ok(&["rename", "db", "db2"]);
    assert_eq!(
        n.inspect("later")["HostConfig"]["Links"],
        serde_json::json!(["/db2:/later/data"])
    );
    n.ok(&["rm", "-f", "db2"]);
    n.ok(&["start", "-a", "later"]);
    for (args, msg) in [
        (&["--link", "nope"][..], "could not get container for nope"),
        (&["--link", "a:b:c"], "bad format for links: a:b:c"),
        (
            &["--network", "host", "--link", "db"],
            "conflicting options: host type networking can't be used with links",
        ),
    ] {
        let mut a = vec!["create"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["busybox", "true"]);
        let e = n.fails(&a, 125);
        assert!(e.contains(msg), "{args:?}: {e}");
    }
    // A linked container on another network only.
    n.ok(&["network", "create", "other"]);
    n.ok(&[
        "run",
        "-d",
        "--name",
        "elsewhere",
        "--network",
        "other",
        "busybox",
        "sleep",
        "60",
    ]);
    let e = n.fails(
        &["run", "--rm", "--link", "elsewhere", "busybox", "true"],
        125,
    );
    assert!(
        e.contains("cannot link to /elsewhere, as it does not belong to the default network"),
        "{e}"
    );
    n.ok(&["rm", "-f", "later", "elsewhere"]);
    n.ok(&["network", "rm", "other"]);

    n.ok(&["network", "create", "ln"]);
    n.ok(&[
        "run",
        "-d",
        "--name",
        "db2",
        "--network",
        "ln",
        "busybox",
        "sleep",
        "60",
    ]);
    let ip2 = n.ip_on("db2", "ln");
    let o = n.ok(&[
        "run",
        "--rm",
        "--network",
        "ln",
        "--link",
        "db2:store",
        "busybox",
        "sh",
        "-c",
        "nslookup store; cat /etc/hosts; env",
    ]);
    assert!(o.contains(&format!("Address: {ip2}")), "{o}");
    assert!(
        !o.contains("STORE_"),
        "no link variables on a user-defined network: {o}"
    );
    let o = n.ok(&[
        "run",
        "--rm",
        "--network",
        "ln",
        "busybox",
        "sh",
        "-c",
        "timeout 3 nslookup store; true",
    ]);
    assert!(!o.contains(&format!("Address: {ip2}")), "{o}");
    n.ok(&["rm", "-f", "db2"]);
    n.ok(&["network", "rm", "ln"]);
}
