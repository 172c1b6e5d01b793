//! Bridge networking end to end, as root, entirely inside throwaway network namespaces.
//!
//! Every test makes its own namespaces with `ip netns add berthtest-…`: one plays the host
//! (the bridges, the firewall table, the sysctls all live there), one the outside world
//! (connected to the host by a veth, 10.200.0.0/24), and each "container" is one more. The
//! test body runs on a thread that entered the host namespace, so every netlink socket,
//! `/proc/sys/net` write and `nft`/`iptables` run of the library acts there and never on this
//! machine's own interfaces, routes or firewall. A guard deletes the namespaces on success and
//! on failure. Traffic is small Rust TCP/UDP clients and servers, each on a thread that entered
//! its namespace.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use berth_net::firewall::{Firewall, HostFirewall, NetworkRules, PublishedPort};
use berth_net::ipam::{self, IpNet, IpamConfig};
use berth_net::netlink::{self, Endpoint, Netlink};
use berth_net::ports::{Protocol, parse_port_spec};
use berth_net::sysctl;
use berth_net::{BridgeNetwork, network};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A throwaway network namespace, deleted on drop.
struct Netns {
    name: String,
    path: String,
}

impl Netns {
    fn new(role: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("berthtest-{}-{n}-{role}", std::process::id());
        let st = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("ip netns add");
        assert!(st.success(), "ip netns add {name}");
        let path = format!("/run/netns/{name}");
        let ns = Netns { name, path };
        // No IPv6 duplicate address detection on the test's links: their link-local
        // addresses would stay tentative for a second or two, long enough for a first
        // connection to time out under load.
        ns.run(|| {
            for conf in ["all", "default"] {
                let p = format!("/proc/sys/net/ipv6/conf/{conf}/accept_dad");
                std::fs::write(&p, "0").unwrap_or_else(|e| panic!("{p}: {e}"));
            }
        });
        ns
    }

    fn file(&self) -> File {
        File::open(&self.path).expect("open netns file")
    }

    /// Runs `f` on a new thread inside this namespace (checked before `f` runs).
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let file = self.file();
        thread::spawn(move || {
            enter(&file);
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }

    /// Spawns `f` on a thread inside this namespace.
    fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> thread::JoinHandle<T> {
        let file = self.file();
        thread::spawn(move || {
            enter(&file);
            f()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Enters the namespace `file` on this thread and checks that it did.
fn enter(file: &File) {
    // SAFETY: setns on a descriptor we own; changes only this thread's network namespace.
    let r = unsafe { libc::setns(file.as_fd().as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
    let want = file.metadata().expect("netns metadata").ino();
    let got = std::fs::metadata("/proc/thread-self/ns/net")
        .expect("own netns")
        .ino();
    assert_eq!(want, got, "not in the test namespace: refusing to go on");
}

/// Runs a command inside the current thread's namespace (the caller entered it).
fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A TCP server in a namespace that answers each connection with the peer address it saw.
struct Server {
    stop: Arc<AtomicBool>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn tcp_server(ns: &Netns, addr: &str) -> Server {
    let addr: SocketAddr = addr.parse().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    ns.spawn(move || {
        let l = TcpListener::bind(addr).expect("bind");
        l.set_nonblocking(true).unwrap();
        tx.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while !s.load(Ordering::SeqCst) && Instant::now() < deadline {
            match l.accept() {
                Ok((mut c, peer)) => {
                    let _ = c.write_all(peer.ip().to_string().as_bytes());
                }
                Err(_) => thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    rx.recv().unwrap();
    Server { stop }
}

fn udp_server(ns: &Netns, addr: &str) -> Server {
    let addr: SocketAddr = addr.parse().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    ns.spawn(move || {
        let sock = UdpSocket::bind(addr).expect("bind udp");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        tx.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut buf = [0u8; 64];
        while !s.load(Ordering::SeqCst) && Instant::now() < deadline {
            if let Ok((_, peer)) = sock.recv_from(&mut buf) {
                let _ = sock.send_to(peer.ip().to_string().as_bytes(), peer);
            }
        }
    });
    rx.recv().unwrap();
    Server { stop }
}

/// Connects from `ns` to `addr`; the address the server saw, or the error.
fn tcp_get(ns: &Netns, addr: &str) -> Result<String, String> {
    let addr: SocketAddr = addr.parse().unwrap();
    ns.run(move || {
        let mut c =
            TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut s = String::new();
        c.read_to_string(&mut s).map_err(|e| e.to_string())?;
        Ok(s)
    })
}

fn udp_get(ns: &Netns, addr: &str) -> Result<String, String> {
    let addr: SocketAddr = addr.parse().unwrap();
    ns.run(move || {
        let bind = if addr.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let sock = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut buf = [0u8; 64];
        for _ in 0..4 {
            sock.send_to(b"?", addr).map_err(|e| e.to_string())?;
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                return Ok(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        Err("no UDP answer".into())
    })
}

const HOST_UPLINK: &str = "10.200.0.1";
const OUTSIDE: &str = "10.200.0.2";

/// The host and the outside world, joined by a veth (host `up0` 10.200.0.1/24, outside
/// `eth0` 10.200.0.2/24). The outside has no route to any container subnet: whatever
/// reaches it from a container was masqueraded.
struct World {
    // Containers first: dropped (deleted) before the host.
    containers: Vec<Netns>,
    outside: Netns,
    host: Netns,
}

impl World {
    fn new() -> World {
        let host = Netns::new("host");
        let outside = Netns::new("outside");
        let out_file = outside.file();
        host.run(move || {
            let nl = Netlink::open().unwrap();
            nl.create_veth("up0", "up0peer", None).unwrap();
            nl.move_to_netns("up0peer", out_file.as_fd()).unwrap();
            nl.add_address("up0", "10.200.0.1/24".parse().unwrap())
                .unwrap();
            nl.set_up("up0").unwrap();
            nl.set_up("lo").unwrap();
            let o = Netlink::open_in(out_file.as_fd()).unwrap();
            o.rename("up0peer", "eth0").unwrap();
            o.add_address("eth0", "10.200.0.2/24".parse().unwrap())
                .unwrap();
            o.set_up("eth0").unwrap();
            o.set_up("lo").unwrap();
            sysctl::enable_forwarding(false).unwrap();
            Firewall::new().ensure_table().unwrap();
        });
        World {
            containers: vec![],
            outside,
            host,
        }
    }

    /// A bridge network: bridge with the gateway address, route_localnet, firewall rules.
    fn network(&self, bridge: &str, subnet: &str, internal: bool) -> IpamConfig {
        self.network_with(bridge, subnet, internal, true)
    }

    fn network_with(&self, bridge: &str, subnet: &str, internal: bool, icc: bool) -> IpamConfig {
        let cfg = IpamConfig::parse(subnet, None, None).unwrap();
        let (bridge, c) = (bridge.to_string(), cfg.clone());
        self.host.run(move || {
            let net = BridgeNetwork {
                bridge,
                ipam: vec![c],
                internal,
                mtu: Some(1500),
                icc,
            };
            berth_net::create_network(&Netlink::open().unwrap(), &Firewall::new(), None, &net)
                .unwrap();
        });
        cfg
    }

    /// A "container": a namespace on `bridge` with `address`, default route via the gateway.
    fn container(&mut self, bridge: &str, cfg: &IpamConfig, address: &str) -> usize {
        let ns = Netns::new("ctr");
        let addr: IpAddr = address.parse().unwrap();
        let n = self.containers.len();
        let ep = Endpoint {
            bridge: bridge.to_string(),
            host_ifname: format!("vethb{n}{}", &bridge[bridge.len().saturating_sub(3)..]),
            container_ifname: "eth0".into(),
            addresses: vec![IpNet::new(addr, cfg.subnet.prefix_len()).unwrap()],
            gateways: vec![cfg.gateway],
            mac: match addr {
                IpAddr::V4(a) => Some(netlink::mac_from_ipv4(a)),
                IpAddr::V6(_) => None,
            },
            mtu: Some(1500),
        };
        let f = ns.file();
        self.host.run(move || {
            let nl = Netlink::open().unwrap();
            netlink::connect_endpoint(&nl, f.as_fd(), &ep).unwrap();
        });
        self.containers.push(ns);
        n
    }

    fn publish(&self, id: &str, addr: &str, ports: Vec<PublishedPort>) {
        let (id, addr) = (id.to_string(), addr.parse::<IpAddr>().unwrap());
        self.host
            .run(move || Firewall::new().add_container(&id, &[addr], &ports).unwrap());
    }

    fn ruleset(&self) -> String {
        self.host.run(|| Firewall::new().list().unwrap())
    }
}

fn port(host_port: u16, container_port: u16, protocol: Protocol) -> PublishedPort {
    PublishedPort {
        host_ip: None,
        host_port,
        container_port,
        protocol,
    }
}

#[test]
fn bridge_veth_addresses_mac_and_default_route() {
    let mut w = World::new();
    let cfg = w.network("bt-br1", "10.88.0.0/24", false);
    let c = w.container("bt-br1", &cfg, "10.88.0.2");
    let ctr = &w.containers[c];
    let f = ctr.file();
    let (addrs, mac, routes, lo) = w.host.run(move || {
        let n = Netlink::open_in(f.as_fd()).unwrap();
        (
            n.addresses("eth0").unwrap(),
            n.mac("eth0").unwrap(),
            n.host_routes().unwrap(),
            n.addresses("lo").unwrap(),
        )
    });
    assert!(
        addrs.contains(&"10.88.0.2/24".parse().unwrap()),
        "{addrs:?}"
    );
    assert_eq!(mac, Some([0x02, 0x42, 10, 88, 0, 2]));
    assert!(routes.contains(&"0.0.0.0/0".parse().unwrap()), "{routes:?}");
    assert!(
        lo.contains(&"127.0.0.1/8".parse().unwrap()),
        "lo is up: {lo:?}"
    );
    // The host's routes include the bridge's subnet: a new network avoids it.
    let host_routes = w
        .host
        .run(|| Netlink::open().unwrap().host_routes().unwrap());
    assert!(host_routes.contains(&"10.88.0.0/24".parse().unwrap()));
    let pools = [ipam::AddressPool {
        base: "10.88.0.0/16".parse().unwrap(),
        size: 24,
    }];
    let none: Vec<(&str, &IpNet)> = vec![];
    assert_eq!(
        ipam::choose_subnet(&pools, none, &host_routes),
        Ok("10.88.1.0/24".parse().unwrap())
    );
    // The container reaches its gateway; the host reaches the container.
    let _s = tcp_server(&w.host, "10.88.0.1:7000");
    assert_eq!(tcp_get(ctr, "10.88.0.1:7000").unwrap(), "10.88.0.2");
    let _s2 = tcp_server(ctr, "0.0.0.0:7001");
    assert_eq!(tcp_get(&w.host, "10.88.0.2:7001").unwrap(), "10.88.0.1");
    // The bridge is idempotent, and deleting the veth removes the container's eth0.
    w.host.run(|| {
        let nl = Netlink::open().unwrap();
        let i = nl.link_index("bt-br1").unwrap();
        assert_eq!(nl.create_bridge("bt-br1", Some(1500)).unwrap(), i.unwrap());
        assert!(netlink::disconnect_endpoint(&nl, "vethb0br1").unwrap());
        assert!(!netlink::disconnect_endpoint(&nl, "vethb0br1").unwrap());
    });
    let f = w.containers[c].file();
    let gone = w.host.run(move || {
        Netlink::open_in(f.as_fd())
            .unwrap()
            .link_index("eth0")
            .unwrap()
    });
    assert_eq!(gone, None);
}

#[test]
fn ipv6_addresses_and_route_in_the_container() {
    let mut w = World::new();
    let cfg4 = w.network("bt-br6", "10.89.0.0/24", false);
    let cfg6 = IpamConfig::parse("fd00:89::/64", None, None).unwrap();
    let c = w.container("bt-br6", &cfg4, "10.89.0.2");
    let f = w.containers[c].file();
    let g6 = cfg6.gateway_net();
    let (addrs, routes) = w.host.run(move || {
        let nl = Netlink::open().unwrap();
        nl.add_address("bt-br6", g6).unwrap();
        let n = Netlink::open_in(f.as_fd()).unwrap();
        n.add_address("eth0", "fd00:89::2/64".parse().unwrap())
            .unwrap();
        n.add_default_route("fd00:89::1".parse().unwrap()).unwrap();
        (n.addresses("eth0").unwrap(), n.host_routes().unwrap())
    });
    assert!(
        addrs.contains(&"fd00:89::2/64".parse().unwrap()),
        "{addrs:?}"
    );
    assert!(routes.contains(&"::/0".parse().unwrap()), "{routes:?}");
    assert!(
        routes.contains(&"fd00:89::/64".parse().unwrap()),
        "{routes:?}"
    );
}

#[test]
fn outbound_is_masqueraded_to_the_host_address() {
    let mut w = World::new();
    let cfg = w.network("bt-out", "10.90.0.0/24", false);
    let c = w.container("bt-out", &cfg, "10.90.0.2");
    let _s = tcp_server(&w.outside, "0.0.0.0:9000");
    let seen = tcp_get(&w.containers[c], &format!("{OUTSIDE}:9000")).unwrap();
    assert_eq!(seen, HOST_UPLINK, "the outside sees the host's address");
    let _u = udp_server(&w.outside, "0.0.0.0:9001");
    assert_eq!(
        udp_get(&w.containers[c], &format!("{OUTSIDE}:9001")).unwrap(),
        HOST_UPLINK
    );
}

#[test]
fn published_tcp_port_from_outside_localhost_and_hairpin() {
    let mut w = World::new();
    let cfg = w.network("bt-pub", "10.91.0.0/24", false);
    let a = w.container("bt-pub", &cfg, "10.91.0.2");
    let b = w.container("bt-pub", &cfg, "10.91.0.3");
    let spec = parse_port_spec("8080:80/tcp").unwrap();
    let p = port(
        spec[0].fixed_host_port().unwrap(),
        spec[0].container_port,
        spec[0].protocol,
    );
    w.publish("ctra", "10.91.0.2", vec![p]);
    let _s = tcp_server(&w.containers[a], "0.0.0.0:80");
    // From the outside host: DNAT, the container sees the real client.
    assert_eq!(
        tcp_get(&w.outside, &format!("{HOST_UPLINK}:8080")).unwrap(),
        OUTSIDE
    );
    // From the host itself, on 127.0.0.1 (no proxy): masqueraded to the bridge address.
    assert_eq!(tcp_get(&w.host, "127.0.0.1:8080").unwrap(), "10.91.0.1");
    // From the host on its own uplink address.
    assert!(tcp_get(&w.host, &format!("{HOST_UPLINK}:8080")).is_ok());
    // From another container on the same bridge through the host's address (hairpin).
    assert_eq!(
        tcp_get(&w.containers[b], &format!("{HOST_UPLINK}:8080")).unwrap(),
        "10.91.0.1"
    );
    // The container itself, through the host's address (its bridge port in hairpin mode).
    assert_eq!(
        tcp_get(&w.containers[a], &format!("{HOST_UPLINK}:8080")).unwrap(),
        "10.91.0.1"
    );
    // A container on another network reaches it too, through the host.
    let cfg2 = w.network("bt-pub2", "10.92.0.0/24", false);
    let c = w.container("bt-pub2", &cfg2, "10.92.0.2");
    assert!(tcp_get(&w.containers[c], &format!("{HOST_UPLINK}:8080")).is_ok());
    // A port bound to 127.0.0.1 only is not reachable from outside.
    let mut local_only = port(8081, 80, Protocol::Tcp);
    local_only.host_ip = Some("127.0.0.1".parse().unwrap());
    w.publish("ctrb", "10.91.0.2", vec![local_only]);
    assert!(tcp_get(&w.host, "127.0.0.1:8081").is_ok());
    assert!(tcp_get(&w.outside, &format!("{HOST_UPLINK}:8081")).is_err());
}

#[test]
fn published_udp_port() {
    let mut w = World::new();
    let cfg = w.network("bt-udp", "10.93.0.0/24", false);
    let a = w.container("bt-udp", &cfg, "10.93.0.2");
    w.publish("ctru", "10.93.0.2", vec![port(5353, 53, Protocol::Udp)]);
    let _u = udp_server(&w.containers[a], "0.0.0.0:53");
    assert_eq!(
        udp_get(&w.outside, &format!("{HOST_UPLINK}:5353")).unwrap(),
        OUTSIDE
    );
    assert_eq!(udp_get(&w.host, "127.0.0.1:5353").unwrap(), "10.93.0.1");
    // TCP on the same port is not published.
    let _t = tcp_server(&w.containers[a], "0.0.0.0:53");
    assert!(tcp_get(&w.outside, &format!("{HOST_UPLINK}:5353")).is_err());
}

#[test]
fn networks_are_isolated_from_each_other() {
    let mut w = World::new();
    let c1 = w.network("bt-iso1", "10.94.0.0/24", false);
    let c2 = w.network("bt-iso2", "10.95.0.0/24", false);
    let a = w.container("bt-iso1", &c1, "10.94.0.2");
    let a2 = w.container("bt-iso1", &c1, "10.94.0.3");
    let b = w.container("bt-iso2", &c2, "10.95.0.2");
    let _sa = tcp_server(&w.containers[a], "0.0.0.0:80");
    let _sb = tcp_server(&w.containers[b], "0.0.0.0:80");
    assert!(tcp_get(&w.containers[a], "10.95.0.2:80").is_err());
    assert!(tcp_get(&w.containers[b], "10.94.0.2:80").is_err());
    // Within one network: fine; and both still reach the outside.
    assert_eq!(
        tcp_get(&w.containers[a2], "10.94.0.2:80").unwrap(),
        "10.94.0.3"
    );
    let _o = tcp_server(&w.outside, "0.0.0.0:9000");
    assert!(tcp_get(&w.containers[a], &format!("{OUTSIDE}:9000")).is_ok());
    assert!(tcp_get(&w.containers[b], &format!("{OUTSIDE}:9000")).is_ok());
    // The outside cannot reach a container directly, even with a route to it.
    w.outside
        .run(|| sh(&["ip", "route", "add", "10.94.0.0/24", "via", HOST_UPLINK]));
    assert!(tcp_get(&w.outside, "10.94.0.2:80").is_err());
}

#[test]
fn internal_network_has_no_way_out() {
    let mut w = World::new();
    let cfg = w.network("bt-int", "10.96.0.0/24", true);
    let a = w.container("bt-int", &cfg, "10.96.0.2");
    let b = w.container("bt-int", &cfg, "10.96.0.3");
    let _o = tcp_server(&w.outside, "0.0.0.0:9000");
    // The container even has a default route here: the firewall is what stops it.
    assert!(tcp_get(&w.containers[a], &format!("{OUTSIDE}:9000")).is_err());
    let other = w.network("bt-int2", "10.97.0.0/24", false);
    let c = w.container("bt-int2", &other, "10.97.0.2");
    let _sa = tcp_server(&w.containers[a], "0.0.0.0:80");
    assert!(tcp_get(&w.containers[c], "10.96.0.2:80").is_err());
    w.outside
        .run(|| sh(&["ip", "route", "add", "10.96.0.0/24", "via", HOST_UPLINK]));
    assert!(tcp_get(&w.outside, "10.96.0.2:80").is_err());
    // Within the internal network: fine.
    assert_eq!(
        tcp_get(&w.containers[b], "10.96.0.2:80").unwrap(),
        "10.96.0.3"
    );
}

#[test]
fn removing_a_container_keeps_the_others_rules() {
    let mut w = World::new();
    let cfg = w.network("bt-rm", "10.98.0.0/24", false);
    let a = w.container("bt-rm", &cfg, "10.98.0.2");
    let b = w.container("bt-rm", &cfg, "10.98.0.3");
    w.publish("ctr-one", "10.98.0.2", vec![port(8001, 80, Protocol::Tcp)]);
    w.publish("ctr-two", "10.98.0.3", vec![port(8002, 80, Protocol::Tcp)]);
    let _sa = tcp_server(&w.containers[a], "0.0.0.0:80");
    let _sb = tcp_server(&w.containers[b], "0.0.0.0:80");
    let out = format!("{HOST_UPLINK}:8001");
    assert!(tcp_get(&w.outside, &out).is_ok());
    w.host.run(|| {
        let fw = Firewall::new();
        fw.remove_container("ctr-one").unwrap();
        // Again: nothing left to remove is not an error.
        fw.remove_container("ctr-one").unwrap();
        // Re-creating the table keeps the other container and the networks.
        fw.ensure_table().unwrap();
    });
    // The engine's call for `rm`: ports and veth, idempotent.
    w.host.run(|| {
        let (nl, fw) = (Netlink::open().unwrap(), Firewall::new());
        network::disconnect_container(&nl, &fw, "ctr-one", "vethb0-rm").unwrap();
        network::disconnect_container(&nl, &fw, "ctr-one", "vethb0-rm").unwrap();
        assert_eq!(nl.link_index("vethb0-rm").unwrap(), None);
        assert!(nl.link_index("vethb1-rm").unwrap().is_some());
    });
    let rules = w.ruleset();
    assert!(!rules.contains("ctr-ctr-one"), "{rules}");
    assert!(rules.contains("chain ctr-ctr-two-dnat "), "{rules}");
    assert!(tcp_get(&w.outside, &out).is_err());
    assert!(tcp_get(&w.outside, &format!("{HOST_UPLINK}:8002")).is_ok());
    // Removing the network leaves the table's base chains and nothing of the network.
    w.host.run(|| {
        let (nl, fw) = (Netlink::open().unwrap(), Firewall::new());
        berth_net::remove_network(&nl, &fw, None, "bt-rm").unwrap();
        berth_net::remove_network(&nl, &fw, None, "bt-rm").unwrap();
        assert_eq!(nl.link_index("bt-rm").unwrap(), None);
    });
    let rules = w.ruleset();
    assert!(!rules.contains("net-bt-rm"), "{rules}");
    assert!(rules.contains("chain forward"), "{rules}");
    w.host.run(|| Firewall::new().delete_table().unwrap());
    assert_eq!(w.ruleset(), "");
}

#[test]
fn host_firewall_with_forward_policy_drop() {
    let mut w = World::new();
    let cfg = w.network("bt-dock", "10.99.0.0/24", false);
    let a = w.container("bt-dock", &cfg, "10.99.0.2");
    w.publish("ctrd", "10.99.0.2", vec![port(8090, 80, Protocol::Tcp)]);
    let _s = tcp_server(&w.containers[a], "0.0.0.0:80");
    let _o = tcp_server(&w.outside, "0.0.0.0:9000");
    let outbound = format!("{OUTSIDE}:9000");
    let inbound = format!("{HOST_UPLINK}:8090");
    assert!(tcp_get(&w.containers[a], &outbound).is_ok());
    // What dockerd does to the host namespace's iptables: FORWARD policy DROP, DOCKER-USER.
    w.host.run(|| {
        sh(&["iptables", "-w", "-P", "FORWARD", "DROP"]);
        sh(&["iptables", "-w", "-N", "DOCKER-USER"]);
        sh(&["iptables", "-w", "-A", "FORWARD", "-j", "DOCKER-USER"]);
    });
    // Berth's accepts alone cannot beat another base chain's drop.
    assert!(tcp_get(&w.containers[a], &outbound).is_err());
    assert!(tcp_get(&w.outside, &inbound).is_err());
    let opened = w.host.run(|| {
        let h = HostFirewall::new();
        let r = h.open_bridge("bt-dock").unwrap();
        h.open_bridge("bt-dock").unwrap();
        r
    });
    assert!(opened);
    let listing = w.host.run(|| sh(&["iptables", "-w", "-S", "DOCKER-USER"]));
    assert_eq!(listing.matches("berth bt-dock").count(), 2, "{listing}");
    assert!(tcp_get(&w.containers[a], &outbound).is_ok());
    assert!(tcp_get(&w.outside, &inbound).is_ok());
    // Isolation still holds: Berth's own drops are final.
    let other = w.network("bt-dock2", "10.100.0.0/24", false);
    let b = w.container("bt-dock2", &other, "10.100.0.2");
    w.host
        .run(|| HostFirewall::new().open_bridge("bt-dock2").unwrap());
    assert!(tcp_get(&w.containers[b], "10.99.0.2:80").is_err());
    w.host.run(|| {
        let h = HostFirewall::new();
        h.close_bridge("bt-dock").unwrap();
        h.close_bridge("bt-dock2").unwrap();
    });
    let listing = w.host.run(|| sh(&["iptables", "-w", "-S"]));
    assert!(!listing.contains("berth"), "{listing}");
    assert!(tcp_get(&w.containers[a], &outbound).is_err());
}

#[test]
fn ipv6_published_port_and_masquerade() {
    let mut w = World::new();
    let of = w.outside.file();
    w.host.run(move || {
        let nl = Netlink::open().unwrap();
        nl.add_address("up0", "fd00:200::1/64".parse().unwrap())
            .unwrap();
        Netlink::open_in(of.as_fd())
            .unwrap()
            .add_address("eth0", "fd00:200::2/64".parse().unwrap())
            .unwrap();
        sysctl::enable_forwarding(true).unwrap();
    });
    // A dual-stack network.
    let cfg4 = IpamConfig::parse("10.101.0.0/24", None, None).unwrap();
    let cfg6 = IpamConfig::parse("fd00:101::/64", None, None).unwrap();
    let (g4, g6, s4, s6) = (
        cfg4.gateway_net(),
        cfg6.gateway_net(),
        cfg4.subnet,
        cfg6.subnet,
    );
    w.host.run(move || {
        let nl = Netlink::open().unwrap();
        nl.create_bridge("bt-v6", None).unwrap();
        nl.add_address("bt-v6", g4).unwrap();
        nl.add_address("bt-v6", g6).unwrap();
        sysctl::enable_route_localnet("bt-v6").unwrap();
        Firewall::new()
            .add_network(&NetworkRules {
                bridge: "bt-v6".into(),
                subnets: vec![s4, s6],
                internal: false,
                icc: true,
            })
            .unwrap();
    });
    let ctr = Netns::new("ctr6");
    let v4: IpAddr = cfg4.allocate(&Default::default()).unwrap();
    let v6: IpAddr = cfg6.allocate(&Default::default()).unwrap();
    assert_eq!(v6, "fd00:101::2".parse::<IpAddr>().unwrap());
    let ep = Endpoint {
        bridge: "bt-v6".into(),
        host_ifname: "vethb6".into(),
        container_ifname: "eth0".into(),
        addresses: vec![IpNet::new(v4, 24).unwrap(), IpNet::new(v6, 64).unwrap()],
        gateways: vec![cfg4.gateway, cfg6.gateway],
        mac: None,
        mtu: None,
    };
    let f = ctr.file();
    w.host.run(move || {
        netlink::connect_endpoint(&Netlink::open().unwrap(), f.as_fd(), &ep).unwrap();
        Firewall::new()
            .add_container("ctr6", &[v4, v6], &[port(8086, 80, Protocol::Tcp)])
            .unwrap();
    });
    w.containers.push(ctr);
    let ctr = &w.containers[0];
    let _s = tcp_server(ctr, "[::]:80");
    assert_eq!(
        tcp_get(&w.outside, "[fd00:200::1]:8086").unwrap(),
        "fd00:200::2"
    );
    let _o = tcp_server(&w.outside, "[::]:9000");
    assert_eq!(
        tcp_get(ctr, "[fd00:200::2]:9000").unwrap(),
        "fd00:200::1",
        "masqueraded to the host's v6 address"
    );
    let _u = udp_server(ctr, "[::]:53");
    w.host.run(move || {
        Firewall::new()
            .add_container("ctr6", &[v4, v6], &[port(5354, 53, Protocol::Udp)])
            .unwrap()
    });
    assert_eq!(
        udp_get(&w.outside, "[fd00:200::1]:5354").unwrap(),
        "fd00:200::2"
    );
    // Replacing the container's rules dropped the TCP port.
    assert!(tcp_get(&w.outside, "[fd00:200::1]:8086").is_err());
}

#[test]
fn a_failed_connect_leaves_nothing_behind() {
    let w = World::new();
    let ctr = Netns::new("ctrfail");
    let f = ctr.file();
    w.host.run(move || {
        let nl = Netlink::open().unwrap();
        let ep = Endpoint {
            bridge: "bt-nosuch".into(),
            host_ifname: "vethfail".into(),
            container_ifname: "eth0".into(),
            addresses: vec![],
            gateways: vec![],
            mac: None,
            mtu: None,
        };
        let e = netlink::connect_endpoint(&nl, f.as_fd(), &ep).unwrap_err();
        assert_eq!(e.to_string(), "no network interface named bt-nosuch");
        assert_eq!(nl.link_index("vethfail").unwrap(), None);
        assert_eq!(nl.link_index("vethfailc").unwrap(), None);
        // A descriptor that is no network namespace.
        let devnull = File::open("/dev/null").unwrap();
        assert!(matches!(
            Netlink::open_in(devnull.as_fd()),
            Err(netlink::NetlinkError::Setns(_))
        ));
        // A network whose bridge name the firewall refuses: the bridge is removed again.
        let net = BridgeNetwork {
            bridge: "bt+bad".into(),
            ipam: vec![IpamConfig::parse("10.102.0.0/24", None, None).unwrap()],
            internal: false,
            mtu: None,
            icc: true,
        };
        let e = berth_net::create_network(&nl, &Firewall::new(), None, &net).unwrap_err();
        assert!(
            e.to_string().contains("invalid bridge name \"bt+bad\""),
            "{e}"
        );
        assert_eq!(nl.link_index("bt+bad").unwrap(), None);
        // Bad names are refused before any request.
        assert!(matches!(
            nl.create_bridge("much-too-long-name", None),
            Err(netlink::NetlinkError::BadName(_))
        ));
    });
}

#[test]
fn icc_false_separates_containers_of_one_network() {
    let mut w = World::new();
    let cfg = w.network_with("bt-noicc", "10.103.0.0/24", false, false);
    let a = w.container("bt-noicc", &cfg, "10.103.0.2");
    let b = w.container("bt-noicc", &cfg, "10.103.0.3");
    let _sb = tcp_server(&w.containers[b], "0.0.0.0:80");
    assert!(tcp_get(&w.containers[a], "10.103.0.3:80").is_err());
    // Published ports still work between them, and the way out is open.
    w.publish("ctrb", "10.103.0.3", vec![port(8093, 80, Protocol::Tcp)]);
    assert!(tcp_get(&w.containers[a], &format!("{HOST_UPLINK}:8093")).is_ok());
    let _o = tcp_server(&w.outside, "0.0.0.0:9000");
    assert!(tcp_get(&w.containers[a], &format!("{OUTSIDE}:9000")).is_ok());
}

#[test]
fn concurrent_changes_are_each_atomic() {
    let w = World::new();
    let _cfg = w.network("bt-conc", "10.104.0.0/24", false);
    // 20 containers published at once, as 20 concurrent `run`s would.
    let f = w.host.file();
    let handles: Vec<_> = (0..20u16)
        .map(|i| {
            let f = f.try_clone().unwrap();
            thread::spawn(move || {
                enter(&f);
                let addr: IpAddr = format!("10.104.0.{}", i + 2).parse().unwrap();
                Firewall::new()
                    .add_container(
                        &format!("c{i}"),
                        &[addr],
                        &[port(9100 + i, 80, Protocol::Tcp)],
                    )
                    .unwrap();
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let rules = w.ruleset();
    for i in 0..20 {
        assert!(
            rules.contains(&format!("chain ctr-c{i}-dnat ")),
            "c{i}: {rules}"
        );
        let dnat = format!("dport {} dnat ip to 10.104.0.{}:80", 9100 + i, i + 2);
        assert!(rules.contains(&dnat), "{dnat}: {rules}");
    }
    assert_eq!(rules.matches("oifname vmap @fwd-in").count(), 1, "{rules}");
}
